package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/rustypipe/rustypipe/exec"
	"github.com/rustypipe/rustypipe/exec/exectest"
	"github.com/rustypipe/rustypipe/exec/external"
	"github.com/rustypipe/rustypipe/remote/docker"
	"github.com/rustypipe/rustypipe/remote/docker/dockerconfig"
)

// These tests run the helper as rustypipe does: built, started by the
// external backend's client, and spoken to over the protocol. The backend's
// behaviour is tested in remote/docker, in process and through the
// protocol; here it is the executable's part.

// helperPath builds the helper once per test binary.
func helperPath(t *testing.T) string { return exectest.GoBuild(t, "rustypipe-docker") }

func TestMain(m *testing.M) {
	code := m.Run()
	exectest.RemoveBuilt()
	os.Exit(code)
}

func newHelper(t *testing.T, config map[string]any) *external.Backend {
	t.Helper()
	b := external.New(external.Options{
		Command: []string{helperPath(t)},
		Config:  config,
		Name:    "box",
		Log:     exectest.Logger(t),
	})
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func TestRefusesBadConfig(t *testing.T) {
	b := newHelper(t, map[string]any{"image": "x", "imagee": "y"})
	res, err := b.Run(context.Background(), &exec.Spec{Task: "t", Script: "true", Workspace: t.TempDir(),
		Stdout: io.Discard, Stderr: io.Discard})
	if res != nil || !errors.Is(err, exec.ErrStart) || !strings.Contains(err.Error(), `unknown config key "imagee"`) {
		t.Errorf("Run = %+v, %v; want a start error naming the key", res, err)
	}
}

// TestIdentity checks that the helper states the identity that the backend
// states in process, for the options as rustypipe sends them.
func TestIdentity(t *testing.T) {
	cli := testEngine(t)
	ctx := context.Background()
	const ref = "rustypipe-test/identity:1"
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "marker", Mode: 0o644, Size: 2, ModTime: time.Unix(1700000000, 0)})
	tw.Write([]byte("x\n"))
	tw.Close()
	resp, err := cli.ImageImport(ctx, client.ImageImportSource{Source: &buf, SourceName: "-"}, ref, client.ImageImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp)
	resp.Close()
	t.Cleanup(func() { cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{Force: true}) })

	cfg, err := dockerconfig.Parse(map[string]any{"image": ref, "pull": "never", "user": "nobody", "env": map[string]any{"N": 3}})
	if err != nil {
		t.Fatal(err)
	}
	in, err := docker.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	want, err := in.Identity(ctx, &exec.Spec{Task: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(want, "docker sha256:") {
		t.Fatalf("in-process Identity = %q, want docker sha256:...", want)
	}
	got, err := newHelper(t, cfg.Options()).Identity(ctx, &exec.Spec{Task: "t", Workspace: t.TempDir()})
	if err != nil || got != want {
		t.Errorf("Identity through rustypipe-docker = %q, %v; want %q as in process", got, err, want)
	}
}

// testEngine returns a client of a reachable engine, or skips the test
// (fails it when RUSTYPIPE_TEST_DOCKER is "1").
func testEngine(t *testing.T) *client.Client {
	t.Helper()
	cli, err := client.New(client.FromEnv)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	}
	if err != nil {
		if os.Getenv("RUSTYPIPE_TEST_DOCKER") == "1" {
			t.Fatalf("RUSTYPIPE_TEST_DOCKER=1 but no Docker engine answers (start one with scripts/services/dockerd.sh): %v", err)
		}
		t.Skipf("no Docker engine reachable: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}
