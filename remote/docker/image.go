package docker

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/rustypipe/rustypipe/exec"
)

// imageEntry is an image reference being or having been resolved to its
// ID. done is closed once id and err are set.
type imageEntry struct {
	done chan struct{}
	img  image
	err  error
}

// image is what Run needs to know of a resolved image.
type image struct {
	id   string // "sha256:..."
	path string // the image's PATH, or the engine's default when it has none
}

// defaultPath is the PATH the engine gives a container whose image sets
// none (the OCI runtime's default on Linux).
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Identity returns "docker " followed by the ID of the image s runs in
// (s.Image, or the backend's image): the digest of the image's
// configuration, "sha256:...", which changes whenever the image's content
// or configuration does and not when it is tagged. When the backend sets
// user, workdir or env, which change what a task sees, they follow as
// "user=...", "workdir=..." and "env=sha256:..." (a digest of the sorted
// NAME=value pairs). Resolving the image may pull it, as Run would; the
// resolution is done once per Backend and shared with Run, so the key and
// the container use the same image even if the tag moves meanwhile.
//
// Errors: no image configured wraps exec.ErrStart; an image that is not
// present and cannot be pulled wraps ErrImageUnavailable; an engine that
// cannot be reached or a done ctx return the client's error. Identity is
// safe for concurrent use.
func (b *Backend) Identity(ctx context.Context, s *exec.Spec) (string, error) {
	ref := b.imageRef(s)
	if ref == "" {
		return "", &exec.StartError{Backend: "docker", Task: s.Task, Msg: "no image: set `image` on the task or on its docker backend"}
	}
	img, err := b.image(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("docker: identity of task %q: %w", s.Task, err)
	}
	return identity(img.id, b.cfg), nil
}

// identity formats Identity's result.
func identity(imageID string, cfg Config) string {
	var sb strings.Builder
	sb.WriteString("docker ")
	sb.WriteString(imageID)
	if cfg.User != "" {
		fmt.Fprintf(&sb, " user=%q", cfg.User)
	}
	if cfg.Workdir != "" && cfg.Workdir != DefaultWorkdir {
		fmt.Fprintf(&sb, " workdir=%q", cfg.Workdir)
	}
	if len(cfg.Env) > 0 {
		fmt.Fprintf(&sb, " env=%s", envDigest(cfg.Env))
	}
	return sb.String()
}

// image resolves ref to its image ID once per Backend: concurrent callers
// for the same ref wait for the first. A resolution that failed only
// because its caller's ctx ended is forgotten, so that the next caller
// tries again.
func (b *Backend) image(ctx context.Context, ref string) (image, error) {
	for {
		b.mu.Lock()
		e, ok := b.images[ref]
		if !ok {
			e = &imageEntry{done: make(chan struct{})}
			b.images[ref] = e
			b.mu.Unlock()
			e.img, e.err = b.resolve(ctx, ref)
			if e.err != nil && isContextErr(e.err) {
				b.mu.Lock()
				delete(b.images, ref)
				b.mu.Unlock()
			}
			close(e.done)
			return e.img, e.err
		}
		b.mu.Unlock()
		select {
		case <-e.done:
		case <-ctx.Done():
			return image{}, ctx.Err()
		}
		if e.err != nil && isContextErr(e.err) && ctx.Err() == nil {
			continue // the first caller gave up; try again
		}
		return e.img, e.err
	}
}

// resolve inspects ref, pulling it as the pull policy says.
func (b *Backend) resolve(ctx context.Context, ref string) (image, error) {
	cli, err := b.client()
	if err != nil {
		return image{}, err
	}
	if b.cfg.Pull == PullAlways {
		if err := b.pull(ctx, cli, ref); err != nil {
			return image{}, err
		}
	}
	img, err := inspectImage(ctx, cli, ref)
	if err == nil || !cerrdefs.IsNotFound(err) {
		return img, err
	}
	switch b.cfg.Pull {
	case PullNever:
		return image{}, &imageError{image: ref, reason: "it is not present locally and pull is \"never\""}
	case PullAlways:
		// Pulled a moment ago, yet not there: the engine's answer says why.
		return image{}, &imageError{image: ref, reason: "it was pulled but is not present: " + engineText(err), err: err}
	}
	if err := b.pull(ctx, cli, ref); err != nil {
		return image{}, err
	}
	return inspectImage(ctx, cli, ref)
}

func inspectImage(ctx context.Context, cli *client.Client, ref string) (image, error) {
	r, err := cli.ImageInspect(ctx, ref)
	if err != nil {
		if cerrdefs.IsNotFound(err) || isContextErr(err) {
			return image{}, err
		}
		return image{}, fmt.Errorf("inspect image %q: %w", ref, engineError{err})
	}
	if r.ID == "" {
		return image{}, fmt.Errorf("inspect image %q: the engine returned no image ID", ref)
	}
	img := image{id: r.ID, path: defaultPath}
	if r.Config != nil {
		for _, kv := range r.Config.Env {
			if p, ok := strings.CutPrefix(kv, "PATH="); ok {
				img.path = p
			}
		}
	}
	return img, nil
}

// pull pulls ref and waits for the pull to finish.
func (b *Backend) pull(ctx context.Context, cli *client.Client, ref string) error {
	b.log(fmt.Sprintf("docker: pulling image %s", ref))
	resp, err := cli.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err == nil {
		err = resp.Wait(ctx)
	}
	if err != nil {
		if isContextErr(err) && ctx.Err() != nil {
			return err
		}
		return &imageError{image: ref, reason: "it is not present locally and the pull failed: " + engineText(err), err: err}
	}
	return nil
}

// envDigest is a short digest of env's sorted NAME=value pairs, so that
// values, which may be secrets, never appear in a key's preimage.
func envDigest(env map[string]string) string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%d:%s%d:%s", len(k), k, len(env[k]), env[k])
	}
	return fmt.Sprintf("sha256:%x", h.Sum(nil))
}
