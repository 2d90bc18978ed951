package ssh

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	gossh "golang.org/x/crypto/ssh"
)

// session is one SSH "session" channel running one command. It is used
// directly rather than through ssh.Session so that the exit status is seen
// as soon as the server sends it, while the streams may still be open:
// background processes of a finished task hold them until they are killed.
type session struct {
	ch     gossh.Channel
	exited chan struct{} // closed on exit-status or exit-signal, or when the channel closes
	closed chan struct{} // closed when the channel is closed

	mu     sync.Mutex
	status exitStatus
}

// exitStatus is how the remote command ended, as the server reported it.
type exitStatus struct {
	known  bool   // the server sent exit-status or exit-signal
	code   int    // the exit status; -1 for a signal
	signal string // the signal name without "SIG" ("TERM"), if any
}

// startSession opens a session channel on c and runs cmd in it. Errors are
// connection failures.
func startSession(c *gossh.Client, cmd string) (*session, error) {
	ch, reqs, err := c.OpenChannel("session", nil)
	if err != nil {
		return nil, fmt.Errorf("open session: %w", err)
	}
	s := &session{ch: ch, exited: make(chan struct{}), closed: make(chan struct{})}
	go s.serve(reqs)
	ok, err := ch.SendRequest("exec", true, gossh.Marshal(struct{ Command string }{cmd}))
	if err == nil && !ok {
		err = fmt.Errorf("the server refused to run a command")
	}
	if err != nil {
		ch.Close()
		return nil, fmt.Errorf("start command: %w", err)
	}
	return s, nil
}

// serve answers the channel's requests and records the exit status.
func (s *session) serve(reqs <-chan *gossh.Request) {
	var once sync.Once
	exited := func() { once.Do(func() { close(s.exited) }) }
	for r := range reqs {
		switch r.Type {
		case "exit-status":
			if len(r.Payload) >= 4 {
				s.mu.Lock()
				s.status = exitStatus{known: true, code: int(binary.BigEndian.Uint32(r.Payload))}
				s.mu.Unlock()
				exited()
			}
		case "exit-signal":
			var msg struct {
				Signal     string
				CoreDumped bool
				Error      string
				Lang       string
			}
			if gossh.Unmarshal(r.Payload, &msg) == nil {
				s.mu.Lock()
				s.status = exitStatus{known: true, code: -1, signal: msg.Signal}
				s.mu.Unlock()
				exited()
			}
		}
		if r.WantReply {
			r.Reply(false, nil)
		}
	}
	exited()
	close(s.closed)
}

func (s *session) exitStatus() exitStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// signal asks the server to signal the command's process. Many servers
// ignore it; the backend signals process groups through a second session
// instead and uses this only when it knows no group.
func (s *session) signal(sig string) {
	s.ch.SendRequest("signal", false, gossh.Marshal(struct{ Signal string }{sig}))
}

// maxCapture bounds the stderr kept for error messages and the stdout of
// short commands.
const maxCapture = 64 << 10

// capture keeps the first maxCapture bytes written to it. Safe for use by
// one writer and, after it is done, readers.
type capture struct{ b bytes.Buffer }

func (c *capture) Write(p []byte) (int, error) {
	if room := maxCapture - c.b.Len(); room > 0 {
		c.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// control runs a short sh script of the backend's own on c and returns its
// stdout and exit status. The command is followed by a line that prints
// its status after a random marker, and control returns as soon as that
// line arrives, without waiting for the server to close the session:
// OpenSSH closes a session only about 100 ms after its command exits.
// Errors are session failures; a non-zero status is not one, and stderr is
// then returned too. ctx bounds the whole.
func control(ctx context.Context, c *gossh.Client, cmd string) (out string, status int, errOut string, err error) {
	token := randomHex(8) + "-status"
	s, err := startSession(c, shCommand(cmd+"\n"+`printf '\n%s %s\n' `+token+` "$?"`))
	if err != nil {
		return "", 0, "", err
	}
	defer s.ch.Close()
	s.ch.CloseWrite()
	stop := context.AfterFunc(ctx, func() { s.ch.Close() })
	defer stop()
	var stderr capture
	errDone := make(chan struct{})
	go func() { io.Copy(&stderr, s.ch.Stderr()); close(errDone) }()
	before, status, err := readStatus(s.ch, token)
	if ctx.Err() != nil {
		return "", 0, "", context.Cause(ctx)
	}
	if err != nil || status != 0 {
		// Wait for the whole of stderr: this is for an error message.
		<-errDone
	}
	if err != nil {
		return "", 0, "", fmt.Errorf("%q: %w: %s", cmd, err, strings.TrimSpace(stderr.b.String()))
	}
	if status != 0 {
		return string(before), status, strings.TrimSpace(stderr.b.String()), nil
	}
	return string(before), 0, "", nil
}

// controlTimeout runs control under a timeout of its own, for steps that
// must happen even when the task's context is done.
func controlWithTimeout(c *gossh.Client, cmd string) (string, int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
	defer cancel()
	return control(ctx, c, cmd)
}

// maxBeforeStatus bounds what readStatus keeps before the status line.
const maxBeforeStatus = 1 << 20

// readStatus reads r up to the line "\n<marker> <status>\n" and returns
// what came before it and the status. It fails when r ends first.
func readStatus(r io.Reader, marker string) ([]byte, int, error) {
	m := []byte("\n" + marker + " ")
	var buf []byte
	chunk := make([]byte, 32<<10)
	for {
		n, err := r.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if i := bytes.Index(buf, m); i >= 0 {
			rest := buf[i+len(m):]
			if j := bytes.IndexByte(rest, '\n'); j >= 0 {
				st, perr := strconv.Atoi(string(rest[:j]))
				if perr != nil {
					return nil, 0, fmt.Errorf("bad status line %q", rest[:j])
				}
				return buf[:i], st, nil
			}
		} else if len(buf) > maxBeforeStatus {
			return nil, 0, fmt.Errorf("more than %d bytes before the status line", maxBeforeStatus)
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, 0, fmt.Errorf("the command ended before its status line: %w", err)
		}
	}
}

// signalNames maps SSH signal names (RFC 4254 section 6.10) to the
// descriptions Go's syscall.Signal.String gives on Linux, which the local
// backend reports in Result.Signal.
var signalNames = map[string]string{
	"ABRT": "aborted",
	"ALRM": "alarm clock",
	"FPE":  "floating point exception",
	"HUP":  "hangup",
	"ILL":  "illegal instruction",
	"INT":  "interrupt",
	"KILL": "killed",
	"PIPE": "broken pipe",
	"QUIT": "quit",
	"SEGV": "segmentation fault",
	"TERM": "terminated",
	"USR1": "user defined signal 1",
	"USR2": "user defined signal 2",
}

func signalDescription(name string) string {
	if d, ok := signalNames[name]; ok {
		return d
	}
	return "signal " + name
}
