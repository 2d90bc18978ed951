package external

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rustypipe/rustypipe/exec"
)

// Handler is what a helper serves: an exec.Backend, which may also
// implement exec.Identifier to answer identity requests. Serve calls Run
// concurrently, once per run request, and Close once after the last Run
// has returned.
type Handler interface {
	exec.Backend
}

var (
	// errCancelled is the cause of a run stopped by a cancel message.
	errCancelled = errors.New("cancelled by the client")
	// errTimeout is the cause of a run stopped by its timeout_ms.
	errTimeout = errors.New("timeout_ms elapsed")
	// errShutdown is the cause of runs stopped by shutdown or end of input.
	errShutdown = errors.New("helper shutting down")
)

// Serve speaks the protocol on in and out, the helper's side: it reads the
// client's hello, builds the backend with newBackend from the hello's
// config (an error is sent to the client as the refusal, and returned),
// answers the hello, and then serves run, cancel and identity requests
// concurrently until a shutdown message, the end of in, or ctx is done.
// Then it cancels the runs still in flight (each with its grace period),
// waits for their results to be sent, closes the backend and returns.
//
// Each run request becomes one Backend.Run with a Spec whose OutputDir is
// the request's output_dir, Grace its grace_ms, and whose ctx carries its
// timeout_ms; a cancel message cancels that ctx, and one with kill set also
// closes Spec.Kill. The task's output is sent as it is written, at most
// MaxChunk bytes per message, before the result. Writes to out are
// serialized, a whole message at a time; a write error makes later writes
// fail, so the runs' output writers fail and their tasks stop.
//
// Serve returns nil after a shutdown message or the end of in, ctx's cause
// when ctx is done, and an error wrapping ErrProtocol for a bad handshake,
// a protocol version other than ProtocolVersion or an unreadable line (the
// client is told first). A goroutine reading in may outlive Serve until in
// returns from its pending Read; a helper's main exits anyway.
func Serve(ctx context.Context, in io.Reader, out io.Writer, newBackend func(config map[string]any) (exec.Backend, error)) error {
	w := &lineWriter{w: out}
	msgs := make(chan *message)
	readErr := make(chan error, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		lr := newLineReader(in)
		for {
			m, err := lr.next()
			if err != nil {
				readErr <- err
				return
			}
			select {
			case msgs <- m:
			case <-stop:
				return
			}
		}
	}()

	var hello *message
	select {
	case hello = <-msgs:
	case err := <-readErr:
		if err == io.EOF {
			return fmt.Errorf("external: %w: input ended before the hello", ErrProtocol)
		}
		w.send(&message{Type: typeError, Message: err.Error()})
		return fmt.Errorf("external: read hello: %w", err)
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	if hello.Type != typeHello {
		err := fmt.Errorf("%w: expected a hello message, got %q", ErrProtocol, hello.Type)
		w.send(&message{Type: typeError, Message: err.Error()})
		return fmt.Errorf("external: %w", err)
	}
	if hello.Protocol != ProtocolVersion {
		err := fmt.Errorf("%w: client speaks protocol version %d, this helper speaks %d; install matching versions", ErrProtocol, hello.Protocol, ProtocolVersion)
		w.send(&message{Type: typeError, Message: err.Error()})
		return fmt.Errorf("external: %w", err)
	}
	b, err := newBackend(hello.Config)
	if err != nil {
		w.send(&message{Type: typeError, Message: err.Error()})
		return fmt.Errorf("external: configure backend: %w", err)
	}
	reply := &message{Type: typeHello, Protocol: ProtocolVersion, Name: programName()}
	if _, ok := b.(exec.Identifier); ok {
		reply.Capabilities = []string{CapIdentity}
	}
	if err := w.send(reply); err != nil {
		b.Close()
		return fmt.Errorf("external: send hello: %w", err)
	}

	s := &server{b: b, w: w, runs: make(map[string]*serverRun)}
	var result error
loop:
	for {
		select {
		case m := <-msgs:
			switch m.Type {
			case typeRun:
				s.run(ctx, m)
			case typeCancel:
				s.cancel(m.ID, m.Kill, errCancelled)
			case typeIdentity:
				s.identity(ctx, m)
			case typeShutdown:
				break loop
			}
			// Other types are ignored: a newer client may send them.
		case err := <-readErr:
			if err != io.EOF {
				w.send(&message{Type: typeError, Message: err.Error()})
				result = fmt.Errorf("external: read request: %w", err)
			}
			break loop
		case <-ctx.Done():
			result = context.Cause(ctx)
			break loop
		}
	}
	s.mu.Lock()
	for id := range s.runs {
		s.runs[id].cancel(errShutdown)
	}
	s.mu.Unlock()
	s.wg.Wait()
	if err := b.Close(); err != nil && result == nil {
		result = fmt.Errorf("external: close backend: %w", err)
	}
	return result
}

// server holds the state of one Serve.
type server struct {
	b  exec.Backend
	w  *lineWriter
	wg sync.WaitGroup // run and identity goroutines

	mu   sync.Mutex
	runs map[string]*serverRun
}

type serverRun struct {
	cancel   context.CancelCauseFunc
	kill     chan struct{}
	killOnce sync.Once
}

// run starts the run that m requests.
func (s *server) run(ctx context.Context, m *message) {
	if m.ID == "" {
		s.w.send(&message{Type: typeLog, Message: "ignored a run request without an id"})
		return
	}
	s.mu.Lock()
	if _, dup := s.runs[m.ID]; dup {
		s.mu.Unlock()
		s.w.send(&message{Type: typeLog, Message: fmt.Sprintf("ignored a run request with the id %q of a run in flight", m.ID)})
		return
	}
	rctx, cancel := context.WithCancelCause(ctx)
	r := &serverRun{cancel: cancel, kill: make(chan struct{})}
	s.runs[m.ID] = r
	s.mu.Unlock()

	s.wg.Go(func() {
		defer cancel(nil)
		runCtx := rctx
		if m.TimeoutMS > 0 {
			var stop context.CancelFunc
			runCtx, stop = context.WithTimeoutCause(rctx, time.Duration(m.TimeoutMS)*time.Millisecond, errTimeout)
			defer stop()
		}
		sp := &exec.Spec{
			Task: m.Task, RunID: m.RunID,
			Script: m.Script, Shell: m.Shell, Env: m.Env,
			Workspace: m.Workspace, Dir: m.Dir,
			Inputs: m.Inputs, Outputs: m.Outputs, Image: m.Image, OutputDir: m.OutputDir,
			Stdout: &chunkWriter{w: s.w, id: m.ID, typ: typeStdout},
			Stderr: &chunkWriter{w: s.w, id: m.ID, typ: typeStderr},
			Grace:  time.Duration(m.GraceMS) * time.Millisecond,
			Kill:   r.kill,
		}
		if sp.Env == nil {
			sp.Env = []string{}
		}
		res, err := s.b.Run(runCtx, sp)
		s.mu.Lock()
		delete(s.runs, m.ID)
		s.mu.Unlock()
		s.w.send(resultMessage(m.ID, res, err, runCtx))
	})
}

// resultMessage describes Run's return values.
func resultMessage(id string, res *exec.Result, err error, ctx context.Context) *message {
	m := &message{Type: typeResult, ID: id}
	if res != nil {
		code, started, finished := res.ExitCode, res.Started, res.Finished
		m.ExitCode, m.Started, m.Finished, m.Signal = &code, &started, &finished, res.Signal
	}
	if err != nil {
		m.Error = err.Error()
		switch {
		case errors.Is(err, exec.ErrStart):
			m.ErrorKind = kindStart
		case ctx.Err() != nil:
			m.ErrorKind = kindCancelled
		default:
			m.ErrorKind = kindBackend
		}
	}
	return m
}

// cancel stops the run id, if it is in flight; with kill it also ends the
// run's grace period.
func (s *server) cancel(id string, kill bool, cause error) {
	s.mu.Lock()
	r := s.runs[id]
	s.mu.Unlock()
	if r == nil {
		return
	}
	r.cancel(cause)
	if kill {
		r.killOnce.Do(func() { close(r.kill) })
	}
}

// identity answers the identity request m.
func (s *server) identity(ctx context.Context, m *message) {
	s.wg.Go(func() {
		reply := &message{Type: typeIdentity, ID: m.ID}
		if ider, ok := s.b.(exec.Identifier); !ok {
			reply.Error = "this helper does not answer identity requests"
		} else if v, err := ider.Identity(ctx, &exec.Spec{Task: m.Task, Workspace: m.Workspace, Image: m.Image}); err != nil {
			reply.Error = err.Error()
		} else {
			reply.Identity = v
		}
		s.w.send(reply)
	})
}

// chunkWriter sends what a task writes as stdout or stderr messages of at
// most MaxChunk bytes each.
type chunkWriter struct {
	w   *lineWriter
	id  string
	typ string
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), MaxChunk)
		if err := c.w.send(&message{Type: c.typ, ID: c.id, Data: p[:k]}); err != nil {
			return n, err
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

// programName is the helper's name for its hello: its executable's base
// name without an extension.
func programName() string {
	if len(os.Args) == 0 {
		return "helper"
	}
	name := filepath.Base(os.Args[0])
	return strings.TrimSuffix(name, filepath.Ext(name))
}
