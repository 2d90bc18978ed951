package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse("full.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRender(b *testing.B) {
	tpl, err := ParseTemplate("set -e\nfor f in {{ list.output }}; do\n  echo \"file: {{ vars.prefix }}$f\"\ndone\ncat <<EOF\n{{ count.output }}\nEOF\n")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, _, err := tpl.Render("bash", constant("value")); err != nil {
			b.Fatal(err)
		}
	}
}

// bench1000 is bench/'s 1,000-task pipeline.
func bench1000() []byte {
	var y strings.Builder
	y.WriteString("name: bench\ntasks:\n")
	for i := range 1000 {
		fmt.Fprintf(&y, "  - name: t%d\n    run: mkdir -p out && echo %d > out/%d.txt\n    inputs: [in/%d.txt]\n    outputs: [out/%d.txt]\n", i, i, i, i, i)
	}
	return []byte(y.String())
}

// BenchmarkParse1000 parses bench/'s 1,000-task pipeline, as a cold build
// or the first build after an edit of the pipeline does.
func BenchmarkParse1000(b *testing.B) {
	data := bench1000()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if p, err := Parse("rustypipe.yaml", data); err != nil || len(p.Tasks) != 1000 {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadCached1000 loads bench/'s 1,000-task pipeline through its
// memo, as every build after the first does.
func BenchmarkLoadCached1000(b *testing.B) {
	dir := b.TempDir()
	file := filepath.Join(dir, "rustypipe.yaml")
	if err := os.WriteFile(file, bench1000(), 0o644); err != nil {
		b.Fatal(err)
	}
	memo := filepath.Join(dir, "memo")
	if _, err := LoadCached(file, memo, "bench"); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		p, err := LoadCached(file, memo, "bench")
		if err != nil || len(p.Tasks) != 1000 {
			b.Fatal(err)
		}
	}
}
