package pipeline

import (
	"os"
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
