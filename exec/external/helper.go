package external

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rustypipe/rustypipe/exec"
)

const (
	// tailLines and tailLineMax bound the helper's stderr that errors
	// quote: the last 10 lines, each cut at 400 bytes, enough for a Go
	// panic's message and first frames.
	tailLines   = 10
	tailLineMax = 400

	// stderrDrain bounds how long the reading of the helper's stdout and
	// stderr goes on after it exited, should a child of the helper still
	// hold them open.
	stderrDrain = time.Second
)

// helper is one running helper process.
type helper struct {
	b      *Backend
	cmd    *osexec.Cmd
	w      *lineWriter // the helper's stdin
	stdin  io.Closer
	stdout *os.File // read end of the helper's stdout
	tail   *stderrTail

	hello chan *message   // the answer to the handshake, once
	caps  map[string]bool // capabilities from the hello; read-only once started

	mu    sync.Mutex
	calls map[string]*call // in-flight requests by id

	stopping atomic.Bool   // Close sent the shutdown message
	killed   chan struct{} // closed by kill: the reader stops waiting for calls
	killOnce sync.Once
	exited   chan struct{} // closed when the process has been waited for
	waitErr  error         // cmd.Wait's error; read after exited
	readDone chan struct{} // closed when the reader stopped reading
	dead     chan struct{} // closed when the helper is gone for good
	err      error         // why it is gone; read after dead
}

// call is one in-flight request: the reader queues its messages in msgs
// until gone is closed.
type call struct {
	msgs chan *message
	gone chan struct{}
}

// start starts a helper process and shakes hands with it. fatal reports an
// error that starting again would repeat: no command, no executable, a
// configuration the helper refused or a protocol it does not speak.
func (b *Backend) start(ctx context.Context) (h *helper, fatal bool, err error) {
	name := b.opts.Name
	if len(b.opts.Command) == 0 {
		return nil, true, fmt.Errorf("external backend %q: no command", name)
	}
	if _, err := json.Marshal(b.opts.Config); err != nil {
		return nil, true, fmt.Errorf("external backend %q: configuration: %w", name, err)
	}
	path, err := lookPath(b.opts.Command[0])
	if err != nil {
		return nil, true, fmt.Errorf("external backend %q: start helper: %w", name, err)
	}
	cmd := osexec.Command(path, b.opts.Command[1:]...)
	cmd.Env = b.opts.Env
	detach(cmd)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, false, fmt.Errorf("external backend %q: start helper: %w", name, err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		stdin.Close()
		return nil, false, fmt.Errorf("external backend %q: start helper: %w", name, err)
	}
	h = &helper{
		b: b, cmd: cmd,
		w: &lineWriter{w: stdin}, stdin: stdin, stdout: pr,
		hello:    make(chan *message, 1),
		calls:    make(map[string]*call),
		exited:   make(chan struct{}),
		killed:   make(chan struct{}),
		readDone: make(chan struct{}),
		dead:     make(chan struct{}),
	}
	h.tail = &stderrTail{log: b.log}
	cmd.Stdout = pw
	cmd.Stderr = h.tail
	cmd.WaitDelay = stderrDrain
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, true, fmt.Errorf("external backend %q: start helper %s: %w", name, path, err)
	}
	pw.Close()
	go h.wait()
	go h.read()

	fail := func(fatal bool, err error) (*helper, bool, error) {
		h.kill()
		<-h.dead
		return nil, fatal, err
	}
	if err := h.w.send(&message{Type: typeHello, Protocol: ProtocolVersion, Config: b.opts.Config}); err != nil {
		h.awaitDeath()
		return nil, false, h.err
	}
	answer := func(m *message) (*helper, bool, error) {
		if m.Type == typeError {
			return fail(true, fmt.Errorf("external backend %q: helper refused: %s", name, m.Message))
		}
		if m.Protocol != ProtocolVersion {
			return fail(true, fmt.Errorf("external backend %q: %w: helper %s speaks protocol version %d, this rustypipe speaks %d; install matching versions",
				name, ErrProtocol, path, m.Protocol, ProtocolVersion))
		}
		h.caps = make(map[string]bool, len(m.Capabilities))
		for _, c := range m.Capabilities {
			h.caps[c] = true
		}
		return h, false, nil
	}
	timer := time.NewTimer(helloTimeout)
	defer timer.Stop()
	select {
	case m := <-h.hello:
		return answer(m)
	case <-h.dead:
		// A helper that refuses exits at once: its answer may be waiting.
		select {
		case m := <-h.hello:
			if m.Type == typeError {
				return answer(m)
			}
		default:
		}
		return nil, false, h.err
	case <-ctx.Done():
		return fail(false, fmt.Errorf("external backend %q: start helper: %w", name, context.Cause(ctx)))
	case <-timer.C:
		return fail(false, fmt.Errorf("external backend %q: helper %s did not answer the handshake within %v", name, path, helloTimeout))
	}
}

// wait waits for the process to exit. Should the reader still be reading
// a moment later (a child of the helper holds its stdout), it closes the
// pipe to end the reader.
func (h *helper) wait() {
	h.waitErr = h.cmd.Wait()
	close(h.exited)
	t := time.NewTimer(stderrDrain)
	defer t.Stop()
	select {
	case <-h.readDone:
	case <-t.C:
		h.stdout.Close()
	}
}

// read reads the helper's messages and hands them to their calls until
// the stream ends, then waits for the process and marks the helper dead.
func (h *helper) read() {
	lr := newLineReader(h.stdout)
	greeted := false
	var rerr error
	for rerr == nil {
		m, err := lr.next()
		if err != nil {
			rerr = err
			break
		}
		if !greeted {
			switch m.Type {
			case typeLog:
				h.b.log(m.Message)
			case typeHello, typeError:
				greeted = true
				h.hello <- m
			default:
				rerr = fmt.Errorf("%w: %s message before the hello", ErrProtocol, m.Type)
			}
			continue
		}
		switch m.Type {
		case typeStdout, typeStderr, typeResult, typeIdentity:
			h.deliver(m)
		case typeError:
			if m.ID != "" {
				h.deliver(m)
			} else {
				h.b.log("error: " + m.Message)
			}
		case typeLog:
			h.b.log(m.Message)
		}
		// Other types are ignored: a newer helper may send them.
	}
	close(h.readDone)
	protocolErr := errors.Is(rerr, ErrProtocol)
	if protocolErr {
		h.kill()
	} else {
		t := time.NewTimer(exitWait)
		select {
		case <-h.exited:
		case <-t.C:
			h.kill()
		}
		t.Stop()
	}
	<-h.exited
	h.stdout.Close()

	status := "exit status 0"
	if h.waitErr != nil {
		status = h.waitErr.Error()
	}
	name := h.b.opts.Name
	switch {
	case protocolErr:
		h.err = &helperError{
			msg:  fmt.Sprintf("external backend %q: %v; helper stopped (%s)%s", name, rerr, status, h.tail.String()),
			errs: []error{rerr, exec.ErrUnavailable},
		}
	case h.stopping.Load() && h.waitErr == nil:
		h.err = fmt.Errorf("external backend %q: %w after shutdown", name, ErrHelperExited)
	default:
		if rerr != io.EOF && !errors.Is(rerr, os.ErrClosed) {
			status += fmt.Sprintf(" (reading its stdout: %v)", rerr)
		}
		h.err = &helperError{
			msg:  fmt.Sprintf("external backend %q: %v: %s%s", name, ErrHelperExited, status, h.tail.String()),
			errs: []error{ErrHelperExited, exec.ErrUnavailable},
		}
	}
	close(h.dead)
}

// helperError is the end of a helper that was not asked to end: it wraps
// ErrHelperExited or the protocol error, and exec.ErrUnavailable, so that
// the build tries the attempt again (with a new helper).
type helperError struct {
	msg  string
	errs []error
}

func (e *helperError) Error() string   { return e.msg }
func (e *helperError) Unwrap() []error { return e.errs }

// deliver queues m for the call it names. Messages of calls that are gone
// are dropped, and so are all messages once the helper is being killed, so
// that a run whose writer is stuck cannot keep the reader from ending.
func (h *helper) deliver(m *message) {
	h.mu.Lock()
	c := h.calls[m.ID]
	h.mu.Unlock()
	if c == nil {
		return
	}
	select {
	case c.msgs <- m:
	case <-c.gone:
	case <-h.killed:
	}
}

func (h *helper) register(id string, queue int) *call {
	c := &call{msgs: make(chan *message, queue), gone: make(chan struct{})}
	h.mu.Lock()
	h.calls[id] = c
	h.mu.Unlock()
	return c
}

func (h *helper) unregister(id string, c *call) {
	h.mu.Lock()
	delete(h.calls, id)
	h.mu.Unlock()
	close(c.gone)
}

// awaitDeath is for a helper whose stdin is broken, which can take no more
// requests: it waits for it to exit, at most exitWait, then kills it.
func (h *helper) awaitDeath() {
	t := time.NewTimer(exitWait)
	defer t.Stop()
	select {
	case <-h.dead:
		return
	case <-t.C:
		h.kill()
	}
	<-h.dead
}

func (h *helper) kill() {
	h.killOnce.Do(func() { close(h.killed) })
	_ = h.cmd.Process.Kill()
}

// shutdown asks the helper to exit and kills it after grace.
func (h *helper) shutdown(grace time.Duration) error {
	select {
	case <-h.dead:
		return nil
	default:
	}
	h.stopping.Store(true)
	_ = h.w.send(&message{Type: typeShutdown})
	h.stdin.Close()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-h.dead:
	case <-t.C:
		h.kill()
		<-h.dead
		return fmt.Errorf("external backend %q: helper did not exit within %v of shutdown; killed%s", h.b.opts.Name, grace, h.tail.String())
	}
	if h.waitErr != nil {
		return h.err
	}
	return nil
}

// stderrTail receives the helper's stderr: it passes each line to log and
// keeps the last tailLines for error messages. Safe for concurrent use.
type stderrTail struct {
	log     func(string)
	mu      sync.Mutex
	partial []byte
	lines   []string
}

func (t *stderrTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			t.partial = append(t.partial, p...)
			if len(t.partial) > 4*tailLineMax {
				t.line(t.partial)
				t.partial = t.partial[:0]
			}
			break
		}
		t.partial = append(t.partial, p[:i]...)
		t.line(t.partial)
		t.partial = t.partial[:0]
		p = p[i+1:]
	}
	return n, nil
}

// line records one line; t.mu is held.
func (t *stderrTail) line(b []byte) {
	s := strings.TrimRight(string(b), "\r")
	t.log("stderr: " + s)
	if len(s) > tailLineMax {
		s = s[:tailLineMax] + "..."
	}
	if len(t.lines) == tailLines {
		copy(t.lines, t.lines[1:])
		t.lines = t.lines[:tailLines-1]
	}
	t.lines = append(t.lines, s)
}

// String returns "" or the last lines, for the end of an error message.
func (t *stderrTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := t.lines
	if len(t.partial) > 0 {
		lines = append(lines[:len(lines):len(lines)], string(t.partial))
	}
	if len(lines) == 0 {
		return ""
	}
	return "; its stderr ended with:\n\t" + strings.Join(lines, "\n\t")
}
