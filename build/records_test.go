package build

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/rustypipe/rustypipe/exec"
	"github.com/rustypipe/rustypipe/exec/local"
	"github.com/rustypipe/rustypipe/hashing"
	"github.com/rustypipe/rustypipe/pipeline"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSafeName(t *testing.T) {
	seen := map[string]string{}
	for _, tc := range []struct{ in, prefix string }{
		{"build", "build"},
		{"lint-go_1.2", "lint-go_1.2"},
		{"a/b", "a_b-"},
		{"a:b", "a_b-"},
		{"a b", "a_b-"},
		{"CON", "_CON-"},
		{"nul.txt", "_nul.txt-"},
		{"com1", "_com1-"},
		{"aUx", "_aUx-"},
		{"Lpt9.log", "_Lpt9.log-"},
		{"com0", "com0"},
		{"t100", "t100"},
		{"run", "_run-"},
		{"trailing.", "trailing-"},
		{".hidden", "_.hidden-"},
		{"ünï", "_n_-"},
	} {
		got := safeName(tc.in)
		if !strings.HasPrefix(got, tc.prefix) {
			t.Errorf("safeName(%q) = %q, want prefix %q", tc.in, got, tc.prefix)
		}
		if strings.ContainsAny(got, `/\:*?"<>| `) {
			t.Errorf("safeName(%q) = %q has a character Windows refuses", tc.in, got)
		}
		if other, dup := seen[got]; dup {
			t.Errorf("safeName(%q) = safeName(%q) = %q", tc.in, other, got)
		}
		seen[got] = tc.in
	}
	if safeName("a/b") == safeName("a:b") {
		t.Error("two names that differ only in unsafe characters share a file")
	}
}

func TestRunIDsSortByTime(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a, b := NewRunID(t0), NewRunID(t0.Add(time.Millisecond))
	if !(a < b) {
		t.Fatalf("run ids %q and %q do not sort by time", a, b)
	}
}

func TestRetryDelaysGrowWithBackoff(t *testing.T) {
	for _, jitter := range []float64{0, 0.5, 0.999} {
		p := retryPolicy{attempts: 6, delay0: 100 * time.Millisecond, backoff: 2, max: time.Second, jitter: func() float64 { return jitter }}
		prev := time.Duration(0)
		for n := 1; n < 6; n++ {
			d := p.delay(n)
			if d < prev {
				t.Fatalf("jitter %v: delay after attempt %d is %v, less than %v before", jitter, n, d, prev)
			}
			if d > time.Second {
				t.Fatalf("jitter %v: delay %v above max_delay", jitter, d)
			}
			prev = d
		}
	}
}

// TestRunJSONMatchesEncodingJSON checks that writeRun's hand-written task
// list is byte for byte what encoding/json writes for the whole record.
func TestRunJSONMatchesEncodingJSON(t *testing.T) {
	d := &runDir{dir: t.TempDir()}
	start := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	sum := &Summary{RunID: "r1", Status: "succeeded", Counts: map[Status]int{StatusUpToDate: 2, StatusSucceeded: 1},
		Started: start, Finished: start.Add(1500 * time.Millisecond)}
	for i, name := range []string{"plain", `quo"te\back`, "<html>&amp;", "tab\there\nnl", "ünïcode ✓", "bad\xffutf8", "\x7f"} {
		r := &TaskRecord{Name: name, Status: StatusUpToDate, DurationMS: int64(i), file: safeName(name)}
		if i%2 == 0 {
			r.Cache, r.Key = "up-to-date", strings.Repeat("ab", 32)
		}
		sum.Tasks = append(sum.Tasks, r)
	}
	if err := d.writeRun(sum); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(d.dir, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	rec := RunRecord{RunID: sum.RunID, Status: sum.Status, Counts: sum.Counts, Started: sum.Started, Finished: sum.Finished, DurationMS: 1500}
	for _, r := range sum.Tasks {
		rec.Tasks = append(rec.Tasks, TaskSummary{Name: r.Name, Status: r.Status, DurationMS: r.DurationMS, Cache: r.Cache, Key: r.Key, File: r.file})
	}
	want, _ := json.Marshal(&rec)
	if string(got) != string(want)+"\n" {
		t.Errorf("run.json:\n%s\nwant\n%s", got, want)
	}

	// The record's head, over counts and times of every shape: written by
	// hand where json.Marshal's output is known, else by json.Marshal.
	east := time.FixedZone("east", 5*3600+30*60)
	odd := time.FixedZone("odd", 3600+7) // an offset of seconds: json.Marshal's own
	for _, counts := range []map[Status]int{nil, {}, {StatusFailed: 1, StatusCached: 20, StatusUpToDate: 3, Status(`we"ird`): 4}} {
		for _, times := range [][2]time.Time{
			{start, start.Add(time.Second)},
			{{}, {}},
			{start.In(east), start.Add(time.Nanosecond).In(east)},
			{start.In(odd), start.In(odd)},
			{time.Date(12345, 1, 1, 0, 0, 0, 0, time.UTC), start},
		} {
			rec := RunRecord{RunID: "r\u2028", Pipeline: "p<i>pe\x00.yaml", Status: "failed", Counts: counts, Started: times[0], Finished: times[1], DurationMS: -3}
			want, werr := json.Marshal(&rec)
			head, ok := rec.appendHead(nil)
			switch {
			case !ok && jsonTime(times[0]) && jsonTime(times[1]):
				t.Errorf("appendHead refused times %v", times)
			case ok && (werr != nil || string(head)+`"tasks":null}` != string(want)):
				t.Errorf("head %s\nwant %s (%v)", head, want, werr)
			case !ok && len(head) != 0:
				t.Errorf("appendHead refused but appended %q", head)
			}
		}
	}
}

// TestTaskRecordJSON checks the hand-written task record encoding against
// json.Marshal, byte for byte, on random records: every omitempty field
// present and absent, escaped strings, nil and empty attempt lists, times
// in several zones, zero times, and times json.Marshal refuses.
func TestTaskRecordJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	strs := []string{"", "t7", "echo \"<hi>\" & \\\n\t\x01\u2028\xff", "hit"}
	str := func() string { return strs[r.IntN(len(strs))] }
	num := func() int64 { return []int64{0, 1, -1, 1 << 40}[r.IntN(4)] }
	zones := []*time.Location{time.UTC, time.FixedZone("x", 5*3600+30*60), time.FixedZone("y", -7*3600), time.FixedZone("lmt", 17)}
	tm := func() time.Time {
		switch r.IntN(6) {
		case 0:
			return time.Time{}
		case 1:
			return time.Date(10000+r.IntN(5), 1, 2, 3, 4, 5, 0, time.UTC) // refused by json.Marshal
		}
		return time.Unix(r.Int64N(4e9), r.Int64N(1e9)/int64(1+r.IntN(1000))*int64(1+r.IntN(3))).In(zones[r.IntN(len(zones))])
	}
	for i := range 3000 {
		rec := &TaskRecord{
			Name: str(), Description: str(), Backend: str(), Command: str(), Status: Status(str()), Reason: str(),
			ExitCode: int(num()), MaxAttempts: int(num()), Started: tm(), Finished: tm(), DurationMS: num(),
			Key: str(), Cache: str(), BytesRestored: num(), HashMS: num(), CacheWarning: str(),
		}
		switch r.IntN(3) {
		case 0: // nil
		case 1:
			rec.Attempts = []*Attempt{}
		default:
			for range 1 + r.IntN(3) {
				var a *Attempt
				if r.IntN(5) > 0 {
					a = &Attempt{Number: int(num()), Started: tm(), Finished: tm(), DurationMS: num(), ExitCode: int(num()),
						Signal: str(), Status: Status(str()), Error: str(), RetryDelay: time.Second, RetryDelayMS: num()}
				}
				rec.Attempts = append(rec.Attempts, a)
			}
		}
		want, wantErr := json.Marshal(rec)
		got, err := rec.appendJSON(nil)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("record %d: error %v, json.Marshal's %v", i, err, wantErr)
		}
		if err == nil && string(got) != string(want) {
			t.Fatalf("record %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

// Every run records the pipeline file it ran. Runs of the same content
// share one copy where links can be counted, and a shared copy that no run
// links to any more is removed.
func TestRunsRecordThePipelineFile(t *testing.T) {
	pl := planFor(t, "name: a\ntasks:\n  - name: t\n    run: \"true\"\n")
	ws := pl.Workspace
	build := func(pl *Plan) string { return filepath.Join(runUncached(t, pl).Dir, "pipeline.yaml") }
	want, err := os.ReadFile(pl.Pipeline.File)
	if err != nil {
		t.Fatal(err)
	}
	first, second := build(pl), build(pl)
	for _, p := range []string{first, second} {
		if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %q, %v; want the pipeline file", p, got, err)
		}
	}
	shared := sharedPipelinePath(ws, hashing.DigestBytes(want))
	if !linksCounted {
		if _, err := os.Stat(shared); err == nil {
			t.Fatal("a shared copy was written where links cannot be counted")
		}
		return
	}
	a, _ := os.Stat(first)
	b, _ := os.Stat(second)
	s, err := os.Stat(shared)
	if err != nil {
		t.Fatalf("no shared copy: %v", err)
	}
	if !os.SameFile(a, b) || !os.SameFile(a, s) || linkCount(s) != 3 {
		t.Fatalf("the runs' copies are not one shared file (%d links)", linkCount(s))
	}

	// Another content gets a copy of its own; the first stays while runs
	// link to it.
	other := []byte("name: b\ntasks:\n  - name: t\n    run: \"true\"\n")
	if err := os.WriteFile(pl.Pipeline.File, other, 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.Load(pl.Pipeline.File)
	if err != nil {
		t.Fatal(err)
	}
	pl2, err := NewPlan(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	third := build(pl2)
	if got, _ := os.ReadFile(third); !bytes.Equal(got, other) {
		t.Fatalf("third run's copy is %q, want the new content", got)
	}
	if _, err := os.Stat(shared); err != nil {
		t.Fatalf("the first content's shared copy went while runs link to it: %v", err)
	}

	// Once no run links to it, the next prune removes it; other files in
	// the directory stay.
	keep := filepath.Join(filepath.Dir(shared), "notes.yaml")
	if err := os.WriteFile(keep, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{first, second} {
		if err := os.RemoveAll(filepath.Dir(p)); err != nil {
			t.Fatal(err)
		}
	}
	prunePipelineCopies(ws)
	if _, err := os.Stat(shared); !os.IsNotExist(err) {
		t.Fatalf("a shared copy no run links to survived the prune: %v", err)
	}
	if _, err := os.Stat(sharedPipelinePath(ws, hashing.DigestBytes(other))); err != nil {
		t.Fatalf("the copy the third run links to was pruned: %v", err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Fatalf("prune removed a file that is not a shared copy: %v", err)
	}
}

// Once the workspace keeps keepRuns runs, a build takes the oldest run's
// directory for its own: there are still keepRuns runs, the oldest is
// gone, the new run's directory and run.json are the old ones' files, and
// nothing of the old run is left in them.
func TestRunDirsAreRecycled(t *testing.T) {
	pl := planFor(t, "name: a\ntasks:\n  - name: t\n    run: echo hi\n")
	ws := pl.Workspace
	build := func() *Summary { return runUncached(t, pl) }
	for range keepRuns {
		build()
	}
	ents, err := os.ReadDir(RunsDir(ws))
	if err != nil || len(ents) != keepRuns {
		t.Fatalf("%d run directories (%v), want %d", len(ents), err, keepRuns)
	}
	oldest := filepath.Join(RunsDir(ws), ents[0].Name())
	if err := os.WriteFile(filepath.Join(oldest, "stray.stdout"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A second name for the old run.json shows whether the new run wrote
	// into that file; the old pipeline copy is replaced by one of other
	// content, which the new run must replace with the current one.
	peek := filepath.Join(ws, "peek.json")
	if err := os.Link(filepath.Join(oldest, runJSONName), peek); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(oldest, pipelineCopyName)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(oldest, pipelineCopyName), []byte("old content"), 0o644); err != nil {
		t.Fatal(err)
	}
	oldDir, err := os.Stat(oldest)
	if err != nil {
		t.Fatal(err)
	}

	sum := build()
	if _, err := os.Stat(oldest); !os.IsNotExist(err) {
		t.Fatalf("the oldest run is still there: %v", err)
	}
	if ents, _ := os.ReadDir(RunsDir(ws)); len(ents) != keepRuns {
		t.Fatalf("%d run directories, want %d", len(ents), keepRuns)
	}
	newDir, err := os.Stat(sum.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(oldDir, newDir) {
		t.Error("the new run made a directory of its own instead of taking the oldest run's")
	}
	got, err1 := os.ReadFile(filepath.Join(sum.Dir, runJSONName))
	seen, err2 := os.ReadFile(peek)
	if err1 != nil || err2 != nil || len(got) == 0 || !bytes.Equal(got, seen) {
		t.Errorf("run.json was not written into the old run's file (%v, %v)", err1, err2)
	}
	if data, err := os.ReadFile(filepath.Join(sum.Dir, pipelineCopyName)); err != nil || !bytes.Contains(data, []byte("echo hi")) {
		t.Errorf("pipeline.yaml holds %q (%v), want the pipeline file", data, err)
	}
	if linksCounted {
		src, _ := os.ReadFile(pl.Pipeline.File)
		a, err1 := os.Stat(filepath.Join(sum.Dir, pipelineCopyName))
		b, err2 := os.Stat(sharedPipelinePath(ws, hashing.DigestBytes(src)))
		if err1 != nil || err2 != nil || !os.SameFile(a, b) {
			t.Errorf("the recycled run's pipeline.yaml is not the shared copy (%v, %v)", err1, err2)
		}
	}
	if _, err := os.Stat(filepath.Join(sum.Dir, "stray.stdout")); !os.IsNotExist(err) {
		t.Errorf("a file of the old run survived in the new run's directory: %v", err)
	}
	if data, err := os.ReadFile(filepath.Join(sum.Dir, tasksName)); err != nil || strings.Count(string(data), "\n") != 1 {
		t.Errorf("tasks.jsonl holds %q (%v), want the new run's one record", data, err)
	}
	if data, err := os.ReadFile(filepath.Join(sum.Dir, "t.log")); err != nil || strings.Count(string(data), "=== attempt 1/1") != 1 {
		t.Errorf("t.log holds %q (%v), want the new run's output once", data, err)
	}
	runs, err := ListRuns(ws)
	if err != nil || len(runs) != keepRuns || runs[0].RunID != sum.RunID || runs[0].Status != "succeeded" {
		t.Fatalf("ListRuns: %d runs, newest %+v (%v)", len(runs), runs[0], err)
	}

	// A recycled directory's emptied run.json reads as a run in progress.
	if err := os.Truncate(filepath.Join(sum.Dir, runJSONName), 0); err != nil {
		t.Fatal(err)
	}
	if runs, _ := ListRuns(ws); runs[0].Status != "incomplete" {
		t.Errorf("a run with an empty run.json is %q, want incomplete", runs[0].Status)
	}

	// A run that has not finished (no run.json yet) is never taken over:
	// the new run makes a directory of its own.
	ents, _ = os.ReadDir(RunsDir(ws))
	going := filepath.Join(RunsDir(ws), ents[0].Name())
	if err := os.Remove(filepath.Join(going, runJSONName)); err != nil {
		t.Fatal(err)
	}
	goingDir, _ := os.Stat(going)
	next := build()
	if nextDir, err := os.Stat(next.Dir); err != nil || os.SameFile(goingDir, nextDir) {
		t.Errorf("a run without run.json was taken over (%v)", err)
	}
	// It is removed instead, the oldest beyond keepRuns.
	if _, err := os.Stat(going); !os.IsNotExist(err) {
		t.Errorf("the oldest run beyond keepRuns is still there: %v", err)
	}
	if ents, _ := os.ReadDir(RunsDir(ws)); len(ents) != keepRuns {
		t.Errorf("%d run directories, want %d", len(ents), keepRuns)
	}
}

// runUncached builds pl on the local backend without the cache.
func runUncached(t *testing.T, pl *Plan) *Summary {
	t.Helper()
	sum, err := Run(context.Background(), pl, Options{
		Backends: map[string]exec.Backend{"local": local.New()},
		Reporter: NewConsole(ConsoleOptions{Out: io.Discard}),
		Stdout:   io.Discard,
		Env:      os.Environ(),
		Cache:    CacheOptions{Mode: "off"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return sum
}
