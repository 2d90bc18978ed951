package external

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rustypipe/rustypipe/exec"
)

var (
	_ exec.Backend    = (*Backend)(nil)
	_ exec.Identifier = (*Backend)(nil)
)

// ErrHelperExited is wrapped by the error of every run and identity request
// that was in flight when the helper process exited or was stopped, and by
// Close's error when the helper did not exit cleanly. Unless Close had
// asked the helper to exit, such an error (and one about a helper that
// broke the protocol) also wraps exec.ErrUnavailable: the task did not
// fail, its backend did, and the next attempt gets a new helper.
var ErrHelperExited = errors.New("helper exited")

// Time limits of the client. They are variables so that tests can shorten
// them.
var (
	// helloTimeout bounds the handshake. A helper may load credentials or
	// contact its service before it answers; half a minute is far above
	// that and still ends a helper that never answers.
	helloTimeout = 30 * time.Second

	// stopMargin is how long Run waits for a result beyond the grace period
	// once it has asked the helper to stop a task, and after a kill. It
	// covers the helper's own clean-up after SIGKILL: the local backend
	// takes up to 6 s in the worst case, deleting a pod a few seconds.
	stopMargin = 15 * time.Second

	// closeGrace is how long Close waits for the helper to exit after the
	// shutdown message before it kills it.
	closeGrace = 10 * time.Second
)

const (
	// runQueue is how many messages of one run wait for its Run to take
	// them: 64 chunks of at most MaxChunk, 2 MiB. Only when a run's writers
	// fall that far behind does the reading of the helper's stdout wait for
	// them, which slows other runs but never blocks them for good.
	runQueue = 64

	// exitWait is how long a helper that closed its stdout gets to exit
	// before it is killed.
	exitWait = 2 * time.Second
)

// Options configures a Backend. The zero value of each field but Command
// is usable.
type Options struct {
	// Command is the helper executable and its arguments. A Command[0]
	// without a path separator is looked for beside the running executable
	// first (and beside the target of its symlink), so that a helper
	// installed next to rustypipe is found and speaks its protocol version,
	// then in PATH.
	Command []string

	// Config is the backend's options from the pipeline, sent in the
	// handshake. The helper validates them and may refuse them with a
	// message, which Run then returns. It must encode as JSON.
	Config map[string]any

	// Name is the backend's name in the pipeline, used in messages;
	// "" means "external".
	Name string

	// Env is the helper process's environment; nil means this process's.
	// Tasks do not inherit it: each gets exactly its Spec.Env.
	Env []string

	// Log receives the helper's log messages and the lines it writes to
	// its stderr, each prefixed with the backend's name. It may be called
	// from several goroutines at once, and must not block for long. nil
	// discards them.
	Log func(msg string)

	// TempDir is the directory in which Run creates the staging directory
	// of each run's outputs; "" means os.TempDir(). A directory on the
	// workspace's file system avoids copying outputs across devices.
	TempDir string
}

// Backend runs tasks through a helper process that speaks the protocol of
// docs/backend-protocol.md. It starts the helper on the first Run or
// Identity and sends every later request to the same process; if that
// process has exited, the next call starts a new one. Safe for concurrent
// use.
type Backend struct {
	opts   Options
	nextID atomic.Uint64

	mu     sync.Mutex // guards the fields below; held while a helper starts
	h      *helper
	closed bool
	fatal  error // a start failure that starting again cannot mend

	idMu sync.Mutex
	ids  map[string]string // successful identities by image
}

// New returns a Backend for the helper that o describes. It starts nothing
// and does no I/O; a missing or refusing helper is reported by the first
// Run or Identity.
func New(o Options) *Backend {
	if o.Name == "" {
		o.Name = "external"
	}
	return &Backend{opts: o}
}

// Run sends s to the helper and waits for its result, copying the task's
// output to s.Stdout and s.Stderr as it arrives, from the calling
// goroutine (so one writer given for both is never called concurrently).
// Before the request, Run creates an empty staging directory and names it
// in the request; after a result without error it restores the staged
// files that match s.Outputs into s.OutputRoot() through exec.Restorer,
// refusing anything else (then nothing is restored), and removes the
// staging directory in every case.
//
// When ctx is done Run sends a cancel message, and a second one with kill
// set when s.Kill is closed; it then waits for the result at most s.Grace
// (or, after the kill, nothing) plus a margin, and returns an error wrapping
// context.Cause(ctx). A ctx done before Run sends nothing.
//
// Errors: a helper that cannot be started, refuses the configuration or
// speaks another protocol version, and a task the helper could not start,
// wrap exec.ErrStart with a nil Result. A helper that exits while the task
// runs fails it with an error wrapping ErrHelperExited and
// exec.ErrUnavailable, quoting the last lines of the helper's stderr; the
// next call starts a new helper. A failing s.Stdout or s.Stderr drops the
// rest of that run's output and returns the Result with the write error.
// Safe for concurrent use; must not be called after Close.
func (b *Backend) Run(ctx context.Context, s *exec.Spec) (*exec.Result, error) {
	if ctx.Err() != nil {
		return nil, b.stopError(ctx, s.Task, "not started")
	}
	h, err := b.helper(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, b.stopError(ctx, s.Task, "not started")
		}
		return nil, &startError{err: err}
	}
	if b.opts.TempDir != "" {
		os.MkdirAll(b.opts.TempDir, 0o755) // a failure shows in MkdirTemp's error
	}
	staging, err := os.MkdirTemp(b.opts.TempDir, "rustypipe-outputs-")
	if err != nil {
		return nil, &startError{err: fmt.Errorf("external backend %q: task %q: create output staging directory: %w", b.opts.Name, s.Task, err)}
	}
	defer os.RemoveAll(staging)

	id := b.newID("r")
	c := h.register(id, runQueue)
	defer h.unregister(id, c)
	req := &message{
		Type: typeRun, ID: id,
		Task: s.Task, RunID: s.RunID,
		Script: s.Script, Shell: s.Shell, Env: s.Env,
		Workspace: s.Workspace, Dir: s.Dir,
		Inputs: s.Inputs, Outputs: s.Outputs, OutputDir: staging,
		GraceMS: millis(s.Grace), Image: s.Image,
	}
	if dl, ok := ctx.Deadline(); ok {
		req.TimeoutMS = max(1, millis(time.Until(dl)))
	}
	if err := h.w.send(req); err != nil {
		h.awaitDeath()
		return nil, h.err
	}
	return b.await(ctx, h, c, id, s, staging)
}

// await waits for the result of run id, copying its output meanwhile and
// passing on ctx and s.Kill as cancel messages.
func (b *Backend) await(ctx context.Context, h *helper, c *call, id string, s *exec.Spec, staging string) (*exec.Result, error) {
	var (
		done     = ctx.Done()
		kill     <-chan struct{}
		timer    *time.Timer
		expired  <-chan time.Time
		writeErr error
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case m := <-c.msgs:
			if r := takeMessage(m, s, &writeErr); r != nil {
				return b.finish(ctx, s, r, staging, writeErr)
			}
		case <-done:
			done = nil
			// Sent from a goroutine so that a helper that stopped reading
			// cannot keep Run from giving up. The order of the two cancels
			// does not matter: a kill also cancels.
			go h.w.send(&message{Type: typeCancel, ID: id})
			kill = s.Kill
			timer = time.NewTimer(s.Grace + stopMargin)
			expired = timer.C
		case <-kill:
			kill = nil
			go h.w.send(&message{Type: typeCancel, ID: id, Kill: true})
			timer.Reset(stopMargin)
		case <-expired:
			return nil, fmt.Errorf("external backend %q: task %q: no result from the helper within %v of stopping it; abandoned: %w",
				b.opts.Name, s.Task, s.Grace+stopMargin, context.Cause(ctx))
		case <-h.dead:
			// Everything the helper sent before it died is queued by now,
			// and only this goroutine receives from c.msgs.
			for len(c.msgs) > 0 {
				if r := takeMessage(<-c.msgs, s, &writeErr); r != nil {
					return b.finish(ctx, s, r, staging, writeErr)
				}
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w (while stopping: %w)", h.err, context.Cause(ctx))
			}
			return nil, h.err
		}
	}
}

// takeMessage handles one message of a run: output goes to the Spec's
// writers (after one fails, later output is dropped and the error kept in
// *writeErr); a result, or an error message naming the run, is returned.
func takeMessage(m *message, s *exec.Spec, writeErr *error) *message {
	switch m.Type {
	case typeStdout, typeStderr:
		if *writeErr != nil {
			return nil
		}
		w := s.Stdout
		if m.Type == typeStderr {
			w = s.Stderr
		}
		if _, err := w.Write(m.Data); err != nil {
			*writeErr = fmt.Errorf("write %s: %w", m.Type, err)
		}
		return nil
	case typeResult:
		return m
	case typeError:
		return &message{Type: typeResult, ID: m.ID, Error: m.Message, ErrorKind: kindBackend}
	}
	return nil
}

// finish turns a result message into Run's return values, restoring the
// staged outputs of a task that ended on its own.
func (b *Backend) finish(ctx context.Context, s *exec.Spec, r *message, staging string, writeErr error) (*exec.Result, error) {
	var res *exec.Result
	if r.Started != nil {
		res = &exec.Result{ExitCode: -1, Signal: r.Signal, Started: *r.Started, Finished: time.Now()}
		if r.ExitCode != nil {
			res.ExitCode = *r.ExitCode
		}
		if r.Finished != nil {
			res.Finished = *r.Finished
		}
	}
	if r.Error != "" {
		switch {
		case ctx.Err() != nil:
			return res, b.stopError(ctx, s.Task, "stopped")
		case r.ErrorKind == kindStart:
			return res, &startError{err: fmt.Errorf("external backend %q: task %q: %s", b.opts.Name, s.Task, r.Error)}
		case r.ErrorKind == kindCancelled:
			return res, fmt.Errorf("external backend %q: task %q: stopped by the helper: %s", b.opts.Name, s.Task, r.Error)
		}
		return res, fmt.Errorf("external backend %q: task %q: %s", b.opts.Name, s.Task, r.Error)
	}
	if res == nil {
		return nil, fmt.Errorf("external backend %q: task %q: %w: result with neither started nor error", b.opts.Name, s.Task, ErrProtocol)
	}
	if err := restoreOutputs(s, staging); err != nil {
		return res, fmt.Errorf("external backend %q: task %q: restore outputs: %w", b.opts.Name, s.Task, err)
	}
	if writeErr != nil {
		return res, fmt.Errorf("external backend %q: task %q: %w", b.opts.Name, s.Task, writeErr)
	}
	return res, nil
}

// Identity returns the identity of the environment a task with s.Image
// runs in, as the helper states it. It is asked of the helper once per
// image and kept; failures are not kept. A helper that does not announce
// the identity capability gets the identity of a backend without
// exec.Identifier, "local <os>/<arch>". It starts the helper as Run does.
// Safe for concurrent use.
func (b *Backend) Identity(ctx context.Context, s *exec.Spec) (string, error) {
	var image, task, workspace string
	if s != nil {
		image, task, workspace = s.Image, s.Task, s.Workspace
	}
	b.idMu.Lock()
	v, ok := b.ids[image]
	b.idMu.Unlock()
	if ok {
		return v, nil
	}
	if ctx.Err() != nil {
		return "", fmt.Errorf("external backend %q: identity: %w", b.opts.Name, context.Cause(ctx))
	}
	h, err := b.helper(ctx)
	if err != nil {
		return "", fmt.Errorf("identity: %w", err)
	}
	if h.caps[CapIdentity] {
		v, err = b.askIdentity(ctx, h, image, task, workspace)
		if err != nil {
			return "", err
		}
	} else {
		v = "local " + runtime.GOOS + "/" + runtime.GOARCH
	}
	b.idMu.Lock()
	if b.ids == nil {
		b.ids = make(map[string]string)
	}
	b.ids[image] = v
	b.idMu.Unlock()
	return v, nil
}

func (b *Backend) askIdentity(ctx context.Context, h *helper, image, task, workspace string) (string, error) {
	id := b.newID("i")
	c := h.register(id, 1)
	defer h.unregister(id, c)
	fail := func(err error) (string, error) {
		return "", fmt.Errorf("external backend %q: identity of image %q: %w", b.opts.Name, image, err)
	}
	if err := h.w.send(&message{Type: typeIdentity, ID: id, Image: image, Task: task, Workspace: workspace}); err != nil {
		h.awaitDeath()
		return "", fmt.Errorf("identity: %w", h.err)
	}
	select {
	case m := <-c.msgs:
		switch {
		case m.Type == typeError:
			return fail(errors.New(m.Message))
		case m.Type != typeIdentity:
			return fail(fmt.Errorf("%w: %s message in answer to an identity request", ErrProtocol, m.Type))
		case m.Error != "":
			return fail(errors.New(m.Error))
		case m.Identity == "":
			return fail(fmt.Errorf("%w: empty identity", ErrProtocol))
		}
		return m.Identity, nil
	case <-h.dead:
		return "", fmt.Errorf("identity: %w", h.err)
	case <-ctx.Done():
		return fail(context.Cause(ctx))
	}
}

// Close sends the helper the shutdown message and closes its stdin, waits
// for it to exit at most closeGrace, and kills it then. It returns an error
// when the helper had to be killed or exited with a failure. Runs still in
// flight are cancelled by the helper and return. Later Runs fail with an
// error wrapping exec.ErrStart. Close is idempotent and safe for concurrent
// use.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	h := b.h
	b.mu.Unlock()
	if h == nil {
		return nil
	}
	return h.shutdown(closeGrace)
}

// helper returns the running helper, starting one when there is none or
// the last one has exited.
func (b *Backend) helper(ctx context.Context) (*helper, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return nil, fmt.Errorf("external backend %q: backend is closed", b.opts.Name)
	case b.fatal != nil:
		return nil, b.fatal
	case b.h != nil:
		select {
		case <-b.h.dead:
		default:
			return b.h, nil
		}
	}
	h, fatal, err := b.start(ctx)
	if err != nil {
		if fatal {
			b.fatal = err
		}
		return nil, err
	}
	b.h = h
	return h, nil
}

func (b *Backend) newID(prefix string) string {
	return prefix + strconv.FormatUint(b.nextID.Add(1), 10)
}

func (b *Backend) log(msg string) {
	if b.opts.Log != nil {
		b.opts.Log(fmt.Sprintf("external backend %q: %s", b.opts.Name, msg))
	}
}

// stopError wraps context.Cause(ctx), and ctx.Err() when the cause is a
// different error, so that errors.Is works for both.
func (b *Backend) stopError(ctx context.Context, task, what string) error {
	cause, ctxErr := context.Cause(ctx), ctx.Err()
	if ctxErr != nil && !errors.Is(cause, ctxErr) {
		return fmt.Errorf("external backend %q: task %q %s: %w (%w)", b.opts.Name, task, what, cause, ctxErr)
	}
	return fmt.Errorf("external backend %q: task %q %s: %w", b.opts.Name, task, what, cause)
}

// startError is an attempt that never ran. It wraps exec.ErrStart and the
// underlying error without repeating ErrStart's text.
type startError struct{ err error }

func (e *startError) Error() string   { return e.err.Error() }
func (e *startError) Unwrap() []error { return []error{exec.ErrStart, e.err} }
