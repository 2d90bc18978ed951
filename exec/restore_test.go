package exec

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckPath(t *testing.T) {
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{"out/a.txt", true},
		{"a", true},
		{"a/b/c", true},
		{"", false},
		{".", false},
		{"/etc/passwd", false},
		{"../x", false},
		{"a/../../x", false},
		{"a/..", false},
		{"C:/x", false},
		{"c:x", false},
		{`a\b`, false},
		{"a//b", false},
		{"./a", false},
	} {
		err := CheckPath(tc.path)
		if (err == nil) != tc.ok {
			t.Errorf("CheckPath(%q) = %v, want ok=%v", tc.path, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrUnsafePath) {
			t.Errorf("CheckPath(%q) error %v does not wrap ErrUnsafePath", tc.path, err)
		}
	}
}

func newRestorer(t *testing.T) (*Restorer, string) {
	t.Helper()
	ws := t.TempDir()
	r, err := NewRestorer(ws)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, ws
}

func TestWriteFileModeAndContent(t *testing.T) {
	r, ws := newRestorer(t)
	n, err := r.WriteFile("out/bin/tool", 0o755, strings.NewReader("#!/bin/sh\n"))
	if err != nil || n != 10 {
		t.Fatalf("WriteFile = %d, %v", n, err)
	}
	st, err := os.Stat(filepath.Join(ws, "out/bin/tool"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o755 {
		t.Errorf("mode %v, want 0755", st.Mode().Perm())
	}
	left, _ := filepath.Glob(filepath.Join(ws, "out/bin/.rustypipe-tmp-*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestWriteFileReplacesSymlink(t *testing.T) {
	r, ws := newRestorer(t)
	outside := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(outside, []byte("keep"), 0o644)
	if err := os.Symlink(outside, filepath.Join(ws, "out.txt")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.WriteFile("out.txt", 0o644, strings.NewReader("new")); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(outside); string(data) != "keep" {
		t.Fatalf("wrote through the symlink: victim now %q", data)
	}
	st, _ := os.Lstat(filepath.Join(ws, "out.txt"))
	if st.Mode()&os.ModeSymlink != 0 {
		t.Fatal("symlink was not replaced")
	}
}

func TestWriteFileRefusesEscapingParent(t *testing.T) {
	r, ws := newRestorer(t)
	outside := t.TempDir()
	os.Symlink(outside, filepath.Join(ws, "link"))
	if _, err := r.WriteFile("link/x.txt", 0o644, strings.NewReader("x")); err == nil {
		t.Fatal("wrote through a symlinked directory that leaves the workspace")
	}
	if _, err := os.Stat(filepath.Join(outside, "x.txt")); err == nil {
		t.Fatal("file appeared outside the workspace")
	}
	for _, bad := range []string{"../x", "/tmp/x", "C:/x"} {
		if _, err := r.WriteFile(bad, 0o644, strings.NewReader("x")); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("WriteFile(%q) = %v, want ErrUnsafePath", bad, err)
		}
	}
}

func TestSymlinkTargets(t *testing.T) {
	r, ws := newRestorer(t)
	if err := r.Symlink("out/latest", "v1.txt"); err != nil {
		t.Fatalf("inside link refused: %v", err)
	}
	if got, _ := os.Readlink(filepath.Join(ws, "out/latest")); got != "v1.txt" {
		t.Fatalf("link target %q", got)
	}
	for _, target := range []string{"../../etc/passwd", "/etc/passwd", "../../x"} {
		if err := r.Symlink("out/bad", target); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("Symlink -> %q = %v, want ErrUnsafePath", target, err)
		}
	}
	if err := r.Symlink("a/b/ok", "../c"); err != nil {
		t.Errorf("a/b/ok -> ../c stays inside but was refused: %v", err)
	}
}

func TestExtractTar(t *testing.T) {
	mk := func(entries ...*tar.Header) *bytes.Buffer {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, h := range entries {
			tw.WriteHeader(h)
			if h.Typeflag == tar.TypeReg {
				tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
			}
		}
		tw.Close()
		return &buf
	}
	all := func(string) bool { return true }
	r, ws := newRestorer(t)
	got, err := r.ExtractTar(mk(
		&tar.Header{Name: "out/", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "out/a.txt", Typeflag: tar.TypeReg, Mode: 0o640, Size: 3},
		&tar.Header{Name: "out/l", Typeflag: tar.TypeSymlink, Linkname: "a.txt"},
	), all)
	if err != nil || len(got) != 2 {
		t.Fatalf("ExtractTar = %v, %v", got, err)
	}
	if data, _ := os.ReadFile(filepath.Join(ws, "out/a.txt")); string(data) != "xxx" {
		t.Fatalf("content %q", data)
	}
	for name, h := range map[string]*tar.Header{
		"dotdot":   {Name: "../evil", Typeflag: tar.TypeReg, Size: 1},
		"absolute": {Name: "/evil", Typeflag: tar.TypeReg, Size: 1},
		"link-out": {Name: "out/l2", Typeflag: tar.TypeSymlink, Linkname: "../../evil"},
		"device":   {Name: "out/dev", Typeflag: tar.TypeChar},
		"hardlink": {Name: "out/h", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"},
	} {
		if _, err := r.ExtractTar(mk(h), all); err == nil {
			t.Errorf("%s: accepted %q", name, h.Name)
		}
	}
	if _, err := r.ExtractTar(mk(&tar.Header{Name: "undeclared.txt", Typeflag: tar.TypeReg, Size: 1}), func(string) bool { return false }); err == nil {
		t.Error("accepted an undeclared output")
	}
}
