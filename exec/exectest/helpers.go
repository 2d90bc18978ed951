package exectest

import (
	"bytes"
	"sync"
	"testing"
)

// Buffer is a bytes.Buffer safe for concurrent use, for a task's stdout or
// stderr that a test reads while Run writes it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
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
