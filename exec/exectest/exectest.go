package exectest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rustypipe/rustypipe/exec"
)

// Options describes what a backend needs from the suite and what it cannot
// be tested for.
type Options struct {
	// Shell is Spec.Shell for every script. The scripts are POSIX sh using
	// only echo, printf, cat, sleep, mkdir, test, trap, wait and sh; ""
	// means the backend's default shell, which must then run them.
	Shell string

	// Env comes first in every Spec.Env, before the variables a test sets:
	// what the shell needs to find the tools above, usually PATH.
	Env []string

	// PIDCheck reports whether the process with this pid, as printed by $$
	// or $! inside a task, no longer runs; a zombie awaiting its reaper
	// counts as gone. The suite calls it after Run has returned. nil skips
	// the checks that a stopped task left no process behind.
	PIDCheck func(t *testing.T, pid int) bool

	// Skip names top-level subtests the backend cannot run, each with the
	// reason, which the subtest reports with t.Skip.
	Skip map[string]string
}

// Run runs the conformance suite against the backends newBackend returns:
// one per subtest, closed by the suite when the subtest ends. The subtests
// run one after another and call t.Setenv, so the calling test must not be
// parallel. Run's own calls stay well under a minute in total.
func Run(t *testing.T, newBackend func(t *testing.T) exec.Backend, opts Options) {
	s := &suite{opts: opts}
	tests := []struct {
		name string
		fn   func(t *testing.T, b exec.Backend)
	}{
		{"ExitCode", s.testExitCode},
		{"Streams", s.testStreams},
		{"SameWriter", s.testSameWriter},
		{"Env", s.testEnv},
		{"Dir", s.testDir},
		{"Inputs", s.testInputs},
		{"Outputs", s.testOutputs},
		{"CancelledBeforeStart", s.testCancelledBeforeStart},
		{"Timeout", s.testTimeout},
		{"CancelIgnoringTerm", s.testCancelIgnoringTerm},
		{"KillEndsGrace", s.testKillEndsGrace},
		{"Concurrent", s.testConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if reason, ok := opts.Skip[tc.name]; ok {
				t.Skip(reason)
			}
			b := newBackend(t)
			t.Cleanup(func() {
				if err := b.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, b)
		})
	}
}

type suite struct {
	opts Options
}

// spec returns a Spec for script in workspace ws, with fresh buffers for
// its streams and env added after Options.Env.
func (s *suite) spec(t *testing.T, ws, script string, env ...string) *exec.Spec {
	return &exec.Spec{
		Task:      t.Name(),
		RunID:     "exectest",
		Script:    script,
		Shell:     s.opts.Shell,
		Env:       append(slices.Clip(s.opts.Env), env...),
		Workspace: ws,
		Stdout:    new(Buffer),
		Stderr:    new(Buffer),
		Grace:     10 * time.Second,
	}
}

func stdout(sp *exec.Spec) string { return sp.Stdout.(*Buffer).String() }
func stderr(sp *exec.Spec) string { return sp.Stderr.(*Buffer).String() }

// mustRun runs sp to completion and fails the test on an error.
func mustRun(t *testing.T, b exec.Backend, sp *exec.Spec) *exec.Result {
	t.Helper()
	res, err := b.Run(context.Background(), sp)
	if err != nil {
		t.Fatalf("Run: %v\nstdout: %q\nstderr: %q", err, stdout(sp), stderr(sp))
	}
	if res == nil {
		t.Fatal("Run returned a nil Result and no error")
	}
	if res.Finished.Before(res.Started) {
		t.Errorf("Result.Finished %v is before Started %v", res.Finished, res.Started)
	}
	return res
}

func (s *suite) testExitCode(t *testing.T, b exec.Backend) {
	for _, code := range []int{0, 1, 3} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			sp := s.spec(t, t.TempDir(), fmt.Sprintf("echo before; exit %d", code))
			res := mustRun(t, b, sp)
			if res.ExitCode != code || res.Signal != "" {
				t.Errorf("ExitCode, Signal = %d, %q; want %d, \"\"", res.ExitCode, res.Signal, code)
			}
			if got := stdout(sp); got != "before\n" {
				t.Errorf("stdout = %q, want %q", got, "before\n")
			}
		})
	}
}

func (s *suite) testStreams(t *testing.T, b exec.Backend) {
	sp := s.spec(t, t.TempDir(), `echo out1; echo err1 >&2; printf 'out2'; printf 'err2\n' 1>&2`)
	mustRun(t, b, sp)
	if got, want := stdout(sp), "out1\nout2"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if got, want := stderr(sp), "err1\nerr2\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
}

// testSameWriter gives both streams one writer that is not safe for
// concurrent use: the race detector catches a backend that writes to it
// from two goroutines at once.
func (s *suite) testSameWriter(t *testing.T, b exec.Backend) {
	sp := s.spec(t, t.TempDir(), `echo a; echo b >&2; echo c; echo d >&2`)
	var both bytes.Buffer
	sp.Stdout, sp.Stderr = &both, &both
	if _, err := b.Run(context.Background(), sp); err != nil {
		t.Fatalf("Run: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(both.String(), "\n"), "\n")
	slices.Sort(lines)
	if want := []string{"a", "b", "c", "d"}; !slices.Equal(lines, want) {
		t.Errorf("output lines = %q, want %q in any order", lines, want)
	}
}

func (s *suite) testEnv(t *testing.T, b exec.Backend) {
	const leak = "RUSTYPIPE_EXECTEST_LEAK"
	t.Setenv(leak, "leaked")
	sp := s.spec(t, t.TempDir(),
		`printf '%s|%s|%s|%s|%s\n' "$RP_A" "$RP_B" "${RP_EMPTY-unset}" "$RP_Q" "${`+leak+`-unset}"`,
		"RP_A=hello  world", "RP_B=x=y", "RP_EMPTY=", `RP_Q='"$HOME\`)
	mustRun(t, b, sp)
	if got, want := stdout(sp), `hello  world|x=y||'"$HOME\|unset`+"\n"; got != want {
		t.Errorf("stdout = %q, want %q (a variable not in Spec.Env must be unset)", got, want)
	}
}

func (s *suite) testDir(t *testing.T, b exec.Backend) {
	ws := t.TempDir()
	writeFile(t, ws, "sub/dir/marker.txt", "in sub/dir\n")
	writeFile(t, ws, "marker.txt", "in the root\n")
	sp := s.spec(t, ws, `cat marker.txt`)
	sp.Dir = "sub/dir"
	sp.Inputs = []string{"marker.txt", "sub/dir/marker.txt"}
	mustRun(t, b, sp)
	if got, want := stdout(sp), "in sub/dir\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
}

func (s *suite) testInputs(t *testing.T, b exec.Backend) {
	ws := t.TempDir()
	writeFile(t, ws, "in/a.txt", "alpha\n")
	writeFile(t, ws, "in/b b.txt", "beta\n")
	sp := s.spec(t, ws, `cat in/a.txt 'in/b b.txt'`)
	sp.Inputs = []string{"in/a.txt", "in/b b.txt"}
	mustRun(t, b, sp)
	if got, want := stdout(sp), "alpha\nbeta\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
}

func (s *suite) testOutputs(t *testing.T, b exec.Backend) {
	ws := t.TempDir()
	sp := s.spec(t, ws, `mkdir -p out/gen && printf 'x\n' > out/x.txt && printf 'y\n' > out/gen/y.txt`)
	sp.Outputs = []string{"out/x.txt", "out/gen/*.txt"}
	res := mustRun(t, b, sp)
	if res.ExitCode != 0 {
		t.Fatalf("ExitCode = %d, want 0; stderr: %q", res.ExitCode, stderr(sp))
	}
	for name, want := range map[string]string{"out/x.txt": "x\n", "out/gen/y.txt": "y\n"} {
		got, err := os.ReadFile(filepath.Join(ws, filepath.FromSlash(name)))
		if err != nil {
			t.Errorf("declared output %s not in the workspace after Run: %v", name, err)
		} else if string(got) != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

func (s *suite) testCancelledBeforeStart(t *testing.T, b exec.Backend) {
	ws := t.TempDir()
	cause := errors.New("exectest: cancelled before start")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	sp := s.spec(t, ws, `echo ran > ran.txt; echo ran`)
	sp.Outputs = []string{"ran.txt"}
	res, err := b.Run(ctx, sp)
	if !errors.Is(err, cause) {
		t.Errorf("Run error = %v, want one wrapping %v", err, cause)
	}
	if errors.Is(err, exec.ErrStart) {
		t.Errorf("Run error = %v wraps exec.ErrStart; a cancelled attempt is not a start failure", err)
	}
	if res != nil {
		t.Errorf("Run returned Result %+v for a task that must not start", res)
	}
	if _, err := os.Stat(filepath.Join(ws, "ran.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the task ran although ctx was done before Run (stat ran.txt: %v)", err)
	}
	if got := stdout(sp); got != "" {
		t.Errorf("stdout = %q, want nothing", got)
	}
}

// testTimeout runs a task under a deadline. SIGTERM ends it, so the grace
// period is never used up: a backend that waited for it would report
// "killed".
func (s *suite) testTimeout(t *testing.T, b exec.Backend) {
	cause := errors.New("exectest: deadline")
	// Should the deadline pass before the task has printed its pids (Run
	// then returns a nil Result if it had not started, as the contract
	// allows), try again with a longer one.
	for d := 500 * time.Millisecond; ; d *= 2 {
		sp := s.spec(t, t.TempDir(), `sleep 30 & echo $$ $!; wait`)
		sp.Grace = time.Minute
		ctx, cancel := context.WithTimeoutCause(context.Background(), d, cause)
		res, err := b.Run(ctx, sp)
		cancel()
		if !errors.Is(err, cause) {
			t.Fatalf("Run error = %v, want one wrapping %v; stdout: %q", err, cause, stdout(sp))
		}
		out := stdout(sp)
		if res == nil && out != "" {
			t.Fatalf("Run returned a nil Result for a task that ran and printed %q", out)
		}
		if !strings.Contains(out, "\n") {
			if d >= 8*time.Second {
				t.Fatalf("the task did not print its pids within %v; Result %+v", d, res)
			}
			continue
		}
		if res.ExitCode != -1 || res.Signal != "terminated" {
			t.Errorf("ExitCode, Signal = %d, %q; want -1, \"terminated\"", res.ExitCode, res.Signal)
		}
		s.checkGone(t, pids(t, out))
		return
	}
}

// stopWhenReady starts sp, waits for its first line of output, runs stop,
// and returns Run's result. The scripts print their first line once they
// are set up (traps installed, children started), so stopping is never
// early.
func stopWhenReady(t *testing.T, b exec.Backend, ctx context.Context, sp *exec.Spec, stop func()) (*exec.Result, error) {
	t.Helper()
	done := Start(ctx, b, sp)
	select {
	case <-sp.Stdout.(*Buffer).FirstLine():
		stop()
		r := <-done
		return r.Res, r.Err
	case r := <-done:
		t.Fatalf("Run returned before the task was ready: %+v, %v; stdout %q, stderr %q", r.Res, r.Err, stdout(sp), stderr(sp))
		return nil, nil
	}
}

// testCancelIgnoringTerm cancels a task whose processes ignore SIGTERM: the
// backend must kill them once the grace period is over.
func (s *suite) testCancelIgnoringTerm(t *testing.T, b exec.Backend) {
	sp := s.spec(t, t.TempDir(), `trap '' TERM; sleep 30 & echo $$ $!; wait`)
	sp.Grace = 200 * time.Millisecond
	cause := errors.New("exectest: cancelled")
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	res, err := stopWhenReady(t, b, ctx, sp, func() { cancel(cause) })
	checkKilled(t, res, err, cause)
	s.checkGone(t, pids(t, stdout(sp)))
}

// testKillEndsGrace cancels a task that ignores SIGTERM with a grace period
// of an hour, then closes Spec.Kill. A backend that ignores Kill fails this
// test by making it time out.
func (s *suite) testKillEndsGrace(t *testing.T, b exec.Backend) {
	sp := s.spec(t, t.TempDir(), `trap '' TERM; sleep 30 & echo $$ $!; wait`)
	sp.Grace = time.Hour
	kill := make(chan struct{})
	sp.Kill = kill
	cause := errors.New("exectest: cancelled, then killed")
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	res, err := stopWhenReady(t, b, ctx, sp, func() {
		cancel(cause)
		close(kill)
	})
	checkKilled(t, res, err, cause)
	s.checkGone(t, pids(t, stdout(sp)))
}

func checkKilled(t *testing.T, res *exec.Result, err, cause error) {
	t.Helper()
	if !errors.Is(err, cause) {
		t.Errorf("Run error = %v, want one wrapping %v", err, cause)
	}
	if res == nil {
		t.Fatal("Run returned a nil Result for a task that was started")
	}
	if res.ExitCode != -1 || res.Signal != "killed" {
		t.Errorf("ExitCode, Signal = %d, %q; want -1, \"killed\"", res.ExitCode, res.Signal)
	}
}

// testConcurrent runs eight tasks at once on one backend, each with its own
// directory, environment, streams, outputs and exit code.
func (s *suite) testConcurrent(t *testing.T, b exec.Backend) {
	const n = 8
	ws := t.TempDir()
	specs := make([]*exec.Spec, n)
	for i := range specs {
		dir := fmt.Sprintf("d%d", i)
		writeFile(t, ws, dir+"/in.txt", fmt.Sprintf("input %d\n", i))
		sp := s.spec(t, ws, `cat in.txt; printf 'n=%s\n' "$N"; sleep 1; printf 'e%s\n' "$N" >&2; `+
			`mkdir -p out && printf '%s\n' "$N" > out/n.txt; exit "$N"`, fmt.Sprintf("N=%d", i))
		sp.Dir = dir
		sp.Inputs = []string{dir + "/in.txt"}
		sp.Outputs = []string{dir + "/out/n.txt"}
		specs[i] = sp
	}
	results := make([]*exec.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, sp := range specs {
		wg.Go(func() { results[i], errs[i] = b.Run(context.Background(), sp) })
	}
	wg.Wait()
	for i, sp := range specs {
		if errs[i] != nil {
			t.Errorf("task %d: Run: %v", i, errs[i])
			continue
		}
		if results[i].ExitCode != i {
			t.Errorf("task %d: ExitCode = %d, want %d", i, results[i].ExitCode, i)
		}
		if got, want := stdout(sp), fmt.Sprintf("input %d\nn=%d\n", i, i); got != want {
			t.Errorf("task %d: stdout = %q, want %q", i, got, want)
		}
		if got, want := stderr(sp), fmt.Sprintf("e%d\n", i); got != want {
			t.Errorf("task %d: stderr = %q, want %q", i, got, want)
		}
		got, err := os.ReadFile(filepath.Join(ws, fmt.Sprintf("d%d", i), "out", "n.txt"))
		if want := fmt.Sprintf("%d\n", i); err != nil || string(got) != want {
			t.Errorf("task %d: out/n.txt = %q, %v; want %q", i, got, err, want)
		}
	}
}

// checkGone checks with Options.PIDCheck that every pid is gone.
func (s *suite) checkGone(t *testing.T, pids []int) {
	t.Helper()
	if s.opts.PIDCheck == nil {
		return
	}
	for _, pid := range pids {
		if !s.opts.PIDCheck(t, pid) {
			t.Errorf("process %d still runs after Run returned", pid)
		}
	}
}

// pids parses the first line of out as space-separated pids.
func pids(t *testing.T, out string) []int {
	t.Helper()
	line, _, _ := strings.Cut(out, "\n")
	var ps []int
	for _, f := range strings.Fields(line) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 0 {
			t.Fatalf("first line of stdout %q: want pids", line)
		}
		ps = append(ps, pid)
	}
	if len(ps) == 0 {
		t.Fatalf("stdout %q: want a first line of pids", out)
	}
	return ps
}

func writeFile(t *testing.T, ws, name, content string) {
	t.Helper()
	p := filepath.Join(ws, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
