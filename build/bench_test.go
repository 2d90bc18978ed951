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
)

// BenchmarkNoop1000 measures a fully cached build of bench/'s workload
// (1,000 independent tasks with one input and one output each) in
// process: everything a no-op `rustypipe build` does after loading the
// pipeline.
func BenchmarkNoop1000(b *testing.B) {
	var y strings.Builder
	y.WriteString("name: bench\ntasks:\n")
	for i := range 1000 {
		fmt.Fprintf(&y, "  - name: t%d\n    run: mkdir -p out && echo %d > out/%d.txt\n    inputs: [in/%d.txt]\n    outputs: [out/%d.txt]\n", i, i, i, i, i)
	}
	pl := planFor(b, y.String())
	dir := pl.Workspace
	if err := os.MkdirAll(filepath.Join(dir, "in"), 0o755); err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		if err := os.WriteFile(filepath.Join(dir, "in", fmt.Sprintf("%d.txt", i)), []byte(fmt.Sprint(i)), 0o644); err != nil {
			b.Fatal(err)
		}
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
	// Files written in the last seconds are re-hashed on every use (racy
	// timestamps); a real no-op build sees files older than that.
	old := time.Now().Add(-time.Hour)
	for _, sub := range []string{"in", "out"} {
		ents, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range ents {
			os.Chtimes(filepath.Join(dir, sub, e.Name()), old, old)
		}
	}
	run()
	run()
	b.ResetTimer()
	for b.Loop() {
		if sum := run(); sum.Counts[StatusUpToDate] != 1000 {
			b.Fatalf("counts %v, want 1000 up to date", sum.Counts)
		}
	}
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
