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
// task printing gigabytes does not grow rustypipe's memory. Content that
// spills is digested as it goes; content held in memory is digested when
// asked (a streaming Digester holds 8 KiB of buffer, and most streams are a
// few bytes or empty). Not safe for concurrent use; os/exec writes each
// stream from one goroutine.
type capture struct {
	path string // the spill file, created only when needed
	buf  []byte
	f    *os.File
	d    *hashing.Digester // once the content spills
	n    int64
	err  error
}

func newCapture(path string) *capture { return &capture{path: path} }

func (c *capture) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	c.n += int64(len(p))
	if c.f == nil && len(c.buf)+len(p) <= captureMem {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	if c.d != nil {
		c.d.Write(p)
	}
	if c.f == nil {
		f, err := os.Create(c.path)
		if err != nil {
			c.err = fmt.Errorf("build: capture %s: %w", c.path, err)
			return 0, c.err
		}
		c.f = f
		c.d = hashing.NewDigester()
		c.d.Write(c.buf)
		c.d.Write(p)
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
	c.buf, c.n, c.err, c.d = c.buf[:0], 0, nil, nil
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

func (c *capture) digest() hashing.Digest {
	if c.d == nil {
		return hashing.DigestBytes(c.buf)
	}
	return c.d.Sum()
}
func (c *capture) size() int64 { return c.n }

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
