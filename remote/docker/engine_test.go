package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// requireEnv, when "1", turns a missing engine (or a missing static busybox
// to build the test image from) into a test failure instead of a skip.
const requireEnv = "RUSTYPIPE_TEST_DOCKER"

// testImageRef is the image the engine tests run in: busybox and nothing
// else, built by the tests from the host's static busybox, never pulled.
// Bump the tag when testRootfs changes.
const testImageRef = "rustypipe-test/busybox:1"

var engine struct {
	once   sync.Once
	cli    *client.Client
	reason string // why the engine tests cannot run; "" when they can
}

// testEngine returns a client of a reachable engine on which testImageRef
// exists, or skips the test (fails it when requireEnv is "1").
func testEngine(t *testing.T) *client.Client {
	t.Helper()
	engine.once.Do(func() {
		cli, err := client.New(client.FromEnv)
		if err != nil {
			engine.reason = fmt.Sprintf("docker client: %v", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
			engine.reason = fmt.Sprintf("no Docker engine reachable (start one with scripts/services/dockerd.sh): %v", err)
			return
		}
		if _, err := cli.ImageInspect(ctx, testImageRef); err != nil {
			rootfs, err := testRootfs(nil)
			if err != nil {
				engine.reason = err.Error()
				return
			}
			if err := importImage(ctx, cli, rootfs, testImageRef); err != nil {
				engine.reason = err.Error()
				return
			}
		}
		engine.cli = cli
	})
	if engine.reason != "" {
		if os.Getenv(requireEnv) == "1" {
			t.Fatalf("%s=1 but: %s", requireEnv, engine.reason)
		}
		t.Skip(engine.reason)
	}
	return engine.cli
}

// staticBusybox returns the path of a statically linked busybox, which runs
// in an image that has nothing else.
func staticBusybox() (string, error) {
	p, err := osexec.LookPath("busybox")
	if err != nil {
		return "", fmt.Errorf("no busybox to build the test image from (install a static one, e.g. Debian's busybox-static): %v", err)
	}
	f, err := elf.Open(p)
	if err != nil {
		return "", fmt.Errorf("busybox %s: %v", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return "", fmt.Errorf("busybox %s is dynamically linked; the test image needs a static one (e.g. Debian's busybox-static)", p)
		}
	}
	return p, nil
}

// busyboxApplets are linked to busybox in the test image.
var busyboxApplets = []string{"sh", "echo", "printf", "cat", "sleep", "mkdir", "test", "[", "dd", "head",
	"ls", "rm", "kill", "id", "ln", "wc", "env", "true", "false", "pwd", "touch", "stat"}

// testRootfs returns a root file system as a tar: busybox, its applets as
// symlinks, /etc/passwd and /etc/group with root and nobody, /tmp, and the
// extra files given (name to content).
func testRootfs(extra map[string]string) ([]byte, error) {
	bb, err := staticBusybox()
	if err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(bb)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mod := time.Unix(1700000000, 0)
	file := func(name string, mode int64, content []byte) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(content)), ModTime: mod})
		tw.Write(content)
	}
	dir := func(name string, mode int64) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: mod})
	}
	dir("bin/", 0o755)
	file("bin/busybox", 0o755, bin)
	for _, a := range busyboxApplets {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", ModTime: mod})
	}
	dir("etc/", 0o755)
	file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"))
	file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n"))
	dir("root/", 0o700)
	dir("tmp/", 0o1777)
	for name, content := range extra {
		file(name, 0o644, []byte(content))
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// importImage creates the image ref from a root file system tar through the
// engine's API (no registry involved).
func importImage(ctx context.Context, cli *client.Client, rootfs []byte, ref string) error {
	resp, err := cli.ImageImport(ctx, client.ImageImportSource{Source: bytes.NewReader(rootfs), SourceName: "-"}, ref,
		client.ImageImportOptions{Changes: []string{"ENV PATH=/usr/local/bin:/usr/bin:/bin", "ENV HOME=/root", "ENV FROM_IMAGE=yes"}})
	if err != nil {
		return fmt.Errorf("import image %s: %v", ref, err)
	}
	defer resp.Close()
	out, err := io.ReadAll(resp)
	if err != nil {
		return fmt.Errorf("import image %s: %v", ref, err)
	}
	if bytes.Contains(out, []byte(`"errorDetail"`)) {
		return fmt.Errorf("import image %s: %s", ref, strings.TrimSpace(string(out)))
	}
	return nil
}

// containersLabelled lists the containers, running or not, with the label
// key=value.
func containersLabelled(t *testing.T, cli *client.Client, key, value string) []string {
	t.Helper()
	list, err := cli.ContainerList(context.Background(), client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("label", key+"="+value),
	})
	if err != nil {
		t.Fatalf("list containers: %v", err)
	}
	var ids []string
	for _, c := range list.Items {
		ids = append(ids, c.ID)
	}
	return ids
}
