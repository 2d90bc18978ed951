package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rustypipe/rustypipe/exec"
	"github.com/rustypipe/rustypipe/exec/exectest"
	"github.com/rustypipe/rustypipe/exec/external"
	"github.com/rustypipe/rustypipe/remote/kube/kubetest"
)

// These tests run the helper as rustypipe does: built, started by the
// external backend's client, and spoken to over the protocol. The ones
// that run tasks need the test cluster of scripts/k8s/up.sh (see
// remote/kube's tests); the others need none.

// helperPath builds the helper once per test binary.
func helperPath(t *testing.T) string { return exectest.GoBuild(t, "rustypipe-kube") }

func TestMain(m *testing.M) {
	code := m.Run()
	exectest.RemoveBuilt()
	if cluster.c != nil {
		cluster.c.Close()
	}
	os.Exit(code)
}

func newHelper(t *testing.T, config map[string]any) *external.Backend {
	t.Helper()
	var mu sync.Mutex
	done := false
	t.Cleanup(func() { mu.Lock(); done = true; mu.Unlock() })
	b := external.New(external.Options{
		Command: []string{helperPath(t)},
		Config:  config,
		Name:    "k8s",
		Log: func(msg string) {
			mu.Lock()
			defer mu.Unlock()
			if !done {
				t.Log(msg)
			}
		},
	})
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func TestRefusesBadConfig(t *testing.T) {
	b := newHelper(t, map[string]any{"type": "kubernetes", "image": "busybox:1", "imagee": "x"})
	res, err := b.Run(context.Background(), &exec.Spec{Task: "t", Script: "true", Workspace: t.TempDir(),
		Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}})
	if res != nil || !errors.Is(err, exec.ErrStart) || !strings.Contains(err.Error(), `unknown config key "imagee"`) {
		t.Errorf("Run = %+v, %v; want a start error naming the key", res, err)
	}
}

func TestIdentity(t *testing.T) {
	digest := "sha256:" + strings.Repeat("0f", 32)
	b := newHelper(t, map[string]any{"type": "kubernetes", "image": "busybox:1.36"})
	for image, want := range map[string]string{
		"":                       "kubernetes tag:busybox:1.36",
		"busybox:1.36@" + digest: "kubernetes image@" + digest,
	} {
		got, err := b.Identity(context.Background(), &exec.Spec{Task: "t", Image: image, Workspace: t.TempDir()})
		if err != nil || got != want {
			t.Errorf("Identity(image %q) = %q, %v; want %q", image, got, err, want)
		}
	}
}

// The test cluster, as remote/kube's tests find it.
var cluster struct {
	once sync.Once
	c    *kubetest.Cluster
	err  error
}

func testCluster(t *testing.T) *kubetest.Cluster {
	t.Helper()
	cluster.once.Do(func() { cluster.c, cluster.err = kubetest.Open("rp-kube-helper-test-") })
	if cluster.err != nil {
		if os.Getenv("RUSTYPIPE_TEST_KUBE") == "1" {
			t.Fatalf("RUSTYPIPE_TEST_KUBE=1 but no test cluster: %v", cluster.err)
		}
		t.Skipf("no test cluster (%v); run scripts/k8s/up.sh, or set KUBECONFIG", cluster.err)
	}
	return cluster.c
}

func clusterConfig(t *testing.T) map[string]any {
	c := testCluster(t)
	return map[string]any{
		"type": "kubernetes", "kubeconfig": c.Kubeconfig, "namespace": c.Namespace,
		"image": "rp-busybox:test", "image_pull_policy": "Never", "concurrency": 4,
	}
}

func TestRunThroughHelper(t *testing.T) {
	b := newHelper(t, clusterConfig(t))
	ws := t.TempDir()
	if err := os.WriteFile(filepath.Join(ws, "in.txt"), []byte("input\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	sp := &exec.Spec{
		Task: "through-helper", RunID: "helper-test",
		Script:    `cat in.txt; echo "$GREETING" >&2; mkdir -p out && echo made > out/x.txt && echo no > out/y.key; exit 3`,
		Env:       []string{"GREETING=hello"},
		Workspace: ws, Inputs: []string{"in.txt"}, Outputs: []string{"out/*.txt"},
		Stdout: &stdout, Stderr: &stderr, Grace: 5 * time.Second,
	}
	res, err := b.Run(context.Background(), sp)
	if err != nil {
		t.Fatalf("Run: %v; stderr %q", err, stderr.String())
	}
	if res.ExitCode != 3 || stdout.String() != "input\n" || stderr.String() != "hello\n" {
		t.Errorf("exit %d, stdout %q, stderr %q; want 3, the input, hello", res.ExitCode, stdout.String(), stderr.String())
	}
	if got, err := os.ReadFile(filepath.Join(ws, "out", "x.txt")); err != nil || string(got) != "made\n" {
		t.Errorf("out/x.txt = %q, %v; want the output restored into the workspace", got, err)
	}
	if _, err := os.Stat(filepath.Join(ws, "out", "y.key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an undeclared output came back: %v", err)
	}
}

func TestTimeoutThroughHelper(t *testing.T) {
	b := newHelper(t, clusterConfig(t))
	var stdout bytes.Buffer
	sp := &exec.Spec{
		Task: "timeout-through-helper", RunID: "helper-test",
		Script: `echo started; sleep 60`, Workspace: t.TempDir(),
		Stdout: &stdout, Stderr: &bytes.Buffer{}, Grace: 5 * time.Second,
	}
	cause := errors.New("task timeout")
	ctx, cancel := context.WithTimeoutCause(context.Background(), 10*time.Second, cause)
	defer cancel()
	res, err := b.Run(ctx, sp)
	if !errors.Is(err, cause) {
		t.Errorf("Run error = %v, want one wrapping %v", err, cause)
	}
	if res == nil || res.ExitCode != -1 || res.Signal != "terminated" || stdout.String() != "started\n" {
		t.Errorf("Result %+v, stdout %q; want a task ended by SIGTERM after it started", res, stdout.String())
	}
}
