package build

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rustypipe/rustypipe/exec"
	"github.com/rustypipe/rustypipe/exec/local"
	"github.com/rustypipe/rustypipe/pipeline"
)

// BenchmarkNoop1000 measures a fully cached build of bench/'s workload
// (1,000 independent tasks with one input and one output each) in
// process: everything a no-op `rustypipe build` does after loading the
// pipeline.
func BenchmarkNoop1000(b *testing.B) {
	dir := benchWorkspace(b)
	p, err := pipeline.Load(filepath.Join(dir, "rustypipe.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	pl, err := NewPlan(p, nil)
	if err != nil {
		b.Fatal(err)
	}
	run := func() *Summary {
		sum, err := Run(context.Background(), pl, Options{
			Backends: map[string]exec.Backend{"local": local.New()},
			Reporter: NewConsole(ConsoleOptions{Out: io.Discard, Prefix: true}),
			Stdout:   io.Discard,
			Jobs:     2,
			Env:      os.Environ(),
			Cache:    CacheOptions{Mode: "readwrite", Dir: filepath.Join(dir, "cache")},
		})
		if err != nil {
			b.Fatal(err)
		}
		return sum
	}
	run()
	ageWorkspace(dir)
	run()
	b.ResetTimer()
	for b.Loop() {
		if sum := run(); sum.Counts[StatusUpToDate] != 1000 {
			b.Fatalf("counts %v, want 1000 up to date", sum.Counts)
		}
	}
}

// benchWorkspace writes bench/'s workload into a temporary directory: a
// rustypipe.yaml of 1,000 tasks, task N running `echo N > out/N.txt` with
// input in/N.txt and output out/N.txt, and the inputs.
func benchWorkspace(b *testing.B) string {
	dir := b.TempDir()
	var y strings.Builder
	y.WriteString("name: bench\ntasks:\n")
	for i := range 1000 {
		fmt.Fprintf(&y, "  - name: t%d\n    run: mkdir -p out && echo %d > out/%d.txt\n    inputs: [in/%d.txt]\n    outputs: [out/%d.txt]\n", i, i, i, i, i)
	}
	if err := os.WriteFile(filepath.Join(dir, "rustypipe.yaml"), []byte(y.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "in"), 0o755); err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		if err := os.WriteFile(filepath.Join(dir, "in", fmt.Sprintf("%d.txt", i)), []byte(fmt.Sprint(i)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// ageWorkspace sets the inputs' and outputs' times an hour back. Files
// written in the last seconds are re-hashed on every use (racy
// timestamps); a real no-op build sees files older than that.
func ageWorkspace(dir string) {
	old := time.Now().Add(-time.Hour)
	for _, sub := range []string{"in", "out"} {
		ents, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range ents {
			os.Chtimes(filepath.Join(dir, sub, e.Name()), old, old)
		}
	}
}

// BenchmarkLeaf1000 measures a build of bench/'s workload after one input
// changed, in process, the way `rustypipe build` runs it: the no-op record
// finds the change, the pipeline comes from its memo, and the one task
// runs while the others are up to date by the record. Besides wall time
// it reports cpu-ms/op, this process's own CPU time per build (the task's
// shell and mkdir are children, not counted), which is steadier than wall
// time on a busy machine.
func BenchmarkLeaf1000(b *testing.B) {
	dir := benchWorkspace(b)
	file := filepath.Join(dir, "rustypipe.yaml")
	memo := filepath.Join(dir, ".rustypipe", "pipelines", "bench.gob")
	const stamp = "bench"
	cache := CacheOptions{Mode: "readwrite", Dir: filepath.Join(dir, "cache")}
	rep := func(int) (Reporter, error) { return NewConsole(ConsoleOptions{Out: io.Discard, Prefix: true}), nil }
	build := func() *Summary {
		sum, done, partial, err := TryNoop(NoopOptions{File: file, Workspace: dir, Stamp: stamp, Env: os.Environ(), Reporter: rep})
		if err != nil {
			b.Fatal(err)
		}
		if done {
			return sum
		}
		state := PreloadState(dir)
		var p *pipeline.Pipeline
		if src := partial.Source(); src != nil {
			p, err = pipeline.LoadCachedSource(file, src, memo, stamp)
		} else {
			p, err = pipeline.LoadCached(file, memo, stamp)
		}
		if err != nil {
			b.Fatal(err)
		}
		pl, err := NewPlan(p, nil)
		if err != nil {
			b.Fatal(err)
		}
		r, _ := rep(len(pl.Tasks))
		sum, err = Run(context.Background(), pl, Options{
			Backends:  map[string]exec.Backend{"local": local.New()},
			Reporter:  r,
			Stdout:    io.Discard,
			Jobs:      2,
			Env:       os.Environ(),
			Cache:     cache,
			NoopStamp: stamp,
			Noop:      partial,
			State:     state,
		})
		if err != nil {
			b.Fatal(err)
		}
		return sum
	}
	build()
	ageWorkspace(dir)
	// Setting the times set the change times to now, which no tool can set
	// back: the no-op record trusts files only once those are older than
	// the racy window too.
	time.Sleep(2100 * time.Millisecond)
	build() // writes the no-op record
	if _, done, _, err := TryNoop(NoopOptions{File: file, Workspace: dir, Stamp: stamp, Env: os.Environ(), Reporter: rep}); err != nil || !done {
		b.Fatalf("no no-op record after aging the workspace (err %v)", err)
	}
	in7 := filepath.Join(dir, "in", "7.txt")
	var cpu time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		if err := os.WriteFile(in7, []byte(fmt.Sprint("7 ", i)), 0o644); err != nil {
			b.Fatal(err)
		}
		before := processCPU()
		b.StartTimer()
		sum := build()
		cpu += processCPU() - before
		if sum.Counts[StatusSucceeded] != 1 || sum.Counts[StatusUpToDate] != 999 {
			b.Fatalf("counts %v, want 1 succeeded and 999 up to date", sum.Counts)
		}
	}
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

// BenchmarkTaskRecordJSON encodes a finished task's tasks.jsonl record, by
// hand as builds do, and with encoding/json for comparison.
func BenchmarkTaskRecordJSON(b *testing.B) {
	now := time.Now()
	r := &TaskRecord{Name: "t7", Backend: "local", Command: "mkdir -p out && echo 7 > out/7.txt", Status: StatusSucceeded,
		Attempts:    []*Attempt{{Number: 1, Started: now, Finished: now.Add(2 * time.Millisecond), DurationMS: 2, Status: StatusSucceeded}},
		MaxAttempts: 1, Started: now, Finished: now.Add(3 * time.Millisecond), DurationMS: 3,
		Key: strings.Repeat("ab", 32), Cache: "miss", HashMS: 1}
	b.Run("appendJSON", func(b *testing.B) {
		for b.Loop() {
			if _, err := r.appendJSON(nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Marshal", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
