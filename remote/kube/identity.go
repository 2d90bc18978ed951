package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/rustypipe/rustypipe/exec"
)

// digestRE matches the digest of an image reference: "@algorithm:hex".
var digestRE = regexp.MustCompile(`@([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-fA-F0-9]{32,})$`)

// Identity returns the identity of the environment s runs in, for the
// task's key: "kubernetes image@sha256:HEX" when the image reference
// carries a digest (the name and tag are then left out: the digest alone
// says what runs), else "kubernetes tag:REF" with the reference as written.
// A tag can move to other content without the key changing, which is why
// pinning images by digest is the reproducible choice. When the backend has
// a pod template, " template:" and a digest of it follow, since it may
// change the task's environment (variables, user). Identity needs no
// cluster. An empty image is an error wrapping exec.ErrStart.
func (b *Backend) Identity(ctx context.Context, s *exec.Spec) (string, error) {
	ref := b.imageRef(s)
	if ref == "" {
		return "", &exec.StartError{Backend: "kube", Task: s.Task, Msg: "no image: set `image` on the task or on its kubernetes backend"}
	}
	id := "kubernetes " + imageIdentity(ref)
	if b.cfg.PodTemplate != nil {
		raw, err := json.Marshal(b.cfg.PodTemplate) // map keys are sorted: the encoding is canonical
		if err != nil {
			return "", fmt.Errorf("kube: identity: pod_template: %w", err)
		}
		sum := sha256.Sum256(raw)
		id += " template:" + hex.EncodeToString(sum[:8])
	}
	return id, nil
}

// imageIdentity is "image@ALGO:HEX" for a reference with a digest, else
// "tag:REF".
func imageIdentity(ref string) string {
	if m := digestRE.FindStringSubmatch(ref); m != nil {
		return "image@" + m[1] + ":" + strings.ToLower(m[2])
	}
	return "tag:" + ref
}
