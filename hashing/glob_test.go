package hashing

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func globTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, rel := range []string{
		"src/a.c", "src/b.c", "src/sub/c.c", "src/sub/d.h", "src/sub/deep/e.c",
		"docs/readme.md", ".hidden/h.c", "top.c",
		".rustypipe/statmemo", ".rustypipe/blobs/x.c",
	} {
		writeFile(t, root, rel, rel, 0o644, past)
	}
	if err := os.MkdirAll(filepath.Join(root, "emptydir"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestExpandGlobs(t *testing.T) {
	root := globTree(t)
	tests := []struct {
		name      string
		patterns  []string
		files     []string
		unmatched []string
	}{
		{"star", []string{"src/*.c"}, []string{"src/a.c", "src/b.c"}, nil},
		{"doublestar", []string{"src/**/*.c"}, []string{"src/a.c", "src/b.c", "src/sub/c.c", "src/sub/deep/e.c"}, nil},
		{"doublestar anywhere", []string{"**/*.h"}, []string{"src/sub/d.h"}, nil},
		{"literal", []string{"docs/readme.md"}, []string{"docs/readme.md"}, nil},
		{"dot slash", []string{"./top.c"}, []string{"top.c"}, nil},
		{"alternatives", []string{"src/{a,b}.c"}, []string{"src/a.c", "src/b.c"}, nil},
		{"dedup and sort", []string{"src/b.c", "src/*.c", "src/a.c"}, []string{"src/a.c", "src/b.c"}, nil},
		{"directory skipped", []string{"src", "emptydir"}, nil, []string{"src", "emptydir"}},
		{"folder contents", []string{"src/sub/**"}, []string{"src/sub/c.c", "src/sub/d.h", "src/sub/deep/e.c"}, nil},
		{"no match", []string{"*.rs", "top.c", "missing/**"}, []string{"top.c"}, []string{"*.rs", "missing/**"}},
		{"hidden files match", []string{".hidden/*"}, []string{".hidden/h.c"}, nil},
		{"state dir excluded", []string{"**/*.c"}, []string{".hidden/h.c", "src/a.c", "src/b.c", "src/sub/c.c", "src/sub/deep/e.c", "top.c"}, nil},
		{"state dir literal", []string{".rustypipe/statmemo", ".rustypipe/**"}, nil, []string{".rustypipe/statmemo", ".rustypipe/**"}},
		{"root", []string{"."}, nil, []string{"."}},
		{"through a file", []string{"top.c/x", "top.c/*", "src/a.c/**"}, nil, []string{"top.c/x", "top.c/*", "src/a.c/**"}},
		{"none", nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, unmatched, err := ExpandGlobsUnmatched(root, tt.patterns)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(files, tt.files) || !reflect.DeepEqual(unmatched, tt.unmatched) {
				t.Errorf("got %q unmatched %q, want %q unmatched %q", files, unmatched, tt.files, tt.unmatched)
			}
			plain, err := ExpandGlobs(root, tt.patterns)
			if err != nil || !reflect.DeepEqual(plain, files) {
				t.Errorf("ExpandGlobs = %q, %v; want %q", plain, err, files)
			}
		})
	}
}

func TestExpandGlobsRejects(t *testing.T) {
	root := globTree(t)
	for _, p := range []string{
		"/etc/*",
		`\server\share\*`,
		"C:/src/*.c",
		"c:relative",
		"../*",
		"src/../../x",
		"src/..",
		"",
		"src/[a-",
		"src/{a,b",
	} {
		_, err := ExpandGlobs(root, []string{"src/*.c", p})
		if err == nil {
			t.Errorf("pattern %q accepted", p)
			continue
		}
		if !strings.Contains(err.Error(), `"`+p+`"`) && !strings.Contains(err.Error(), strings.ReplaceAll(p, `\`, `\\`)) {
			t.Errorf("error for %q does not name it: %v", p, err)
		}
	}
}

func TestExpandGlobsMissingRoot(t *testing.T) {
	root := globTree(t)
	for _, r := range []string{filepath.Join(root, "nope"), filepath.Join(root, "top.c")} {
		if _, err := ExpandGlobs(r, []string{"**"}); err == nil {
			t.Errorf("root %s accepted", r)
		}
	}
}

func TestExpandGlobsSymlinks(t *testing.T) {
	root := globTree(t)
	if err := os.Symlink(filepath.Join(root, "src"), filepath.Join(root, "linkdir")); err != nil {
		t.Skipf("symlinks unavailable: %v", err)
	}
	if err := os.Symlink("top.c", filepath.Join(root, "link.c")); err != nil {
		t.Fatal(err)
	}
	files, err := ExpandGlobs(root, []string{"*"})
	if err != nil {
		t.Fatal(err)
	}
	// Symlinks are listed, the linked folder is not walked.
	want := []string{"link.c", "linkdir", "top.c"}
	if !reflect.DeepEqual(files, want) {
		t.Errorf("got %q, want %q", files, want)
	}
	files, err = ExpandGlobs(root, []string{"**/*.c"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasPrefix(f, "linkdir/") {
			t.Errorf("followed a symlinked folder: %s", f)
		}
	}
}

func TestMemoExpandMatchesGlobsThenDigest(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"a.txt", "src/b.c", "src/c.c", "src/d.h", ".rustypipe/x"} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(f)), 0o755)
		os.WriteFile(filepath.Join(root, f), []byte(f), 0o644)
	}
	os.Mkdir(filepath.Join(root, "dir"), 0o755)
	m, _ := OpenMemo("")
	patterns := []string{"src/*.c", "a.txt", "missing.txt", "dir", "src/b.c", ".rustypipe/x", "./a.txt"}
	got, err := m.Expand(root, patterns)
	if err != nil {
		t.Fatal(err)
	}
	paths, err := ExpandGlobs(root, patterns)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(paths) {
		t.Fatalf("Expand gave %v, ExpandGlobs %v", got, paths)
	}
	for i, e := range got {
		want, err := m.Digest(root, paths[i])
		if err != nil || e != want {
			t.Errorf("entry %d: %+v, want %+v (%v)", i, e, want, err)
		}
	}
	for _, bad := range []string{"/etc/passwd", "../x", "C:/x"} {
		if _, err := m.Expand(root, []string{bad}); err == nil {
			t.Errorf("Expand accepted %q", bad)
		}
	}
}

// TestExpandGlobsProbed checks that the probes of an expansion change
// whenever what it matches could: a file added in a listed directory, a
// directory created where a pattern's prefix was missing.
func TestExpandGlobsProbed(t *testing.T) {
	root := globTree(t)
	patterns := []string{"src/**/*.c", "gen/*.c"}
	files, probes, ok, err := ExpandGlobsProbed(root, patterns)
	if err != nil || !ok {
		t.Fatalf("ExpandGlobsProbed: ok %v, %v", ok, err)
	}
	if want := []string{"src/a.c", "src/b.c", "src/sub/c.c", "src/sub/deep/e.c"}; !reflect.DeepEqual(files, want) {
		t.Fatalf("files %v, want %v", files, want)
	}
	byPath := map[string]Probe{}
	for _, p := range probes {
		byPath[p.Path] = p
	}
	for _, dir := range []string{"src", "src/sub", "src/sub/deep"} {
		if p, ok := byPath[dir]; !ok || !p.Exists || !os.FileMode(p.Stat.Mode).IsDir() {
			t.Errorf("probe of %s: %+v, %v; want the directory's stat", dir, p, ok)
		}
	}
	if p, ok := byPath["gen"]; !ok || p.Exists {
		t.Errorf("probe of the missing prefix gen: %+v, %v; want it, missing", p, ok)
	}
	changed := func(path string) bool {
		st, exists, err := Lstat(filepath.Join(root, filepath.FromSlash(path)))
		return err != nil || exists != byPath[path].Exists || st != byPath[path].Stat
	}
	writeFile(t, root, "src/sub/deep/new.c", "new", 0o644, past)
	if !changed("src/sub/deep") {
		t.Error("adding a file left its directory's probe unchanged")
	}
	if err := os.MkdirAll(filepath.Join(root, "gen"), 0o755); err != nil {
		t.Fatal(err)
	}
	if !changed("gen") {
		t.Error("creating a missing prefix left its probe unchanged")
	}

	// A symlink among the probed paths: the probes cannot stand for the
	// expansion.
	if err := os.Symlink(filepath.Join(root, "docs"), filepath.Join(root, "src", "link")); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, err := ExpandGlobsProbed(root, []string{"src/link/*.md"}); err != nil || ok {
		t.Errorf("a pattern through a symlink: ok %v, %v; want not ok", ok, err)
	}
}

// TestStatRootMatchesLstat: the no-op record compares StatRoot's stats with
// ones taken through Lstat and the stat memo.
func TestStatRootMatchesLstat(t *testing.T) {
	root := globTree(t)
	if err := os.Symlink("a.c", filepath.Join(root, "src", "link")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, root, "bin/tool", "#!/bin/sh\n", 0o4755, past)
	os.Chmod(filepath.Join(root, "bin", "tool"), 0o755|os.ModeSetuid)
	sr, err := OpenStatRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close()
	for _, rel := range []string{"src/a.c", "src", "src/link", "bin/tool", "emptydir", "missing", "missing/deeper"} {
		want, wantOK, _ := Lstat(filepath.Join(root, filepath.FromSlash(rel)))
		got, gotOK, err := sr.Lstat(rel)
		if err != nil || got != want || gotOK != wantOK {
			t.Errorf("%s: StatRoot.Lstat = %+v %v %v, Lstat = %+v %v", rel, got, gotOK, err, want, wantOK)
		}
	}
}
