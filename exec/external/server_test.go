package external_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rustypipe/rustypipe/exec"
	"github.com/rustypipe/rustypipe/exec/external"
)

// wire is a message as the protocol document describes it, decoded
// independently of the package's own type.
type wire struct {
	Type         string     `json:"type"`
	ID           string     `json:"id"`
	Protocol     int        `json:"protocol"`
	Name         string     `json:"name"`
	Capabilities []string   `json:"capabilities"`
	Data         []byte     `json:"data"`
	ExitCode     *int       `json:"exit_code"`
	Signal       string     `json:"signal"`
	Started      *time.Time `json:"started"`
	Finished     *time.Time `json:"finished"`
	Error        string     `json:"error"`
	ErrorKind    string     `json:"error_kind"`
	Identity     string     `json:"identity"`
	Message      string     `json:"message"`
}

// session runs Serve in this process over pipes.
type session struct {
	t    *testing.T
	in   *io.PipeWriter
	out  *bufio.Scanner
	done chan error
}

func newSession(t *testing.T) *session {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	s := &session{t: t, in: inW, out: bufio.NewScanner(outR), done: make(chan error, 1)}
	s.out.Buffer(nil, 1<<20)
	go func() {
		err := external.Serve(context.Background(), inR, outW, newTestBackend)
		outW.Close()
		s.done <- err
	}()
	t.Cleanup(func() { inW.Close(); io.Copy(io.Discard, outR) })
	return s
}

func (s *session) send(line string) {
	s.t.Helper()
	if _, err := io.WriteString(s.in, line+"\n"); err != nil {
		s.t.Fatalf("send %s: %v", line, err)
	}
}

func (s *session) recv() *wire {
	s.t.Helper()
	if !s.out.Scan() {
		s.t.Fatalf("helper output ended: %v", s.out.Err())
	}
	var m wire
	if err := json.Unmarshal(s.out.Bytes(), &m); err != nil {
		s.t.Fatalf("helper line %q: %v", s.out.Text(), err)
	}
	return &m
}

func (s *session) wait() error {
	select {
	case err := <-s.done:
		return err
	case <-time.After(deadlock):
		s.t.Fatal("Serve did not return")
		return nil
	}
}

func TestServeSession(t *testing.T) {
	s := newSession(t)
	s.send(`{"type":"hello","protocol":1,"config":{"namespace":"ci"}}`)
	h := s.recv()
	if h.Type != "hello" || h.Protocol != 1 || h.Name == "" || strings.Join(h.Capabilities, ",") != "identity" {
		t.Fatalf("hello reply = %+v", h)
	}
	s.send(`{"type":"future-message","id":"x"}`) // ignored
	s.send(`{"type":"run","id":"r1","task":"spew","script":"#!helper:spew 100000","workspace":"/ws","output_dir":"/tmp/x"}`)
	var stdout, stderr []byte
	for {
		m := s.recv()
		if m.ID != "r1" {
			t.Fatalf("message %+v, want one of run r1", m)
		}
		if m.Type == "result" {
			if m.ExitCode == nil || *m.ExitCode != 0 || m.Started == nil || m.Finished == nil || m.Error != "" {
				t.Errorf("result = %+v, want exit_code 0, started, finished, no error", m)
			}
			break
		}
		if len(m.Data) > external.MaxChunk {
			t.Errorf("%s chunk of %d bytes, want at most %d", m.Type, len(m.Data), external.MaxChunk)
		}
		switch m.Type {
		case "stdout":
			stdout = append(stdout, m.Data...)
		case "stderr":
			stderr = append(stderr, m.Data...)
		default:
			t.Fatalf("unexpected %+v", m)
		}
	}
	if string(stdout) != string(pattern(100000, 1)) || string(stderr) != string(pattern(50000, 2)) {
		t.Errorf("got %d stdout and %d stderr bytes, want the patterns of 100000 and 50000", len(stdout), len(stderr))
	}

	s.send(`{"type":"identity","id":"i1","image":"img"}`)
	if m := s.recv(); m.Type != "identity" || m.ID != "i1" || m.Identity != "test img #1" {
		t.Errorf("identity reply = %+v", m)
	}
	s.send(`{"type":"run","id":"r2","script":"#!helper:nonsense"}`)
	if m := s.recv(); m.Type != "result" || m.ErrorKind != "start" || m.Started != nil || !strings.Contains(m.Error, "unknown helper script") {
		t.Errorf("result of a bad run = %+v, want error_kind start, no started", m)
	}
	s.send(`{"type":"cancel","id":"nobody"}`) // ignored
	s.send(`{"type":"shutdown"}`)
	if err := s.wait(); err != nil {
		t.Errorf("Serve after shutdown = %v, want nil", err)
	}
}

func TestServeCancel(t *testing.T) {
	s := newSession(t)
	s.send(`{"type":"hello","protocol":1}`)
	s.recv()
	s.send(`{"type":"run","id":"7","script":"#!helper:stoppable","grace_ms":3600000}`)
	if m := s.recv(); m.Type != "stdout" {
		t.Fatalf("first message %+v, want the pid on stdout", m)
	}
	s.send(`{"type":"cancel","id":"7"}`)
	s.send(`{"type":"cancel","id":"7","kill":true}`)
	m := s.recv()
	if m.Type != "result" || m.ErrorKind != "cancelled" || m.Signal != "killed" || !strings.Contains(m.Error, "cancelled by the client") {
		t.Errorf("result = %+v, want a killed, cancelled run", m)
	}
}

func TestServeTimeout(t *testing.T) {
	s := newSession(t)
	s.send(`{"type":"hello","protocol":1}`)
	s.recv()
	s.send(`{"type":"run","id":"t","script":"#!helper:block","timeout_ms":1}`)
	for {
		m := s.recv()
		if m.Type == "result" {
			if m.ErrorKind != "cancelled" || !strings.Contains(m.Error, "timeout_ms elapsed") {
				t.Errorf("result = %+v, want cancelled by timeout_ms", m)
			}
			break
		}
	}
}

// TestServeEndOfInput checks that a client that goes away without a
// shutdown gets its runs cancelled and Serve returns.
func TestServeEndOfInput(t *testing.T) {
	s := newSession(t)
	s.send(`{"type":"hello","protocol":1}`)
	s.recv()
	s.send(`{"type":"run","id":"r","script":"#!helper:block"}`)
	if m := s.recv(); m.Type != "stdout" {
		t.Fatalf("first message %+v, want the pid on stdout", m)
	}
	s.in.Close()
	if m := s.recv(); m.Type != "result" || m.ErrorKind != "cancelled" || !strings.Contains(m.Error, "shutting down") {
		t.Errorf("result = %+v, want the run cancelled at shutdown", m)
	}
	if err := s.wait(); err != nil {
		t.Errorf("Serve at end of input = %v, want nil", err)
	}
}

func TestServeHandshakeErrors(t *testing.T) {
	tests := []struct {
		name, hello, want string
		protocol          bool // the error wraps ErrProtocol
	}{
		{"version", `{"type":"hello","protocol":2}`, "client speaks protocol version 2, this helper speaks 1", true},
		{"no version", `{"type":"hello"}`, "client speaks protocol version 0", true},
		{"not hello", `{"type":"run","id":"1"}`, `expected a hello message, got "run"`, true},
		{"not json", `hello`, "line 1", true},
		{"refused", `{"type":"hello","protocol":1,"config":{"namespace":["a"]}}`, `config key "namespace": want a string`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession(t)
			s.send(tc.hello)
			if m := s.recv(); m.Type != "error" || !strings.Contains(m.Message, tc.want) {
				t.Errorf("reply = %+v, want an error saying %q", m, tc.want)
			}
			err := s.wait()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Serve = %v, want an error saying %q", err, tc.want)
			}
			if got := errors.Is(err, external.ErrProtocol); got != tc.protocol {
				t.Errorf("errors.Is(err, ErrProtocol) = %v, want %v", got, tc.protocol)
			}
		})
	}
}

// The test helper's backend is a Handler with the identity ability.
var (
	_ external.Handler = (*testBackend)(nil)
	_ exec.Identifier  = (*testBackend)(nil)
)
