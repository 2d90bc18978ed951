package local

import (
	"context"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rustypipe/rustypipe/exec"
)

var _ exec.Backend = (*Backend)(nil)

const (
	// drainTimeout bounds how long Run keeps reading a task's output once its
	// process group is gone. Only a process that left the group (setsid, a
	// daemon) can still hold the pipes then; one second lets its last writes
	// arrive without making every such task noticeably slower.
	drainTimeout = time.Second

	// goneTimeout bounds the wait for the members of a killed group to die.
	// SIGKILL takes effect in microseconds; only a process stuck in an
	// uninterruptible kernel wait (a dead NFS mount) gets near this.
	goneTimeout = 5 * time.Second

	// pollMin and pollMax bound the interval at which Run checks whether a
	// process group still has live members: start fast, since most groups
	// empty within a millisecond, and back off to keep idle polling cheap.
	pollMin = time.Millisecond
	pollMax = 50 * time.Millisecond
)

// Backend runs tasks as child processes of the current process. The zero
// value is not usable; call New.
type Backend struct {
	closed atomic.Bool
}

// New returns a local backend. It holds no resources besides the processes
// of running tasks, which Run always reaps before returning.
func New() *Backend { return &Backend{} }

// Close marks the backend closed; a later Run fails with an error wrapping
// exec.ErrStart. Close does not stop running tasks (their contexts do) and
// always returns nil. It is safe for concurrent use.
func (b *Backend) Close() error {
	b.closed.Store(true)
	return nil
}

// Run runs s.Script with s.Shell in filepath.Join(s.Workspace, s.Dir), with
// exactly s.Env as its environment, in a process group of its own. It
// implements exec.Backend; see the package documentation for the details of
// cancellation and clean-up. Run is safe for concurrent use.
//
// Errors: a start failure wraps exec.ErrStart and returns a nil Result; a ctx
// done before the start wraps context.Cause(ctx) and returns a nil Result; a
// ctx done while the task runs wraps context.Cause(ctx) and returns the
// Result; a failing s.Stdout or s.Stderr returns the Result and the write
// error.
func (b *Backend) Run(ctx context.Context, s *exec.Spec) (*exec.Result, error) {
	if b.closed.Load() {
		return nil, &exec.StartError{Backend: "local", Task: s.Task, Msg: "backend is closed"}
	}
	if ctx.Err() != nil {
		return nil, exec.StopError(ctx, "local", s.Task, "not started")
	}
	cmd, err := command(s)
	if err != nil {
		return nil, err
	}
	out, err := newOutputs(s.Stdout, s.Stderr)
	if err != nil {
		return nil, &exec.StartError{Backend: "local", Task: s.Task, Msg: "create output pipes", Err: err}
	}
	cmd.Stdout, cmd.Stderr = out.childStdout, out.childStderr
	if null := devNull(); null != nil {
		cmd.Stdin = null
	}
	if err := cmd.Start(); err != nil {
		out.abort()
		return nil, &exec.StartError{Backend: "local", Task: s.Task, Msg: "start shell", Err: err}
	}
	started := time.Now()
	out.start()
	g, err := newGroup(cmd)
	if err != nil {
		// newGroup has killed and reaped the process; nothing of it ran.
		out.wait(0)
		return nil, &exec.StartError{Backend: "local", Task: s.Task, Msg: "set up process group", Err: err}
	}
	defer g.release()

	exited := make(chan struct{})
	go func() {
		g.waitExit()
		close(exited)
	}()
	stopped, killed := false, false
	select {
	case <-exited:
	case <-ctx.Done():
		stopped = true
		killed = stop(g, exited, s.Grace, s.Kill)
	}
	<-exited
	// Whatever is left of the group goes now: background children of a task
	// that finished, or members still cleaning up when the grace ran out. The
	// leader is not reaped yet where the platform allows it, so the group's
	// id cannot have been reused by an unrelated process.
	g.kill()
	state, waitErr := g.reap()
	g.awaitGone(goneTimeout)
	writeErr := out.wait(drainTimeout)
	finished := time.Now()

	res := &exec.Result{ExitCode: -1, Started: started, Finished: finished}
	if state == nil {
		return res, fmt.Errorf("local: wait for task %q: %w", s.Task, waitErr)
	}
	res.ExitCode, res.Signal = exitStatus(state, stopped, killed)
	if stopped {
		return res, exec.StopError(ctx, "local", s.Task, "stopped")
	}
	if writeErr != nil {
		return res, fmt.Errorf("local: task %q: %w", s.Task, writeErr)
	}
	return res, nil
}

// stop asks the group to terminate and waits for it to go: the leader first,
// then every other member, until the grace period ends or kill is closed, at
// which point it kills the group. It reports whether the leader had to be
// killed.
func stop(g *group, exited <-chan struct{}, grace time.Duration, kill <-chan struct{}) bool {
	g.terminate()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-exited:
	case <-timer.C:
		g.kill()
		return true
	case <-kill:
		g.kill()
		return true
	}
	// The leader has exited; members cleaning up get the rest of the grace.
	// Run kills whatever is left afterwards.
	poll := time.NewTimer(pollMin)
	defer poll.Stop()
	for d := pollMin; g.alive(); d = min(2*d, pollMax) {
		poll.Reset(d)
		select {
		case <-timer.C:
			return false
		case <-kill:
			return false
		case <-poll.C:
		}
	}
	return false
}

// awaitGone waits until the group has no live member, at most timeout.
func (g *group) awaitGone(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for d := pollMin; g.alive() && time.Now().Before(deadline); d = min(2*d, pollMax) {
		time.Sleep(d)
	}
}

// command resolves the shell and the working directory of s into a command
// that is ready to start, but for its output streams.
func command(s *exec.Spec) (*osexec.Cmd, error) {
	name, args, err := shellCommand(s.Shell, s.Script)
	if err != nil {
		return nil, &exec.StartError{Backend: "local", Task: s.Task, Msg: err.Error()}
	}
	dir, err := workDir(s.Workspace, s.Dir)
	if err != nil {
		return nil, &exec.StartError{Backend: "local", Task: s.Task, Msg: err.Error()}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, &exec.StartError{Backend: "local", Task: s.Task, Msg: "working directory", Err: err}
	}
	if !fi.IsDir() {
		return nil, &exec.StartError{Backend: "local", Task: s.Task, Msg: fmt.Sprintf("working directory %s is not a directory", dir)}
	}
	path, err := lookShell(name)
	if err != nil {
		return nil, &exec.StartError{Backend: "local", Task: s.Task, Msg: fmt.Sprintf("shell %q", name), Err: err}
	}
	cmd := osexec.Command(path, args...)
	cmd.Args[0] = name // the script's $0 stays what the shell was called
	cmd.Dir = dir
	// A nil Env would inherit this process's environment; an empty one does not.
	cmd.Env = append(make([]string, 0, len(s.Env)), s.Env...)
	prepare(cmd, name, s.Script)
	return cmd, nil
}

// devNull is the null device, opened once for reading and given to every
// task as its standard input; os/exec would open it again for each task.
// Nil if it cannot be opened, and then os/exec opens it and reports why.
var devNull = sync.OnceValue(func() *os.File {
	f, err := os.Open(os.DevNull)
	if err != nil {
		return nil
	}
	return f
})

// shellPaths caches the executable of each shell by name and PATH: looking
// the shell up for every task (a stat per PATH entry) was a tenth of a cold
// build's CPU time in rustypipe itself. lastShell is the newest lookup,
// which serves nearly every task without building the map's key.
var (
	shellPaths sync.Map // name + "\x00" + PATH → path
	lastShell  atomic.Pointer[shellPath]
)

type shellPath struct{ name, pathEnv, path string }

func lookShell(name string) (string, error) {
	pathEnv := os.Getenv("PATH")
	if l := lastShell.Load(); l != nil && l.name == name && l.pathEnv == pathEnv {
		return l.path, nil
	}
	key := name + "\x00" + pathEnv
	if p, ok := shellPaths.Load(key); ok {
		lastShell.Store(&shellPath{name, pathEnv, p.(string)})
		return p.(string), nil
	}
	p, err := osexec.LookPath(name)
	if err != nil {
		return "", err
	}
	shellPaths.Store(key, p)
	lastShell.Store(&shellPath{name, pathEnv, p})
	return p, nil
}

// shellCommand returns the program and arguments that run script with shell,
// "" meaning the platform's default shell.
func shellCommand(shell, script string) (name string, args []string, err error) {
	if shell == "" {
		shell = defaultShell
	}
	argv, ok := exec.ShellArgv(shell, script)
	if !ok {
		return "", nil, fmt.Errorf("unknown shell %q (want sh, bash, pwsh, powershell or cmd)", shell)
	}
	return argv[0], argv[1:], nil
}

// workDir returns the absolute working directory for dir ("/"-separated,
// relative to workspace), refusing one outside the workspace.
func workDir(workspace, dir string) (string, error) {
	if !filepath.IsAbs(workspace) {
		return "", fmt.Errorf("workspace %q is not an absolute path", workspace)
	}
	if dir == "" {
		return filepath.Clean(workspace), nil
	}
	rel := filepath.FromSlash(dir)
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("working directory %q is not inside the workspace", dir)
	}
	return filepath.Join(workspace, rel), nil
}

// outputs copies a task's stdout and stderr from pipes to the Spec's
// writers as the task produces them, 32 KiB at a time.
type outputs struct {
	childStdout, childStderr *os.File // the task's ends, closed here after Start
	streams                  []*stream
}

type stream struct {
	name string
	r    *os.File
	dst  io.Writer
	werr error // the first error from dst; read after done is closed
	done chan struct{}
}

func newOutputs(stdout, stderr io.Writer) (*outputs, error) {
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	o := &outputs{}
	r, w, err := outputPipe()
	if err != nil {
		return nil, err
	}
	o.childStdout = w
	o.streams = append(o.streams, &stream{name: "stdout", r: r, dst: stdout, done: make(chan struct{})})
	if sameWriter(stdout, stderr) {
		// One pipe for both, as os/exec does, so that a writer that is not
		// safe for concurrent use is never written to concurrently.
		o.childStderr = w
		o.streams[0].name = "output"
		return o, nil
	}
	r, w, err = outputPipe()
	if err != nil {
		o.abort()
		return nil, err
	}
	o.childStderr = w
	o.streams = append(o.streams, &stream{name: "stderr", r: r, dst: stderr, done: make(chan struct{})})
	return o, nil
}

// sameWriter reports whether a and b are the same writer, without panicking
// on writers of uncomparable types.
func sameWriter(a, b io.Writer) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}

// abort closes every pipe of outputs that never started.
func (o *outputs) abort() {
	o.closeChildEnds()
	for _, st := range o.streams {
		st.r.Close()
	}
}

func (o *outputs) closeChildEnds() {
	o.childStdout.Close()
	if o.childStderr != nil && o.childStderr != o.childStdout {
		o.childStderr.Close()
	}
}

// start closes this process's copies of the task's ends, so that the pipes
// reach end of file when the task's processes are gone, and starts copying.
func (o *outputs) start() {
	o.closeChildEnds()
	for _, st := range o.streams {
		go st.copy()
	}
}

// copyBufs holds the streams' copy buffers. io.Copy from an *os.File
// allocates a fresh 32 KiB buffer for every stream: 64 KiB of garbage per
// task, most of a cold build's garbage collections.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// onlyReader hides the pipe's WriteTo, so that io.CopyBuffer uses the
// buffer it is given.
type onlyReader struct{ io.Reader }

func (st *stream) copy() {
	defer close(st.done)
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	_, _ = io.CopyBuffer(writerFunc(func(p []byte) (int, error) {
		n, err := st.dst.Write(p)
		if err != nil && st.werr == nil {
			st.werr = fmt.Errorf("write %s: %w", st.name, err)
		}
		return n, err
	}), onlyReader{st.r}, *buf)
	// A task that keeps writing after its writer failed gets EPIPE, not a
	// full pipe to block on forever.
	st.r.Close()
}

// wait waits for the copies to reach end of file, at most timeout, then
// closes the pipes, which ends the copies. It returns the first write error.
func (o *outputs) wait(timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for _, st := range o.streams {
		select {
		case <-st.done:
		case <-timer.C:
			for _, st := range o.streams {
				st.r.Close()
			}
			<-st.done
		}
	}
	var err error
	for _, st := range o.streams {
		<-st.done
		if err == nil {
			err = st.werr
		}
	}
	return err
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// waitOnce runs a blocking wait once and keeps its result, for platforms
// where learning that the leader exited also reaps it.
type waitOnce struct {
	once  sync.Once
	state *os.ProcessState
	err   error
}

func (w *waitOnce) wait(cmd *osexec.Cmd) (*os.ProcessState, error) {
	w.once.Do(func() {
		w.err = cmd.Wait()
		w.state = cmd.ProcessState
	})
	return w.state, w.err
}
