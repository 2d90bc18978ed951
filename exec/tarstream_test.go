package exec

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestOutputRoots(t *testing.T) {
	tests := []struct {
		patterns []string
		want     []string
	}{
		{[]string{"out/x.txt"}, []string{"out/x.txt"}},
		{[]string{"out/x.txt", "out/gen/*.txt"}, []string{"out/gen", "out/x.txt"}},
		{[]string{"out/**", "out/gen/*.txt", "out/a"}, []string{"out"}},
		{[]string{"dist/**", "dist/a/b"}, []string{"dist"}},
		{[]string{"dist/*.js", "dist-x/a", "dist/sub/a"}, []string{"dist", "dist-x/a"}},
		{[]string{"*.o", "out/a"}, []string{""}},
		{[]string{"**/*.o"}, []string{""}},
		{[]string{"**/*.o", "bin/x"}, []string{""}},
		{[]string{"a/{b,c}/d"}, []string{"a"}},
		{[]string{`a/\*literal`}, []string{"a"}},
		{[]string{"b", "a", "b"}, []string{"a", "b"}},
		{nil, nil},
	}
	for _, tc := range tests {
		if got := OutputRoots(tc.patterns); !slices.Equal(got, tc.want) {
			t.Errorf("OutputRoots(%q) = %q, want %q", tc.patterns, got, tc.want)
		}
	}
}

// tarEntries lists an archive's entries as "name type size linkname".
func tarEntries(t *testing.T, r io.Reader) []string {
	t.Helper()
	tr := tar.NewReader(r)
	var out []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		out = append(out, h.Name+" "+string(h.Typeflag)+" "+string(body)+" "+h.Linkname)
	}
}

func TestFilterOutputTar(t *testing.T) {
	var src bytes.Buffer
	tw := tar.NewWriter(&src)
	for _, e := range []struct {
		h    tar.Header
		body string
	}{
		{tar.Header{Typeflag: tar.TypeDir, Name: "top/", Mode: 0o755}, ""},
		{tar.Header{Typeflag: tar.TypeReg, Name: "top/a.txt", Mode: 0o644}, "aaa"},
		{tar.Header{Typeflag: tar.TypeReg, Name: "top/skip.log", Mode: 0o644}, "no"},
		{tar.Header{Typeflag: tar.TypeSymlink, Name: "top/l.txt", Linkname: "a.txt"}, ""},
		{tar.Header{Typeflag: tar.TypeLink, Name: "top/h.txt", Linkname: "top/a.txt"}, ""},
		{tar.Header{Typeflag: tar.TypeFifo, Name: "top/f.txt"}, ""},
	} {
		e.h.Size = int64(len(e.body))
		if err := tw.WriteHeader(&e.h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, e.body)
	}
	tw.Close()
	raw := src.Bytes()
	allow := func(rel string) bool { return strings.HasSuffix(rel, ".txt") }
	rename := func(name string) (string, error) {
		rest, ok := strings.CutPrefix(strings.TrimSuffix(name, "/"), "top")
		if !ok {
			return "", errors.New("outside top")
		}
		return "out" + rest, nil
	}
	var dst bytes.Buffer
	links, err := FilterOutputTar(&dst, bytes.NewReader(raw), rename, allow)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"out/h.txt"}; !slices.Equal(links, want) {
		t.Errorf("links = %q, want %q", links, want)
	}
	want := []string{"out/a.txt 0 aaa ", "out/l.txt 2  a.txt", "out/f.txt 6  "}
	if got := tarEntries(t, &dst); !slices.Equal(got, want) {
		t.Errorf("entries = %q, want %q", got, want)
	}

	refuse := func(string) (string, error) { return "", errors.New("not mine") }
	if _, err := FilterOutputTar(io.Discard, bytes.NewReader(raw), refuse, allow); err == nil || err.Error() != "not mine" {
		t.Errorf("FilterOutputTar with a refusing rename: %v, want its error", err)
	}
	garbage := strings.NewReader(strings.Repeat("not a tar header ", 64))
	if _, err := FilterOutputTar(io.Discard, garbage, rename, allow); err == nil {
		t.Error("FilterOutputTar accepted garbage")
	}
}

func TestWriteInputTar(t *testing.T) {
	ws := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(ws, "src", "x"), 0o755))
	must(os.WriteFile(filepath.Join(ws, "a.txt"), []byte("A"), 0o644))
	must(os.WriteFile(filepath.Join(ws, "src", "x", "run.sh"), []byte("R"), 0o755))
	tests := []struct {
		base string
		want []string
	}{
		{"", []string{"sub/ 5  ", "a.txt 0 A ", "src/ 5  ", "src/x/ 5  ", "src/x/run.sh 0 R "}},
		{"w/s", []string{"w/s/ 5  ", "w/s/sub/ 5  ", "w/s/a.txt 0 A ", "w/s/src/ 5  ", "w/s/src/x/ 5  ", "w/s/src/x/run.sh 0 R "}},
	}
	for _, tc := range tests {
		var buf bytes.Buffer
		must(WriteInputTar(&buf, ws, tc.base, "sub", []string{"a.txt", "src"}))
		if got := tarEntries(t, &buf); !slices.Equal(got, tc.want) {
			t.Errorf("base %q: entries = %q, want %q", tc.base, got, tc.want)
		}
	}
	if err := WriteInputTar(io.Discard, ws, "", "", []string{"missing.txt"}); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.txt") {
		t.Errorf("WriteInputTar of a missing input: %v, want a not-exist error naming it", err)
	}
}

func TestRestoreOutputs(t *testing.T) {
	ws := t.TempDir()
	s := &Spec{Workspace: ws, Outputs: []string{"out/*.txt", "b.txt"}}
	var calls [][]string
	// fetch stands for a remote archive: the first one holds out/a.txt and
	// a hard link out/h.txt, which then comes back alone.
	fetch := func(paths []string, rs *Restorer, allow func(string) bool) ([]string, error) {
		calls = append(calls, paths)
		if len(calls) > 1 {
			_, err := rs.WriteFile(paths[0], 0o644, strings.NewReader("linked"))
			return nil, err
		}
		if !allow("out/a.txt") || allow("out/x.log") {
			t.Error("allow does not follow the output globs")
		}
		_, err := rs.WriteFile("out/a.txt", 0o644, strings.NewReader("a"))
		return []string{"out/h.txt"}, err
	}
	if err := RestoreOutputs(s, fetch); err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"b.txt", "out"}, {"out/h.txt"}}
	if len(calls) != len(want) || !slices.Equal(calls[0], want[0]) || !slices.Equal(calls[1], want[1]) {
		t.Errorf("fetch calls = %q, want %q", calls, want)
	}
	for rel, body := range map[string]string{"out/a.txt": "a", "out/h.txt": "linked"} {
		if b, err := os.ReadFile(filepath.Join(ws, filepath.FromSlash(rel))); err != nil || string(b) != body {
			t.Errorf("%s = %q, %v; want %q", rel, b, err, body)
		}
	}
	fail := errors.New("remote gone")
	err := RestoreOutputs(s, func([]string, *Restorer, func(string) bool) ([]string, error) { return nil, fail })
	if !errors.Is(err, fail) {
		t.Errorf("RestoreOutputs with a failing fetch = %v, want its error", err)
	}
}
