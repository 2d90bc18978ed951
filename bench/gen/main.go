// Command gen writes the benchmark workload into a directory: N independent
// tasks, each with one input file and one output file (echo N > out/N.txt),
// as a rustypipe pipeline, a Makefile and a build.ninja file.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	n := flag.Int("n", 1000, "number of tasks")
	dir := flag.String("dir", "bench/work", "output directory")
	flag.Parse()
	if err := gen(*dir, *n); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func gen(dir string, n int) error {
	if err := os.MkdirAll(filepath.Join(dir, "in"), 0o755); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if err := os.WriteFile(filepath.Join(dir, "in", fmt.Sprintf("%d.txt", i)), []byte(fmt.Sprintf("input %d\n", i)), 0o644); err != nil {
			return err
		}
	}
	write := func(name string, body func(w *bufio.Writer)) error {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		w := bufio.NewWriter(f)
		body(w)
		if err := w.Flush(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	if err := write("rustypipe.yaml", func(w *bufio.Writer) {
		fmt.Fprintf(w, "name: bench\ntasks:\n")
		for i := 0; i < n; i++ {
			fmt.Fprintf(w, "  - name: t%d\n    run: mkdir -p out && echo %d > out/%d.txt\n    inputs: [in/%d.txt]\n    outputs: [out/%d.txt]\n", i, i, i, i, i)
		}
	}); err != nil {
		return err
	}
	if err := write("Makefile", func(w *bufio.Writer) {
		fmt.Fprintf(w, "all:")
		for i := 0; i < n; i++ {
			fmt.Fprintf(w, " out/%d.txt", i)
		}
		fmt.Fprintf(w, "\n")
		for i := 0; i < n; i++ {
			fmt.Fprintf(w, "out/%d.txt: in/%d.txt\n\t@mkdir -p out && echo %d > out/%d.txt\n", i, i, i, i)
		}
	}); err != nil {
		return err
	}
	return write("build.ninja", func(w *bufio.Writer) {
		fmt.Fprintf(w, "rule gen\n  command = mkdir -p out && echo $n > $out\n")
		for i := 0; i < n; i++ {
			fmt.Fprintf(w, "build out/%d.txt: gen in/%d.txt\n  n = %d\n", i, i, i)
		}
	})
}
