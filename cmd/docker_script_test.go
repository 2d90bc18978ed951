//go:build linux

package cmd

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"
)

func init() {
	scriptCmds["busyboximage"] = cmdBusyboxImage
	scriptConds["docker"] = dockerAvailable
}

// dockerAvailable answers [docker]: an engine answers. With
// RUSTYPIPE_TEST_DOCKER=1 (CI) a missing engine is an error, not a skip.
func dockerAvailable() (bool, error) {
	err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").Run()
	if err != nil && os.Getenv("RUSTYPIPE_TEST_DOCKER") == "1" {
		return false, fmt.Errorf("RUSTYPIPE_TEST_DOCKER=1 but no Docker engine answers (start one with scripts/services/dockerd.sh): %v", err)
	}
	return err == nil, nil
}

// busyboximage REF [VARIANT] imports an image made of the host's static
// busybox, tagged REF, with nothing pulled. A VARIANT string is written into
// the image as /variant, so that the same tag can be pointed at different
// content. The image is removed when the script ends.
func cmdBusyboxImage(ts *testscript.TestScript, neg bool, args []string) {
	bb, err := os.ReadFile("/bin/busybox")
	ts.Check(err)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, data []byte) {
		ts.Check(tw.WriteHeader(h))
		if data != nil {
			_, err := tw.Write(data)
			ts.Check(err)
		}
	}
	add(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	add(&tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777}, nil)
	add(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb))}, bb)
	for _, tool := range []string{"sh", "echo", "cat", "mkdir", "sleep", "tr", "wc", "ls", "test", "printf", "head"} {
		add(&tar.Header{Name: "bin/" + tool, Typeflag: tar.TypeSymlink, Linkname: "busybox"}, nil)
	}
	if len(args) > 1 {
		add(&tar.Header{Name: "variant", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(args[1]))}, []byte(args[1]))
	}
	ts.Check(tw.Close())
	cmd := exec.Command("docker", "import", "-c", "ENV PATH=/bin", "-", args[0])
	cmd.Stdin = &buf
	out, err := cmd.CombinedOutput()
	if err != nil {
		ts.Fatalf("busyboximage: docker import: %v: %s", err, out)
	}
	ref := args[0]
	ts.Defer(func() { exec.Command("docker", "rmi", "-f", ref).Run() })
	ts.Logf("busyboximage: %s = %s", ref, strings.TrimSpace(string(out)))
}
