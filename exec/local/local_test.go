package local_test

import (
	"context"
	"errors"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rustypipe/rustypipe/exec"
	"github.com/rustypipe/rustypipe/exec/exectest"
	"github.com/rustypipe/rustypipe/exec/local"
)

func TestConformance(t *testing.T) {
	if _, err := osexec.LookPath("sh"); err != nil {
		t.Skip("no sh in PATH:", err)
	}
	exectest.Run(t, func(t *testing.T) exec.Backend { return local.New() }, exectest.Options{
		Shell:    "sh",
		Env:      []string{"PATH=" + os.Getenv("PATH")},
		PIDCheck: pidCheck,
	})
}

// spec returns a Spec for a sh script in ws, with the test's PATH.
func spec(t *testing.T, ws, script string) *exec.Spec {
	return &exec.Spec{
		Task:      t.Name(),
		Script:    script,
		Shell:     "sh",
		Env:       []string{"PATH=" + os.Getenv("PATH")},
		Workspace: ws,
		Stdout:    &strings.Builder{},
		Stderr:    &strings.Builder{},
	}
}

func TestStartErrors(t *testing.T) {
	ws := t.TempDir()
	if err := os.WriteFile(filepath.Join(ws, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		edit  func(s *exec.Spec)
		path  string // PATH of this process during Run; "" leaves it
		wants string // part of the message
	}{
		{"missing dir", func(s *exec.Spec) { s.Dir = "no/such/dir" }, "", "working directory"},
		{"dir is a file", func(s *exec.Spec) { s.Dir = "file" }, "", "is not a directory"},
		{"dir outside workspace", func(s *exec.Spec) { s.Dir = "../x" }, "", "not inside the workspace"},
		{"relative workspace", func(s *exec.Spec) { s.Workspace = "rel" }, "", "not an absolute path"},
		{"unknown shell", func(s *exec.Spec) { s.Shell = "zsh" }, "", `unknown shell "zsh"`},
		{"shell not found", func(s *exec.Spec) {}, t.TempDir(), `shell "sh"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := spec(t, ws, "echo ran > ran.txt")
			tc.edit(s)
			if tc.path != "" {
				t.Setenv("PATH", tc.path)
			}
			res, err := local.New().Run(context.Background(), s)
			if !errors.Is(err, exec.ErrStart) {
				t.Fatalf("Run error = %v, want one wrapping exec.ErrStart", err)
			}
			if !strings.Contains(err.Error(), tc.wants) || !strings.Contains(err.Error(), s.Task) {
				t.Errorf("Run error = %q, want it to name the task and contain %q", err, tc.wants)
			}
			if res != nil {
				t.Errorf("Run returned Result %+v for a task that did not start", res)
			}
			if _, err := os.Stat(filepath.Join(ws, "ran.txt")); err == nil {
				t.Error("the script ran")
			}
		})
	}
}

func TestRunAfterClose(t *testing.T) {
	b := local.New()
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, err := b.Run(context.Background(), spec(t, t.TempDir(), "true"))
	if !errors.Is(err, exec.ErrStart) {
		t.Errorf("Run after Close: error = %v, want one wrapping exec.ErrStart", err)
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

// TestWriteError checks that a failing writer is reported and that the task,
// which writes far more than a pipe holds, gets EPIPE instead of blocking.
func TestWriteError(t *testing.T) {
	boom := errors.New("disk full")
	s := spec(t, t.TempDir(), "dd if=/dev/zero bs=1048576 count=10 2>/dev/null")
	s.Stdout = failingWriter{boom}
	res, err := local.New().Run(context.Background(), s)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "stdout") {
		t.Errorf("Run error = %v, want one wrapping %v that names stdout", err, boom)
	}
	if res == nil {
		t.Fatal("Run returned no Result for a task that ran")
	}
	if res.ExitCode == 0 {
		t.Errorf("Result = %+v, want the task to fail writing to a closed pipe", res)
	}
}

// BenchmarkRun measures the cost of one trivial task: start, group set-up,
// exit, clean-up of the group and of the pipes.
func BenchmarkRun(b *testing.B) {
	be := local.New()
	ws := b.TempDir()
	for b.Loop() {
		s := &exec.Spec{Task: "bench", Script: "exit 0", Shell: "sh", Workspace: ws,
			Stdout: &strings.Builder{}, Stderr: &strings.Builder{}}
		if _, err := be.Run(context.Background(), s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOSExec is the baseline for BenchmarkRun: the same shell run with
// os/exec alone.
func BenchmarkOSExec(b *testing.B) {
	for b.Loop() {
		if err := osexec.Command("sh", "-c", "exit 0").Run(); err != nil {
			b.Fatal(err)
		}
	}
}
