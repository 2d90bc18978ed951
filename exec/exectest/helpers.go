package exectest

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/rustypipe/rustypipe/exec"
)

// Buffer is a bytes.Buffer safe for concurrent use, for a task's stdout or
// stderr that a test reads while Run writes it. The zero value is ready to
// use.
type Buffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	line  chan struct{} // made by FirstLine, closed at the first newline
	lined bool          // a newline was written
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.lined && bytes.IndexByte(p, '\n') >= 0 {
		s.lined = true
		if s.line != nil {
			close(s.line)
		}
	}
	return s.b.Write(p)
}

// FirstLine returns a channel closed once a newline has been written: the
// task's first line of output has arrived.
func (s *Buffer) FirstLine() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.line == nil {
		s.line = make(chan struct{})
		if s.lined {
			close(s.line)
		}
	}
	return s.line
}

// String returns what was written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Bytes returns a copy of what was written so far.
func (s *Buffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// Logger returns a backend's log function that writes to the test log
// until the test ends, and drops messages after that (a backend may still
// log from its goroutines while it closes, and t.Log then panics).
func Logger(t *testing.T) func(msg string) {
	var mu sync.Mutex
	done := false
	t.Cleanup(func() { mu.Lock(); done = true; mu.Unlock() })
	return func(msg string) {
		mu.Lock()
		defer mu.Unlock()
		if !done {
			t.Log(msg)
		}
	}
}

// built is the executable GoBuild made, once per test binary.
var built struct {
	once sync.Once
	path string
	err  error
}

// GoBuild builds the main package under test (the test's working
// directory) once per test binary, as name, and returns the executable's
// path: for tests of helper executables, run as rustypipe runs them. Call
// RemoveBuilt from TestMain when the tests are done.
func GoBuild(t testing.TB, name string) string {
	t.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", name+"-test-")
		if err != nil {
			built.err = err
			return
		}
		built.path = filepath.Join(dir, name)
		out, err := osexec.Command("go", "build", "-o", built.path, ".").CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

// RemoveBuilt removes what GoBuild built.
func RemoveBuilt() {
	if built.path != "" {
		os.RemoveAll(filepath.Dir(built.path))
	}
}

// Outcome is what a Run returned.
type Outcome struct {
	Res *exec.Result
	Err error
}

// Start runs s on b in a goroutine and delivers the outcome on the returned
// channel, which is buffered: the goroutine never blocks, whether or not
// the test reads it.
func Start(ctx context.Context, b exec.Backend, s *exec.Spec) <-chan Outcome {
	done := make(chan Outcome, 1)
	go func() {
		res, err := b.Run(ctx, s)
		done <- Outcome{res, err}
	}()
	return done
}

// TarEntries calls fn with each entry of the tar archive r and its
// content, failing the test on a read error.
func TarEntries(t testing.TB, r io.Reader, fn func(h *tar.Header, body []byte)) {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		fn(h, body)
	}
}
