package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rustypipe/rustypipe/exec"
	"github.com/rustypipe/rustypipe/pipeline"
)

// flakyBackend fails with exec.ErrUnavailable a number of times, then
// succeeds: a stand-in for a backend whose host dropped the connection.
type flakyBackend struct {
	failures atomic.Int32
	calls    atomic.Int32
}

func (f *flakyBackend) Run(ctx context.Context, s *exec.Spec) (*exec.Result, error) {
	f.calls.Add(1)
	now := time.Now()
	if f.failures.Add(-1) >= 0 {
		return nil, fmt.Errorf("test: connection lost: %w", exec.ErrUnavailable)
	}
	fmt.Fprintln(s.Stdout, "done")
	return &exec.Result{ExitCode: 0, Started: now, Finished: time.Now()}, nil
}

func (f *flakyBackend) Close() error { return nil }

func planFor(t testing.TB, yaml string) *Plan {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "rustypipe.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := NewPlan(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

func TestUnavailableBackendIsRetriedWithoutRetryPolicy(t *testing.T) {
	pl := planFor(t, "tasks:\n  - name: a\n    run: echo\n")
	for _, tc := range []struct {
		failures int32
		want     Status
		calls    int32
	}{
		{failures: 2, want: StatusSucceeded, calls: 3},
		{failures: 5, want: StatusFailed, calls: unavailableAttempts},
	} {
		fb := &flakyBackend{}
		fb.failures.Store(tc.failures)
		sum, err := Run(context.Background(), pl, Options{
			Backends: map[string]exec.Backend{"local": fb},
			Reporter: NewConsole(ConsoleOptions{Out: io.Discard}),
			Stdout:   io.Discard,
			Jobs:     1,
		})
		if tc.want == StatusSucceeded && err != nil {
			t.Fatalf("%d failures: %v", tc.failures, err)
		}
		var fe *FailedError
		if tc.want == StatusFailed && !errors.As(err, &fe) {
			t.Fatalf("%d failures: err = %v, want a FailedError", tc.failures, err)
		}
		if got := sum.Tasks[0].Status; got != tc.want {
			t.Errorf("%d failures: status %s, want %s", tc.failures, got, tc.want)
		}
		if got := fb.calls.Load(); got != tc.calls {
			t.Errorf("%d failures: %d attempts, want %d", tc.failures, got, tc.calls)
		}
	}
}

// countingBackend records how many commands run at once.
type countingBackend struct {
	running, most atomic.Int32
}

func (c *countingBackend) Run(ctx context.Context, s *exec.Spec) (*exec.Result, error) {
	n := c.running.Add(1)
	for {
		m := c.most.Load()
		if n <= m || c.most.CompareAndSwap(m, n) {
			break
		}
	}
	now := time.Now()
	time.Sleep(20 * time.Millisecond)
	c.running.Add(-1)
	return &exec.Result{ExitCode: 0, Started: now, Finished: time.Now()}, nil
}

func (c *countingBackend) Close() error { return nil }

// -j bounds the commands running at once, although the walk has more
// workers than that (for bookkeeping), and reaches that bound.
func TestJobsBoundCommands(t *testing.T) {
	yaml := "tasks:\n"
	for i := range 8 {
		yaml += fmt.Sprintf("  - name: t%d\n    run: echo %d\n", i, i)
	}
	pl := planFor(t, yaml)
	for _, jobs := range []int{1, 3} {
		cb := &countingBackend{}
		if _, err := Run(context.Background(), pl, Options{
			Backends: map[string]exec.Backend{"local": cb},
			Reporter: NewConsole(ConsoleOptions{Out: io.Discard}),
			Stdout:   io.Discard,
			Jobs:     jobs,
		}); err != nil {
			t.Fatal(err)
		}
		if got := cb.most.Load(); got != int32(jobs) {
			t.Errorf("-j %d: at most %d commands ran at once, want %d", jobs, got, jobs)
		}
	}
}

// panicOnce panics in its first Run and succeeds afterwards.
type panicOnce struct{ calls atomic.Int32 }

func (p *panicOnce) Run(ctx context.Context, s *exec.Spec) (*exec.Result, error) {
	if p.calls.Add(1) == 1 {
		panic("test: backend bug")
	}
	now := time.Now()
	return &exec.Result{ExitCode: 0, Started: now, Finished: now}, nil
}

func (p *panicOnce) Close() error { return nil }

// A backend that panics fails its task, and its -j slot serves the next.
func TestPanickingBackendFreesItsSlot(t *testing.T) {
	pl := planFor(t, "tasks:\n  - name: a\n    run: echo a\n  - name: b\n    run: echo b\n    continue_on_fail: true\n")
	done := make(chan *Summary, 1)
	go func() {
		sum, _ := Run(context.Background(), pl, Options{
			Backends: map[string]exec.Backend{"local": &panicOnce{}},
			Reporter: NewConsole(ConsoleOptions{Out: io.Discard}),
			Stdout:   io.Discard,
			Jobs:     1,
		})
		done <- sum
	}()
	select {
	case sum := <-done:
		if sum.Counts[StatusSucceeded] != 1 || sum.Counts[StatusFailed] != 1 {
			t.Fatalf("counts %v, want one failed (the panic) and one succeeded", sum.Counts)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the build hung: the panicking command kept its slot")
	}
}

// A run directory that cannot be made fails the build before any task
// runs; it is made while the build is prepared, not before.
func TestRunDirFailureStopsBeforeTasks(t *testing.T) {
	pl := planFor(t, "tasks:\n  - name: a\n    run: echo\n")
	if err := os.MkdirAll(filepath.Join(pl.Workspace, ".rustypipe"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A file where the runs directory goes: no run directory can be made,
	// whoever runs the test.
	if err := os.WriteFile(RunsDir(pl.Workspace), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fb := &flakyBackend{}
	_, err := Run(context.Background(), pl, Options{
		Backends: map[string]exec.Backend{"local": fb},
		Reporter: NewConsole(ConsoleOptions{Out: io.Discard}),
		Stdout:   io.Discard,
	})
	if err == nil || !strings.Contains(err.Error(), "run records") {
		t.Fatalf("err = %v, want a run records error", err)
	}
	if n := fb.calls.Load(); n != 0 {
		t.Fatalf("%d tasks ran", n)
	}
}
