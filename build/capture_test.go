package build

import (
	"bytes"
	"io"
	"path/filepath"
	"testing"

	"github.com/rustypipe/rustypipe/hashing"
)

// TestCapture checks a capture's digest, size and content against what was
// written, for content held in memory, content that spills to its file at
// and across captureMem, and after a reset.
func TestCapture(t *testing.T) {
	chunk := func(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }
	cases := map[string][][]byte{
		"empty":             nil,
		"small":             {[]byte("7\n")},
		"exactly in memory": {chunk(captureMem-1, 'a'), []byte("b")},
		"spills mid-write":  {chunk(captureMem-10, 'a'), chunk(20, 'b'), chunk(5, 'c')},
		"spills at once":    {chunk(captureMem+1, 'a')},
	}
	for name, writes := range cases {
		t.Run(name, func(t *testing.T) {
			c := newCapture(filepath.Join(t.TempDir(), "capture"))
			for round := range 2 { // the second round follows a reset
				var all []byte
				for _, w := range writes {
					if _, err := c.Write(w); err != nil {
						t.Fatal(err)
					}
					all = append(all, w...)
				}
				if err := c.close(); err != nil {
					t.Fatal(err)
				}
				if got, want := c.digest(), hashing.DigestBytes(all); got != want {
					t.Errorf("round %d: digest %s, want %s", round, got, want)
				}
				if c.size() != int64(len(all)) {
					t.Errorf("round %d: size %d, want %d", round, c.size(), len(all))
				}
				rc, err := c.open()
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !bytes.Equal(got, all) {
					t.Errorf("round %d: content differs (%d bytes read, want %d), err %v", round, len(got), len(all), err)
				}
				c.reset()
			}
		})
	}
}
