package external_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rustypipe/rustypipe/exec"
	"github.com/rustypipe/rustypipe/exec/exectest"
	"github.com/rustypipe/rustypipe/exec/external"
)

// deadlock bounds waits that only a deadlock would exhaust; it is not a
// performance threshold.
const deadlock = 60 * time.Second

// fixture is a client Backend whose helper is this test binary.
type fixture struct {
	b      *external.Backend
	starts string // file with one line per helper start

	mu   sync.Mutex
	logs []string
}

type fixtureOpts struct {
	mode    string         // helperEnv value; "" is "serve"
	config  map[string]any // sent in the hello
	tempDir string         // Options.TempDir
}

func newFixture(t testing.TB, o fixtureOpts) *fixture {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if o.mode == "" {
		o.mode = "serve"
	}
	f := &fixture{starts: filepath.Join(t.TempDir(), "starts")}
	f.b = external.New(external.Options{
		Command: []string{exe},
		Config:  o.config,
		Name:    "test",
		Env:     append(os.Environ(), helperEnv+"="+o.mode, startsEnv+"="+f.starts),
		Log: func(msg string) {
			f.mu.Lock()
			f.logs = append(f.logs, msg)
			f.mu.Unlock()
		},
		TempDir: o.tempDir,
	})
	t.Cleanup(func() { f.b.Close() })
	return f
}

// startCount is how many helper processes have started.
func (f *fixture) startCount(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(f.starts)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

func (f *fixture) logged(sub string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.ContainsFunc(f.logs, func(s string) bool { return strings.Contains(s, sub) })
}

// spec is a Spec for script in a fresh workspace.
func spec(t testing.TB, script string) *exec.Spec {
	return &exec.Spec{
		Task:      t.Name(),
		RunID:     "test-run",
		Script:    script,
		Shell:     "sh",
		Env:       []string{"PATH=" + os.Getenv("PATH")},
		Workspace: t.TempDir(),
		Stdout:    new(exectest.Buffer),
		Stderr:    new(exectest.Buffer),
		Grace:     10 * time.Second,
	}
}

func out(s *exec.Spec) string { return s.Stdout.(*exectest.Buffer).String() }

func TestConformance(t *testing.T) {
	if _, err := osexec.LookPath("sh"); err != nil {
		t.Skip("no sh in PATH:", err)
	}
	exectest.Run(t, func(t *testing.T) exec.Backend { return newFixture(t, fixtureOpts{}).b }, exectest.Options{
		Shell:    "sh",
		Env:      []string{"PATH=" + os.Getenv("PATH")},
		PIDCheck: pidCheck,
	})
}

func TestStartsOnceForManyRuns(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	if n := f.startCount(t); n != 0 {
		t.Fatalf("New started %d helpers, want none", n)
	}
	for range 3 {
		if _, err := f.b.Run(context.Background(), spec(t, "#!helper:spew 10")); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.startCount(t); n != 1 {
		t.Errorf("3 runs started %d helpers, want 1", n)
	}
	if err := f.b.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	_, err := f.b.Run(context.Background(), spec(t, "#!helper:spew 10"))
	if !errors.Is(err, exec.ErrStart) || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Run after Close: %v, want an error wrapping exec.ErrStart saying closed", err)
	}
}

func TestRequestFields(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := spec(t, "#!helper:spec")
	s.Dir, s.Image, s.Grace = "sub", "alpine:3", 1500*time.Millisecond
	s.Inputs, s.Outputs = []string{"in/a", "in/b c"}, []string{"out/**"}
	s.Env = []string{"A=1", "B=x=y"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	if _, err := f.b.Run(ctx, s); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out(s)), &got); err != nil {
		t.Fatalf("helper output %q: %v", out(s), err)
	}
	want := map[string]any{
		"task": t.Name(), "run_id": "test-run", "shell": "sh", "env": []any{"A=1", "B=x=y"},
		"workspace": s.Workspace, "dir": "sub", "inputs": []any{"in/a", "in/b c"}, "outputs": []any{"out/**"},
		"image": "alpine:3", "grace": "1.5s", "deadline": true,
		"output_dir_abs": true, "output_dir_empty": true,
	}
	for k, w := range want {
		if g := got[k]; fmt.Sprint(g) != fmt.Sprint(w) {
			t.Errorf("helper's Spec %s = %v, want %v", k, g, w)
		}
	}
}

func TestVersionMismatch(t *testing.T) {
	f := newFixture(t, fixtureOpts{mode: "protocol2"})
	for i := range 2 {
		_, err := f.b.Run(context.Background(), spec(t, "#!helper:spew 1"))
		if !errors.Is(err, external.ErrProtocol) || !errors.Is(err, exec.ErrStart) || errors.Is(err, exec.ErrUnavailable) {
			t.Fatalf("Run %d: %v, want an error wrapping ErrProtocol and exec.ErrStart, not exec.ErrUnavailable", i, err)
		}
		for _, sub := range []string{`external backend "test"`, "protocol version 2", "speaks 1"} {
			if !strings.Contains(err.Error(), sub) {
				t.Errorf("Run %d: error %q does not say %q", i, err, sub)
			}
		}
	}
	if n := f.startCount(t); n != 1 {
		t.Errorf("helper started %d times, want 1: a mismatch is not retried", n)
	}
}

func TestConfigRefused(t *testing.T) {
	f := newFixture(t, fixtureOpts{config: map[string]any{"namespace": 3}})
	_, err := f.b.Run(context.Background(), spec(t, "#!helper:spew 1"))
	if !errors.Is(err, exec.ErrStart) || errors.Is(err, exec.ErrUnavailable) {
		t.Errorf("Run: %v, want an error wrapping exec.ErrStart and not exec.ErrUnavailable (retrying cannot help)", err)
	}
	if err == nil || !strings.Contains(err.Error(), `external backend "test": helper refused: config key "namespace": want a string`) {
		t.Errorf("Run: %v, want the helper's refusal naming the key", err)
	}
	if _, ierr := f.b.Identity(context.Background(), &exec.Spec{}); ierr == nil || !strings.Contains(ierr.Error(), "namespace") {
		t.Errorf("Identity: %v, want the refusal", ierr)
	}
	if n := f.startCount(t); n != 1 {
		t.Errorf("helper started %d times, want 1: a refusal is not retried", n)
	}
}

func TestCommandNotFound(t *testing.T) {
	b := external.New(external.Options{Command: []string{"rustypipe-no-such-helper"}, Name: "nf"})
	defer b.Close()
	_, err := b.Run(context.Background(), spec(t, "x"))
	if !errors.Is(err, exec.ErrStart) || !strings.Contains(err.Error(), "not found beside this executable nor in PATH") {
		t.Errorf("Run: %v, want a start error saying where it looked", err)
	}
	b2 := external.New(external.Options{Name: "empty"})
	defer b2.Close()
	if _, err := b2.Run(context.Background(), spec(t, "x")); !errors.Is(err, exec.ErrStart) || !strings.Contains(err.Error(), "no command") {
		t.Errorf("Run without a command: %v", err)
	}
}

func TestCommandFromPATH(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symlinks need privileges on Windows")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(exe, filepath.Join(dir, "rustypipe-test-helper")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	b := external.New(external.Options{
		Command: []string{"rustypipe-test-helper"},
		Env:     append(os.Environ(), helperEnv+"=serve"),
	})
	defer b.Close()
	s := spec(t, "#!helper:spew 5")
	if _, err := b.Run(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if got := out(s); got != string(pattern(5, 1)) {
		t.Errorf("stdout = %q", got)
	}
}

func TestGarbageFromHelper(t *testing.T) {
	f := newFixture(t, fixtureOpts{mode: "garbage"})
	_, err := f.b.Run(context.Background(), spec(t, "#!helper:spew 1"))
	if !errors.Is(err, external.ErrProtocol) || !errors.Is(err, exec.ErrUnavailable) || !strings.Contains(err.Error(), "panic: this is not a message") {
		t.Errorf("Run: %v, want a protocol error quoting the line", err)
	}
}

func TestHelperKilledMidRun(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := spec(t, "#!helper:block")
	done := make(chan error, 1)
	var res *exec.Result
	go func() {
		var err error
		res, err = f.b.Run(context.Background(), s)
		done <- err
	}()
	<-s.Stdout.(*exectest.Buffer).FirstLine()
	pid, err := strconv.Atoi(strings.TrimSpace(out(s)))
	if err != nil {
		t.Fatalf("helper pid %q: %v", out(s), err)
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	err = <-done
	if !errors.Is(err, external.ErrHelperExited) || !errors.Is(err, exec.ErrUnavailable) || res != nil {
		t.Fatalf("Run = %+v, %v; want no Result and an error wrapping ErrHelperExited and exec.ErrUnavailable", res, err)
	}
	if !strings.HasPrefix(err.Error(), `external backend "test": helper exited: `) {
		t.Errorf("error %q does not name the backend and the exit", err)
	}

	s2 := spec(t, "#!helper:spew 100")
	if _, err := f.b.Run(context.Background(), s2); err != nil {
		t.Fatalf("Run after the crash: %v", err)
	}
	if got := out(s2); got != string(pattern(100, 1)) {
		t.Errorf("stdout after restart = %q", got)
	}
	if n := f.startCount(t); n != 2 {
		t.Errorf("helper started %d times, want 2", n)
	}
}

func TestHelperDiesWithStderr(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	_, err := f.b.Run(context.Background(), spec(t, "#!helper:die"))
	if !errors.Is(err, external.ErrHelperExited) {
		t.Fatalf("Run: %v, want an error wrapping ErrHelperExited", err)
	}
	for _, sub := range []string{"exit status 3", "stderr ended with", "helper: fatal: boom"} {
		if !strings.Contains(err.Error(), sub) {
			t.Errorf("error %q does not say %q", err, sub)
		}
	}
	if !f.logged(`external backend "test": stderr: helper: fatal: boom`) {
		t.Errorf("the helper's stderr was not logged: %q", f.logs)
	}
}

func TestOutputStaging(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the helper stages symlinks")
	}
	tests := []struct {
		mode    string
		wantErr []string // parts of the error; nil means success
		unsafe  bool     // the error wraps exec.ErrUnsafePath
	}{
		{"good", nil, false},
		{"undeclared", []string{"secret.txt is not a declared output", "restored nothing"}, false},
		{"escape", []string{`symlink out/link -> "../../outside" points outside`, "restored nothing"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			tmp := t.TempDir()
			f := newFixture(t, fixtureOpts{tempDir: tmp})
			s := spec(t, "#!helper:stage "+tc.mode)
			s.Outputs = []string{"out/**"}
			res, err := f.b.Run(context.Background(), s)
			if res == nil {
				t.Fatalf("Run returned no Result (err %v) for a task that ran", err)
			}
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Errorf("staging directory left behind: %v", left)
			}
			if tc.wantErr != nil {
				if err == nil {
					t.Fatal("Run succeeded, want a refusal")
				}
				for _, sub := range tc.wantErr {
					if !strings.Contains(err.Error(), sub) {
						t.Errorf("error %q does not say %q", err, sub)
					}
				}
				if got := errors.Is(err, exec.ErrUnsafePath); got != tc.unsafe {
					t.Errorf("errors.Is(err, ErrUnsafePath) = %v, want %v", got, tc.unsafe)
				}
				if entries, _ := os.ReadDir(s.Workspace); len(entries) != 0 {
					t.Errorf("workspace has %v after a refusal, want nothing restored", entries)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(filepath.Join(s.Workspace, "out", "a.txt")); err != nil || string(b) != "a\n" {
				t.Errorf("out/a.txt = %q, %v", b, err)
			}
			if fi, err := os.Stat(filepath.Join(s.Workspace, "out", "sub", "run.sh")); err != nil || fi.Mode().Perm() != 0o755 {
				t.Errorf("out/sub/run.sh: %v, %v; want mode 0755", fi, err)
			}
			if target, err := os.Readlink(filepath.Join(s.Workspace, "out", "link")); err != nil || target != "a.txt" {
				t.Errorf("out/link -> %q, %v; want a.txt", target, err)
			}
		})
	}
}

func TestManyConcurrentRuns(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	const n = 40
	specs := make([]*exec.Spec, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range specs {
		size := i * 9173 // up to ~360 KB, many chunks
		specs[i] = spec(t, fmt.Sprintf("#!helper:spew %d", size))
		wg.Go(func() { _, errs[i] = f.b.Run(context.Background(), specs[i]) })
	}
	wg.Wait()
	for i, s := range specs {
		if errs[i] != nil {
			t.Errorf("run %d: %v", i, errs[i])
			continue
		}
		size := i * 9173
		if got := s.Stdout.(*exectest.Buffer).Bytes(); !bytes.Equal(got, pattern(size, 1)) {
			t.Errorf("run %d: stdout has %d bytes, want pattern(%d)", i, len(got), size)
		}
		if got := s.Stderr.(*exectest.Buffer).Bytes(); !bytes.Equal(got, pattern(size/2, 2)) {
			t.Errorf("run %d: stderr has %d bytes, want pattern(%d)", i, len(got), size/2)
		}
	}
	if c := f.startCount(t); c != 1 {
		t.Errorf("helper started %d times, want 1", c)
	}
}

// TestSlowWriterDoesNotBlockOthers blocks one run's writer and checks that
// another run still completes.
func TestSlowWriterDoesNotBlockOthers(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	slow := spec(t, fmt.Sprintf("#!helper:spew %d", 1<<20))
	bw := &blockingWriter{entered: make(chan struct{}), release: make(chan struct{})}
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(bw.release) }) }
	t.Cleanup(release) // before the fixture's Close, should the test fail
	slow.Stdout = bw
	slowDone := make(chan error, 1)
	go func() {
		_, err := f.b.Run(context.Background(), slow)
		slowDone <- err
	}()
	<-bw.entered

	fast := spec(t, "#!helper:spew 5000")
	fastDone := make(chan error, 1)
	go func() {
		_, err := f.b.Run(context.Background(), fast)
		fastDone <- err
	}()
	select {
	case err := <-fastDone:
		if err != nil {
			t.Errorf("fast run: %v", err)
		}
	case <-time.After(deadlock):
		t.Fatal("a run with a blocked writer kept another run from finishing")
	}
	release()
	if err := <-slowDone; err != nil {
		t.Fatalf("slow run: %v", err)
	}
	if !bytes.Equal(bw.buf.Bytes(), pattern(1<<20, 1)) {
		t.Errorf("slow run's stdout has %d bytes, want pattern(1 MiB)", bw.buf.Len())
	}
}

// TestCloseWithStuckWriter checks that Close ends a helper whose messages
// wait for a run whose writer never returns.
func TestCloseWithStuckWriter(t *testing.T) {
	defer external.SetTimeouts(50*time.Millisecond, 50*time.Millisecond)()
	f := newFixture(t, fixtureOpts{})
	s := spec(t, fmt.Sprintf("#!helper:spew %d", 8<<20)) // far more than a run queues
	bw := &blockingWriter{entered: make(chan struct{}), release: make(chan struct{})}
	s.Stdout = bw
	runDone := make(chan error, 1)
	go func() {
		_, err := f.b.Run(context.Background(), s)
		runDone <- err
	}()
	<-bw.entered
	closed := make(chan error, 1)
	go func() { closed <- f.b.Close() }()
	select {
	case err := <-closed:
		if err == nil || !strings.Contains(err.Error(), "killed") {
			t.Errorf("Close = %v, want an error saying the helper was killed", err)
		}
	case <-time.After(deadlock):
		t.Fatal("Close did not return")
	}
	close(bw.release)
	if err := <-runDone; !errors.Is(err, external.ErrHelperExited) {
		t.Errorf("Run = %v, want an error wrapping ErrHelperExited", err)
	}
}

func TestCancelAndKill(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := spec(t, "#!helper:stoppable")
	s.Grace = time.Hour
	kill := make(chan struct{})
	s.Kill = kill
	cause := errors.New("test: cancelled, then killed")
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	type ret struct {
		res *exec.Result
		err error
	}
	done := make(chan ret, 1)
	go func() {
		res, err := f.b.Run(ctx, s)
		done <- ret{res, err}
	}()
	<-s.Stdout.(*exectest.Buffer).FirstLine()
	cancel(cause)
	close(kill)
	r := <-done
	if !errors.Is(r.err, cause) || !errors.Is(r.err, context.Canceled) {
		t.Errorf("Run error = %v, want one wrapping the cause and context.Canceled", r.err)
	}
	if r.res == nil || r.res.Signal != "killed" || r.res.ExitCode != -1 {
		t.Errorf("Result = %+v, want ExitCode -1, Signal killed", r.res)
	}
}

// TestHelperIgnoresCancel checks that Run gives up on a helper that does
// not answer a cancel, and that Close then kills it.
func TestHelperIgnoresCancel(t *testing.T) {
	defer external.SetTimeouts(50*time.Millisecond, 50*time.Millisecond)()
	f := newFixture(t, fixtureOpts{})
	s := spec(t, "#!helper:hang")
	s.Grace = 0
	cause := errors.New("test: give up")
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	done := make(chan error, 1)
	go func() {
		_, err := f.b.Run(ctx, s)
		done <- err
	}()
	<-s.Stdout.(*exectest.Buffer).FirstLine()
	cancel(cause)
	err := <-done
	if !errors.Is(err, cause) || !strings.Contains(err.Error(), "abandoned") {
		t.Errorf("Run error = %v, want one wrapping the cause that says abandoned", err)
	}
	if err := f.b.Close(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Close = %v, want an error saying the helper was killed", err)
	}
}

func TestIdentity(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := context.Background()
	want := []struct{ image, id string }{
		{"a", "test a #1"},
		{"a", "test a #1"}, // kept: the helper is not asked again
		{"b", "test b #2"},
		{"", "test  #3"},
	}
	for _, w := range want {
		got, err := f.b.Identity(ctx, &exec.Spec{Image: w.image})
		if err != nil || got != w.id {
			t.Errorf("Identity(%q) = %q, %v; want %q", w.image, got, err, w.id)
		}
	}
	if _, err := f.b.Identity(ctx, &exec.Spec{Image: "broken"}); err == nil || !strings.Contains(err.Error(), "no such image") {
		t.Errorf("Identity(broken) = %v, want the helper's error", err)
	}
	if n := f.startCount(t); n != 1 {
		t.Errorf("helper started %d times, want 1", n)
	}

	plain := newFixture(t, fixtureOpts{config: map[string]any{"identity": false}})
	got, err := plain.b.Identity(ctx, &exec.Spec{Image: "a"})
	if want := "local " + runtime.GOOS + "/" + runtime.GOARCH; err != nil || got != want {
		t.Errorf("Identity without the capability = %q, %v; want %q", got, err, want)
	}
}

// blockingWriter closes entered on its first Write and blocks every Write
// until release is closed.
type blockingWriter struct {
	entered, release chan struct{}
	once             sync.Once
	buf              bytes.Buffer
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.entered) })
	<-w.release
	return w.buf.Write(p)
}
