package build

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/rustypipe/rustypipe/hashing"
)

// captureMem is how much of a stream a capture keeps in memory before it
// spills to its file. Most tasks print little; creating two files per task
// for their streams was a large part of a cold build's time.
const captureMem = 64 << 10

// capture records one stream of a task's final attempt (its stdout or
// stderr) for {{ task.output }}, the cache and the run records: in memory
// while small, in a file in the run directory beyond captureMem, so that a
// task printing gigabytes does not grow rustypipe's memory. It digests what
// it records as it goes. Not safe for concurrent use; os/exec writes each
// stream from one goroutine.
type capture struct {
	path string // the spill file, created only when needed
	buf  []byte
	f    *os.File
	d    *hashing.Digester
	n    int64
	err  error
}

func newCapture(path string) *capture { return &capture{path: path, d: hashing.NewDigester()} }

func (c *capture) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	c.d.Write(p)
	c.n += int64(len(p))
	if c.f == nil && len(c.buf)+len(p) <= captureMem {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	if c.f == nil {
		f, err := os.Create(c.path)
		if err != nil {
			c.err = fmt.Errorf("build: capture %s: %w", c.path, err)
			return 0, c.err
		}
		c.f = f
		if _, err := f.Write(c.buf); err != nil {
			c.err = err
			return 0, err
		}
		c.buf = nil
	}
	if _, err := c.f.Write(p); err != nil {
		c.err = err
		return 0, err
	}
	return len(p), nil
}

// reset forgets what was recorded, for the next attempt.
func (c *capture) reset() {
	if c.f != nil {
		c.f.Close()
		c.f = nil
		os.Remove(c.path)
	}
	c.buf, c.n, c.err = c.buf[:0], 0, nil
	c.d.Reset()
}

// close ends recording; the capture stays readable.
func (c *capture) close() error {
	if c.f != nil {
		err := c.f.Close()
		c.f = nil
		return err
	}
	return nil
}

func (c *capture) digest() hashing.Digest { return c.d.Sum() }
func (c *capture) size() int64            { return c.n }

// small returns the whole content when it is held in memory.
func (c *capture) small() ([]byte, bool) {
	if c.n > int64(len(c.buf)) {
		return nil, false
	}
	return c.buf, true
}

// open reads the recorded content from the start.
func (c *capture) open() (io.ReadCloser, error) {
	if b, ok := c.small(); ok {
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	return os.Open(c.path)
}
