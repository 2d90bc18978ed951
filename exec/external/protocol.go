package external

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// ProtocolVersion is the version of the protocol that this package speaks,
// sent in both hello messages. A change that an old peer would misread
// bumps it; new optional fields and message types do not, since both sides
// ignore what they do not know.
const ProtocolVersion = 1

// CapIdentity is the capability a helper announces in its hello when it
// answers identity requests.
const CapIdentity = "identity"

// Message types, the "type" field of every line.
const (
	typeHello    = "hello"
	typeError    = "error"
	typeRun      = "run"
	typeStdout   = "stdout"
	typeStderr   = "stderr"
	typeResult   = "result"
	typeCancel   = "cancel"
	typeIdentity = "identity"
	typeLog      = "log"
	typeShutdown = "shutdown"
)

// Values of a result's error_kind.
const (
	kindStart     = "start"     // the task never ran (exec.ErrStart)
	kindCancelled = "cancelled" // stopped by a cancel message or timeout_ms
	kindBackend   = "backend"   // any other failure of the backend
)

const (
	// MaxChunk is the most bytes of task output that one stdout or stderr
	// message carries. 32 KiB is the size local's pipes are read with, so a
	// chunk is one read; its base64 line stays under 44 KB.
	MaxChunk = 32 << 10

	// maxLine bounds one message line in either direction. A run request
	// holds the task's environment and its input list, which for a large
	// project can reach megabytes; 64 MiB is far above that and still
	// stops a peer that never sends a newline from using all memory.
	maxLine = 64 << 20
)

// ErrProtocol is wrapped by errors about a peer that does not speak this
// protocol: a version mismatch, a line that is not a JSON message, a
// message out of order.
var ErrProtocol = errors.New("protocol error")

// message is every message of the protocol, one JSON object per line. The
// fields a type uses are listed in docs/backend-protocol.md; empty fields
// are left out when encoding and read as their zero values when absent.
type message struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`

	// hello
	Protocol     int            `json:"protocol,omitempty"`
	Config       map[string]any `json:"config,omitempty"`
	Name         string         `json:"name,omitempty"`
	Capabilities []string       `json:"capabilities,omitempty"`

	// run (Task, Workspace and Image also in identity requests)
	Task      string   `json:"task,omitempty"`
	RunID     string   `json:"run_id,omitempty"`
	Script    string   `json:"script,omitempty"`
	Shell     string   `json:"shell,omitempty"`
	Env       []string `json:"env,omitempty"`
	Workspace string   `json:"workspace,omitempty"`
	Dir       string   `json:"dir,omitempty"`
	Inputs    []string `json:"inputs,omitempty"`
	Outputs   []string `json:"outputs,omitempty"`
	OutputDir string   `json:"output_dir,omitempty"`
	TimeoutMS int64    `json:"timeout_ms,omitempty"`
	GraceMS   int64    `json:"grace_ms,omitempty"`
	Image     string   `json:"image,omitempty"`

	// stdout, stderr: base64 in JSON
	Data []byte `json:"data,omitempty"`

	// cancel
	Kill bool `json:"kill,omitempty"`

	// result; ExitCode and Started are pointers because 0 and "absent"
	// differ: a result without started means the task never ran.
	ExitCode  *int       `json:"exit_code,omitempty"`
	Signal    string     `json:"signal,omitempty"`
	Started   *time.Time `json:"started,omitempty"`
	Finished  *time.Time `json:"finished,omitempty"`
	Error     string     `json:"error,omitempty"`
	ErrorKind string     `json:"error_kind,omitempty"`

	// identity reply
	Identity string `json:"identity,omitempty"`

	// log, error
	Message string `json:"message,omitempty"`
}

// lineReader reads one message per line.
type lineReader struct {
	r    *bufio.Reader
	line int // lines read so far, for messages
	buf  []byte
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// next returns the next message. Empty lines are skipped and a trailing
// "\r" is ignored. At the end of the stream it returns io.EOF, or an error
// wrapping io.ErrUnexpectedEOF when the last line has no newline: a peer
// that died while writing it. A line that is too long or not a JSON object
// with a type returns an error wrapping ErrProtocol.
func (lr *lineReader) next() (*message, error) {
	for {
		raw, err := lr.readLine()
		if err != nil {
			if err == io.EOF && len(raw) > 0 {
				return nil, fmt.Errorf("last line cut off (%s): %w", excerpt(raw), io.ErrUnexpectedEOF)
			}
			return nil, err
		}
		if len(raw) == 0 {
			continue
		}
		lr.line++
		var m message
		if jerr := json.Unmarshal(raw, &m); jerr != nil {
			return nil, fmt.Errorf("%w: line %d (%s): %v", ErrProtocol, lr.line, excerpt(raw), jerr)
		}
		if m.Type == "" {
			return nil, fmt.Errorf("%w: line %d (%s): no message type", ErrProtocol, lr.line, excerpt(raw))
		}
		return &m, nil
	}
}

// readLine returns the next line without its line ending. The slice is
// valid until the next call. A read error comes with whatever was read of
// an unterminated line.
func (lr *lineReader) readLine() ([]byte, error) {
	b, err := lr.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		lr.buf = append(lr.buf[:0], b...)
		for err == bufio.ErrBufferFull {
			if len(lr.buf) > maxLine {
				return nil, fmt.Errorf("%w: line %d is longer than %d bytes", ErrProtocol, lr.line+1, maxLine)
			}
			b, err = lr.r.ReadSlice('\n')
			lr.buf = append(lr.buf, b...)
		}
		b = lr.buf
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(bytes.TrimSpace(b)) == 0 {
		b = nil
	}
	return b, err
}

// excerpt quotes the start of a bad line for an error message.
func excerpt(b []byte) string {
	const n = 80
	if len(b) > n {
		return fmt.Sprintf("%q...", b[:n])
	}
	return fmt.Sprintf("%q", b)
}

// lineWriter writes one message per line. Safe for concurrent use: each
// message is one Write call under a mutex, so lines never interleave.
// After a write fails, every later write fails with the same error.
type lineWriter struct {
	mu  sync.Mutex
	w   io.Writer
	err error
}

func (lw *lineWriter) send(m *message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s message: %w", m.Type, err)
	}
	b = append(b, '\n')
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if lw.err != nil {
		return lw.err
	}
	if _, err := lw.w.Write(b); err != nil {
		lw.err = err
		return err
	}
	return nil
}

// millis converts a duration to whole milliseconds, rounding up so that a
// peer's deadline is never earlier than ours.
func millis(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}
