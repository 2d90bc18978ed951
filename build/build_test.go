package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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

func planFor(t *testing.T, yaml string) *Plan {
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
