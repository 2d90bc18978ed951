//go:build unix

package local_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rustypipe/rustypipe/exec"
	"github.com/rustypipe/rustypipe/exec/exectest"
	"github.com/rustypipe/rustypipe/exec/local"
)

// helperEnv makes the test binary act as a helper process instead of
// running tests; see TestMain.
const helperEnv = "RUSTYPIPE_LOCAL_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "escape" {
		// Leave the task's process group and session, keeping its stdout.
		if _, err := syscall.Setsid(); err != nil {
			fmt.Fprintln(os.Stderr, "setsid:", err)
			os.Exit(2)
		}
		fmt.Println("escaped")
		time.Sleep(5 * time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// pidCheck is exectest.ProcessGone: the tasks' pids are this machine's.
var pidCheck = exectest.ProcessGone

// runUntilReady runs s and calls atReady once its first line of output has
// arrived; it returns Run's results.
func runUntilReady(t *testing.T, ctx context.Context, s *exec.Spec, atReady func(first string)) (*exec.Result, error) {
	t.Helper()
	out := new(exectest.Buffer)
	s.Stdout = out
	done := exectest.Start(ctx, local.New(), s)
	select {
	case <-out.FirstLine():
		line, _, _ := strings.Cut(out.String(), "\n")
		atReady(line)
		r := <-done
		return r.Res, r.Err
	case r := <-done:
		t.Fatalf("Run returned before the task was ready: %+v, %v; stdout %q, stderr %q",
			r.Res, r.Err, out.String(), s.Stderr)
		return nil, nil
	}
}

// readPids reads the pid in each file of ws.
func readPids(t *testing.T, ws string, names ...string) map[string]int {
	t.Helper()
	pids := map[string]int{}
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(ws, name))
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		pids[name] = pid
	}
	return pids
}

func checkGone(t *testing.T, pids map[string]int) {
	t.Helper()
	for name, pid := range pids {
		if !pidCheck(t, pid) {
			t.Errorf("process %d (%s) still runs after Run returned", pid, name)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// waitFiles is a sh loop that waits until each file is non-empty.
func waitFiles(names ...string) string {
	var conds []string
	for _, n := range names {
		conds = append(conds, "! test -s "+n)
	}
	return "while " + strings.Join(conds, " || ") + "; do sleep 0.01; done"
}

// TestGrandchildrenKilledOnCancel starts children and grandchildren, some
// holding stdout, one ignoring SIGTERM, and checks that cancelling the task
// leaves none of them.
func TestGrandchildrenKilledOnCancel(t *testing.T) {
	ws := t.TempDir()
	s := spec(t, ws, `
sh -c 'sleep 300 & echo $! > gc1.pid; sleep 300' & echo $! > c1.pid
sh -c 'trap "" TERM; sleep 300 & echo $! > gc2.pid; wait' & echo $! > c2.pid
sleep 300 >/dev/null 2>&1 & echo $! > c3.pid
`+waitFiles("gc1.pid", "gc2.pid")+`
echo ready
wait`)
	s.Grace = 200 * time.Millisecond
	cause := errors.New("test cancelled")
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	res, err := runUntilReady(t, ctx, s, func(string) { cancel(cause) })
	if !errors.Is(err, cause) {
		t.Errorf("Run error = %v, want one wrapping %v", err, cause)
	}
	if res == nil || res.ExitCode != -1 || res.Signal != "terminated" {
		t.Errorf("Result = %+v, want ExitCode -1, Signal terminated", res)
	}
	checkGone(t, readPids(t, ws, "c1.pid", "c2.pid", "c3.pid", "gc1.pid", "gc2.pid"))
}

// TestGraceCoversGroupMembers checks that a member still handling SIGTERM
// after the shell died keeps the rest of the grace period: its clean-up
// takes a second, and Run must not kill it as soon as the shell is gone.
func TestGraceCoversGroupMembers(t *testing.T) {
	ws := t.TempDir()
	s := spec(t, ws, `
sh -c 'trap "sleep 1; echo cleaned > cleaned.txt; exit 0" TERM; echo $$ > child.pid; while :; do sleep 1; done' &
`+waitFiles("child.pid")+`
echo ready
wait`)
	s.Grace = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res, err := runUntilReady(t, ctx, s, func(string) { cancel() })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run error = %v, want one wrapping context.Canceled", err)
	}
	if res == nil || res.Signal != "terminated" {
		t.Errorf("Result = %+v, want the shell terminated", res)
	}
	if b, err := os.ReadFile(filepath.Join(ws, "cleaned.txt")); err != nil || string(b) != "cleaned\n" {
		t.Errorf("cleaned.txt = %q, %v: the child was not given its grace period", b, err)
	}
	checkGone(t, readPids(t, ws, "child.pid"))
}

// TestProcessGroup checks that the shell leads a new process group that its
// children join.
func TestProcessGroup(t *testing.T) {
	s := spec(t, t.TempDir(), `sleep 300 & echo $$ $!; wait`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var shell, child, shellGroup, childGroup int
	_, err := runUntilReady(t, ctx, s, func(line string) {
		defer cancel()
		if _, err := fmt.Sscan(line, &shell, &child); err != nil {
			t.Errorf("first line %q: %v", line, err)
			return
		}
		shellGroup, _ = syscall.Getpgid(shell)
		childGroup, _ = syscall.Getpgid(child)
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run error = %v, want one wrapping context.Canceled", err)
	}
	if shellGroup != shell || childGroup != shell {
		t.Errorf("process groups of shell %d and child %d = %d, %d; want both %d",
			shell, child, shellGroup, childGroup, shell)
	}
	if own := syscall.Getpgrp(); shellGroup == own {
		t.Errorf("the task runs in the test's own process group %d", own)
	}
}

// TestOrphansKilledAfterExit checks that background jobs a successful task
// left behind are killed before Run returns, including one that holds
// stdout and one that ignores SIGTERM.
func TestOrphansKilledAfterExit(t *testing.T) {
	ws := t.TempDir()
	s := spec(t, ws, `
sleep 300 & echo $! > bg1.pid
sleep 300 >/dev/null 2>&1 & echo $! > bg2.pid
(trap '' TERM; exec sleep 300) >/dev/null 2>&1 & echo $! > bg3.pid
echo done`)
	res, err := local.New().Run(context.Background(), s)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.ExitCode != 0 || res.Signal != "" {
		t.Errorf("Result = %+v, want exit code 0", res)
	}
	if got := s.Stdout.(*strings.Builder).String(); got != "done\n" {
		t.Errorf("stdout = %q, want %q", got, "done\n")
	}
	checkGone(t, readPids(t, ws, "bg1.pid", "bg2.pid", "bg3.pid"))
}

// TestEscapedProcessDoesNotBlockRun starts a process that leaves the group
// with setsid and keeps stdout open: Run cannot kill it, but must return
// anyway, with what it printed before.
func TestEscapedProcessDoesNotBlockRun(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Skip("no path to the test binary:", err)
	}
	ws := t.TempDir()
	s := spec(t, ws, `"$SELF" & echo $! > esc.pid; `+waitFiles("esc.pid")+`; sleep 0.2; echo shell done`)
	s.Env = append(s.Env, helperEnv+"=escape", "SELF="+self)
	res, err := local.New().Run(context.Background(), s)
	if b, rerr := os.ReadFile(filepath.Join(ws, "esc.pid")); rerr == nil {
		if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
			t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
		}
	}
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.ExitCode != 0 {
		t.Errorf("Result = %+v, want exit code 0; stderr %q", res, s.Stderr)
	}
	if got := s.Stdout.(*strings.Builder).String(); !strings.Contains(got, "shell done\n") {
		t.Errorf("stdout = %q, want it to contain %q", got, "shell done\n")
	}
}

// memWriter counts what it is given and samples the heap every 8 MiB.
type memWriter struct {
	n, next  int64
	peakHeap uint64
}

func (w *memWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	if w.n >= w.next {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		w.peakHeap = max(w.peakHeap, ms.HeapInuse)
		w.next += 8 << 20
	}
	return len(p), nil
}

// TestOutputMemoryBounded streams 200 MiB of output and checks that the heap
// never holds more than a fraction of it.
func TestOutputMemoryBounded(t *testing.T) {
	const size = 200 << 20
	const limit = 48 << 20 // a copy of the output would take 200 MiB
	runtime.GC()
	w := &memWriter{}
	s := spec(t, t.TempDir(), "dd if=/dev/zero bs=1048576 count=200 2>/dev/null")
	s.Stdout = w
	res, err := local.New().Run(context.Background(), s)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Run = %+v, %v; stderr %q", res, err, s.Stderr)
	}
	if w.n != size {
		t.Errorf("got %d bytes of output, want %d", w.n, size)
	}
	if w.peakHeap > limit {
		t.Errorf("heap in use peaked at %d MiB while streaming, want at most %d MiB", w.peakHeap>>20, limit>>20)
	}
	t.Logf("heap in use peaked at %.1f MiB", float64(w.peakHeap)/(1<<20))
}

// TestStdinIsEmpty checks that every task reads end-of-file on its standard
// input, which tasks share (one null device, opened once): one task must not
// close or move it for the next.
func TestStdinIsEmpty(t *testing.T) {
	b := local.New()
	ws := t.TempDir()
	for i := range 3 {
		s := spec(t, ws, `if IFS= read -r x; then echo "read $x"; else echo eof; fi; exec 0<&-`)
		res, err := b.Run(context.Background(), s)
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("run %d: %+v, %v; stderr %q", i, res, err, s.Stderr)
		}
		if got := s.Stdout.(*strings.Builder).String(); got != "eof\n" {
			t.Errorf("run %d: stdout = %q, want %q", i, got, "eof\n")
		}
	}
}
