package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/rustypipe/rustypipe/exec"
	"github.com/rustypipe/rustypipe/exec/backendkit"
	"github.com/rustypipe/rustypipe/exec/exectest"
	"github.com/rustypipe/rustypipe/exec/external"
)

// The tests in this file run the backend as rustypipe does: in a helper
// process serving HelperBackend over the external-backend protocol, spoken
// to by the protocol's client. The helper is this test binary, which
// TestMain turns into one when helperEnv is set, as rustypipe-docker's
// main would.

// helperEnv makes the test binary serve HelperBackend on its stdin and
// stdout instead of running tests.
const helperEnv = "RUSTYPIPE_DOCKER_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		if err := external.Serve(context.Background(), os.Stdin, os.Stdout, HelperBackend); err != nil {
			fmt.Fprintln(os.Stderr, "docker test helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// newHelperBackend returns a protocol client whose helper is this test
// binary serving HelperBackend, configured with cfg's options as rustypipe
// sends them. It is closed when the test ends.
func newHelperBackend(t *testing.T, cfg Config) *external.Backend {
	t.Helper()
	if cfg.Image == "" {
		cfg.Image = testImageRef
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b := external.New(external.Options{
		Command: []string{exe},
		Config:  cfg.Options(),
		Name:    "box",
		Env:     append(os.Environ(), helperEnv+"=1"),
		Log:     exectest.Logger(t),
	})
	t.Cleanup(func() { b.Close() })
	return b
}

func TestConformanceThroughHelper(t *testing.T) {
	cli := testEngine(t)
	exectest.Run(t, func(t *testing.T) exec.Backend {
		return newHelperBackend(t, Config{})
	}, exectest.Options{
		Shell: "sh",
		PIDCheck: func(t *testing.T, pid int) bool {
			return len(containersLabelled(t, cli, LabelTask, t.Name())) == 0
		},
	})
}

// TestIdentityThroughHelper checks that the helper states the identity the
// backend states in process, which every cache key of a Docker task holds.
func TestIdentityThroughHelper(t *testing.T) {
	testEngine(t)
	ctx := context.Background()
	for _, cfg := range []Config{
		{},
		{User: "nobody", Workdir: "/src", Env: map[string]string{"CGO_ENABLED": "0", "TOKEN": "s3cret"}},
	} {
		cfg.Image = testImageRef
		want, err := newTestBackend(t, cfg).Identity(ctx, &exec.Spec{Task: t.Name()})
		if err != nil {
			t.Fatal(err)
		}
		got, err := newHelperBackend(t, cfg).Identity(ctx, &exec.Spec{Task: t.Name(), Workspace: t.TempDir()})
		if err != nil || got != want {
			t.Errorf("Identity through the helper = %q, %v; in process %q", got, err, want)
		}
	}
	// A task's image overrides the backend's, as in process.
	b := newHelperBackend(t, Config{Image: "rustypipe-test/absent:1", Pull: PullNever})
	want, err := newTestBackend(t, Config{}).Identity(ctx, &exec.Spec{Task: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.Identity(ctx, &exec.Spec{Task: t.Name(), Image: testImageRef}); err != nil || got != want {
		t.Errorf("Identity of a task's image through the helper = %q, %v; want %q", got, err, want)
	}
	if got, err := b.Identity(ctx, &exec.Spec{Task: t.Name()}); err == nil || !strings.Contains(err.Error(), "rustypipe-test/absent:1") {
		t.Errorf("Identity of an absent image through the helper = %q, %v; want an error naming the image", got, err)
	}
}

func TestHelperRefusesBadConfig(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b := external.New(external.Options{
		Command: []string{exe},
		Config:  map[string]any{"image": "x", "imag": "y"},
		Env:     append(os.Environ(), helperEnv+"=1"),
	})
	defer b.Close()
	sp, _, _ := spec(t, t.TempDir(), `true`)
	res, err := b.Run(context.Background(), sp)
	if res != nil || !errors.Is(err, exec.ErrStart) || !strings.Contains(err.Error(), `unknown config key "imag"`) {
		t.Errorf("Run = %+v, %v; want a start error naming the key", res, err)
	}
}

// TestHelperOwnerAndReap checks the labels of a helper's containers (the
// owner is the helper's parent, this test) and that the containers of a
// helper killed mid-task are removed by the next helper, although their
// owner still runs.
func TestHelperOwnerAndReap(t *testing.T) {
	cli := testEngine(t)
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	b := newHelperBackend(t, Config{})
	sp, _, _ := spec(t, t.TempDir(), `echo ready; sleep 60`)
	out := new(exectest.Buffer)
	sp.Stdout = out
	done := make(chan error, 1)
	go func() {
		_, err := b.Run(context.Background(), sp)
		done <- err
	}()
	select {
	case <-out.FirstLine():
	case err := <-done:
		t.Fatalf("Run returned before the task was ready: %v", err)
	}
	ids := containersLabelled(t, cli, LabelRunID, sp.RunID)
	if len(ids) != 1 {
		t.Fatalf("%d containers of the run, want 1", len(ids))
	}
	c, err := cli.ContainerInspect(context.Background(), ids[0], client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	labels := c.Container.Config.Labels
	if want := backendkit.Owner(host, os.Getpid()); labels[LabelOwner] != want {
		t.Errorf("owner label %q, want %q (the helper's parent)", labels[LabelOwner], want)
	}
	helperHost, helperPID, ok := backendkit.ParseOwner(labels[LabelHelper])
	if !ok || helperHost != host || helperPID == os.Getpid() || !backendkit.ProcessAlive(helperPID) {
		t.Fatalf("helper label %q, want this host and the pid of the running helper", labels[LabelHelper])
	}

	// Kill the helper: the task fails as its backend's failure, and its
	// container is left behind, with its owner alive.
	p, err := os.FindProcess(helperPID)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, external.ErrHelperExited) || !errors.Is(err, exec.ErrUnavailable) {
			t.Errorf("Run with its helper killed: %v, want an error wrapping ErrHelperExited and exec.ErrUnavailable", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return after its helper was killed")
	}
	if n := len(containersLabelled(t, cli, LabelRunID, sp.RunID)); n != 1 {
		t.Fatalf("%d containers of the killed helper's run, want 1 left behind", n)
	}
	t.Cleanup(func() { cli.ContainerRemove(context.Background(), ids[0], client.ContainerRemoveOptions{Force: true}) })

	// The next Run starts a new helper, which reaps it first.
	next, _, stderr := spec(t, t.TempDir(), `true`)
	if res, err := b.Run(context.Background(), next); err != nil || res.ExitCode != 0 {
		t.Fatalf("Run with a new helper = %+v, %v; stderr %q", res, err, stderr)
	}
	if left := containersLabelled(t, cli, LabelRunID, sp.RunID); len(left) != 0 {
		t.Errorf("the container %.12s of the killed helper was not reaped by the next one", left[0])
	}
}
