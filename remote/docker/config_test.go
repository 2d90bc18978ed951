package docker

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rustypipe/rustypipe/exec"
	"github.com/rustypipe/rustypipe/exec/exectest"
)

func TestContainerEnv(t *testing.T) {
	tests := []struct {
		name    string
		task    []string
		backend map[string]string
		want    []string
	}{
		{"host variables dropped",
			[]string{"PATH=/usr/bin", "HOME=/home/me", "USER=me", "SHELL=/bin/zsh", "TMPDIR=/tmp/x", "PWD=/w", "CI=1"},
			nil, []string{"CI=1"}},
		{"order kept, malformed dropped", []string{"B=2", "noequals", "=x", "A=1", "E="}, nil, []string{"B=2", "A=1", "E="}},
		{"last duplicate wins in first place", []string{"A=1", "B=2", "A=3"}, nil, []string{"A=3", "B=2"}},
		{"backend on top, sorted", []string{"A=task", "C=3"}, map[string]string{"Z": "z", "A": "backend"},
			[]string{"C=3", "A=backend", "Z=z"}},
		{"backend may set PATH", []string{"PATH=/host"}, map[string]string{"PATH": "/opt/bin:/bin"}, []string{"PATH=/opt/bin:/bin"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := containerEnv(tc.task, tc.backend); !slices.Equal(got, tc.want) {
				t.Errorf("containerEnv = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestIdentityFormat(t *testing.T) {
	const id = "sha256:0123"
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"image only", Config{}, "docker sha256:0123"},
		{"default workdir", Config{Workdir: DefaultWorkdir}, "docker sha256:0123"},
		{"limits and mounts excluded", Config{CPUs: 2, Memory: 1 << 20, Network: "none", Mounts: []Mount{{Source: "/a", Target: "/b"}}}, "docker sha256:0123"},
		{"user and workdir", Config{User: "nobody", Workdir: "/src"}, `docker sha256:0123 user="nobody" workdir="/src"`},
	}
	for _, tc := range tests {
		if got := identity(id, tc.cfg); got != tc.want {
			t.Errorf("%s: identity = %q, want %q", tc.name, got, tc.want)
		}
	}
	a := identity(id, Config{Env: map[string]string{"K": "secret-1"}})
	b := identity(id, Config{Env: map[string]string{"K": "secret-2"}})
	c := identity(id, Config{Env: map[string]string{"K": "secret-1"}})
	if a == b || a != c {
		t.Errorf("identities with env: %q, %q, %q; want the first two to differ and the first and last to match", a, b, c)
	}
	if strings.Contains(a, "secret") {
		t.Errorf("identity %q shows an env value", a)
	}
}

func TestMountOfEngineSocketRefused(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "run", "engine.sock")
	t.Setenv("DOCKER_HOST", "unix://"+sock)
	refused := []string{"/var/run/docker.sock", "/run/docker.sock", "/var/run", "/run", "/", sock, filepath.Dir(sock)}
	for _, src := range refused {
		_, err := New(Config{Image: "x", Mounts: []Mount{{Source: src, Target: "/m"}}}, nil)
		if err == nil || !strings.Contains(err.Error(), `"mounts"`) {
			t.Errorf("New with a mount of %s: error %v, want a refusal naming the key mounts", src, err)
		}
	}
	if runtime.GOOS != "windows" {
		// A symlink to the socket's directory is refused too.
		link := filepath.Join(t.TempDir(), "link")
		if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Dir(sock), link); err != nil {
			t.Fatal(err)
		}
		if _, err := New(Config{Image: "x", Mounts: []Mount{{Source: link, Target: "/m"}}}, nil); err == nil {
			t.Errorf("New with a mount of %s, a symlink to the socket's directory: no error", link)
		}
	}
	ok := t.TempDir()
	if _, err := New(Config{Image: "x", Mounts: []Mount{{Source: ok, Target: "/m"}, {Source: "relative/dir", Target: "/r"}}}, nil); err != nil {
		t.Errorf("New with a mount of %s: %v", ok, err)
	}

	// A relative source is checked by Run, against the workspace.
	b, err := New(Config{Image: "x", Mounts: []Mount{{Source: "run", Target: "/m"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Run(t.Context(), &exec.Spec{Task: "t", Workspace: filepath.Dir(filepath.Dir(sock)), Script: "true", Stdout: io.Discard, Stderr: io.Discard})
	if !errors.Is(err, exec.ErrStart) || !strings.Contains(err.Error(), "socket") {
		t.Errorf("Run with a workspace-relative mount of the socket's directory: %v, want a start error about the socket", err)
	}
}

func TestRunBadSpec(t *testing.T) {
	// These fail before the engine is contacted.
	b, err := New(Config{Image: "x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws := t.TempDir()
	for name, sp := range map[string]*exec.Spec{
		"unknown shell": {Shell: "fish"},
		"dir escapes":   {Dir: "../x"},
		"dir absolute":  {Dir: "/etc"},
	} {
		sp.Task, sp.Workspace, sp.Script, sp.Stdout, sp.Stderr = name, ws, "true", io.Discard, io.Discard
		res, err := b.Run(t.Context(), sp)
		if !errors.Is(err, exec.ErrStart) || res != nil {
			t.Errorf("%s: Run = %v, %v; want a nil Result and an error wrapping exec.ErrStart", name, res, err)
		}
	}
	b.Close()
	_, err = b.Run(t.Context(), &exec.Spec{Task: "t", Workspace: ws, Script: "true", Stdout: io.Discard, Stderr: io.Discard})
	if !errors.Is(err, exec.ErrStart) {
		t.Errorf("Run after Close: %v, want an error wrapping exec.ErrStart", err)
	}
}

func TestWriteInputs(t *testing.T) {
	ws := t.TempDir()
	write := func(rel, content string, mode os.FileMode) {
		p := filepath.Join(ws, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("a.txt", "A", 0o644)
	write("src/x/run.sh", "#!/bin/sh", 0o755)
	write("tree/one", "1", 0o644)
	write("tree/sub/two", "22", 0o644)
	var buf bytes.Buffer
	if err := writeInputs(&buf, ws, "/work/space", "build/out", []string{"a.txt", "src/x/run.sh", "tree"}); err != nil {
		t.Fatal(err)
	}
	type entry struct {
		typ     byte
		content string
	}
	got := map[string]entry{}
	var order []string
	exectest.TarEntries(t, &buf, func(h *tar.Header, b []byte) {
		got[h.Name] = entry{h.Typeflag, string(b)}
		order = append(order, h.Name)
		if h.Name == "work/space/src/x/run.sh" && runtime.GOOS != "windows" && h.Mode&0o111 == 0 {
			t.Errorf("run.sh mode %o lost its execute bits", h.Mode)
		}
	})
	want := map[string]entry{
		"work/space/":             {tar.TypeDir, ""},
		"work/space/build/":       {tar.TypeDir, ""},
		"work/space/build/out/":   {tar.TypeDir, ""},
		"work/space/a.txt":        {tar.TypeReg, "A"},
		"work/space/src/":         {tar.TypeDir, ""},
		"work/space/src/x/":       {tar.TypeDir, ""},
		"work/space/src/x/run.sh": {tar.TypeReg, "#!/bin/sh"},
		"work/space/tree/":        {tar.TypeDir, ""},
		"work/space/tree/one":     {tar.TypeReg, "1"},
		"work/space/tree/sub/":    {tar.TypeDir, ""},
		"work/space/tree/sub/two": {tar.TypeReg, "22"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tar entries = %v\nwant %v", got, want)
	}
	// Every directory comes before what it holds.
	for i, name := range order {
		dir := filepath.ToSlash(filepath.Dir(strings.TrimSuffix(name, "/"))) + "/"
		if dir == "work/" || dir == "./" {
			continue
		}
		if j := slices.Index(order, dir); j < 0 || j > i {
			t.Errorf("%s comes before its directory %s", name, dir)
		}
	}

	if err := writeInputs(io.Discard, ws, "/w", "", []string{"missing.txt"}); err == nil || !strings.Contains(err.Error(), "missing.txt") {
		t.Errorf("writeInputs with a missing input: %v, want an error naming it", err)
	}
}

func TestFilterTar(t *testing.T) {
	// The engine's archive of /workspace/out: entries named after "out".
	var src bytes.Buffer
	tw := tar.NewWriter(&src)
	add := func(h *tar.Header, content string) {
		h.Size = int64(len(content))
		h.ModTime = time.Unix(1e9, 0)
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	add(&tar.Header{Typeflag: tar.TypeDir, Name: "out/", Mode: 0o755}, "")
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "out/a.txt", Mode: 0o644}, "alpha")
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "out/skip.log", Mode: 0o644}, "not declared")
	add(&tar.Header{Typeflag: tar.TypeDir, Name: "out/gen/", Mode: 0o755}, "")
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "out/gen/b.txt", Mode: 0o755}, "beta")
	add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "out/link.txt", Linkname: "a.txt"}, "")
	add(&tar.Header{Typeflag: tar.TypeLink, Name: "out/hard.txt", Linkname: "out/a.txt"}, "")
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	allow := exec.OutputMatcher([]string{"build/out/*.txt", "build/out/gen/*"})
	var dst bytes.Buffer
	links, err := filterTar(&dst, &src, "out", "build/out", allow)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"build/out/hard.txt"}; !slices.Equal(links, want) {
		t.Errorf("hard links = %q, want %q", links, want)
	}
	var names []string
	exectest.TarEntries(t, &dst, func(h *tar.Header, b []byte) {
		names = append(names, h.Name+"="+string(b)+h.Linkname)
	})
	want := []string{"build/out/a.txt=alpha", "build/out/gen/b.txt=beta", "build/out/link.txt=a.txt"}
	if !slices.Equal(names, want) {
		t.Errorf("filtered entries = %q, want %q", names, want)
	}

	// An entry outside the requested path is refused.
	var bad bytes.Buffer
	tw = tar.NewWriter(&bad)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "other/x", Mode: 0o644})
	tw.Close()
	if _, err := filterTar(io.Discard, &bad, "out", "out", allow); err == nil {
		t.Error("filterTar accepted an entry outside the archived path")
	}
}
