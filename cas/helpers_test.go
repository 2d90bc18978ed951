package cas

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/zeebo/blake3"
)

// fakeClock is a settable clock for ageing tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openT(t testing.TB, o Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func sum(b []byte) [32]byte { return blake3.Sum256(b) }

// content returns n deterministic pseudo-random bytes for seed.
func content(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func putT(t testing.TB, s *Store, data []byte) BlobRef {
	t.Helper()
	ref := BlobRef{Digest: sum(data), Size: int64(len(data))}
	if err := s.PutBlob(context.Background(), ref.Digest, ref.Size, bytes.NewReader(data)); err != nil {
		t.Fatalf("PutBlob(%d bytes): %v", len(data), err)
	}
	return ref
}

func readBlob(s *Store, d [32]byte) ([]byte, error) {
	rc, _, err := s.OpenBlob(context.Background(), d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func key(name string) [32]byte { return sum([]byte("key:" + name)) }

// simpleAction stores stdout and one output file and returns the action.
func simpleAction(t testing.TB, s *Store, name string, stdout, file []byte) *ActionResult {
	t.Helper()
	a := &ActionResult{
		Key:    key(name),
		Task:   name,
		Stdout: putT(t, s, stdout),
		Stderr: EmptyBlob,
		Files: []OutputFile{{
			Path: "out/" + name, Mode: 0o644,
			Digest: sum(file), Size: int64(len(file)),
		}},
	}
	putT(t, s, file)
	if err := s.PutAction(context.Background(), a); err != nil {
		t.Fatalf("PutAction(%s): %v", name, err)
	}
	return a
}

func listKeys(t testing.TB, s *Store) map[[32]byte]*ActionResult {
	t.Helper()
	m := map[[32]byte]*ActionResult{}
	if err := s.List(context.Background(), func(a *ActionResult) error {
		m[a.Key] = a
		return nil
	}); err != nil {
		t.Fatalf("List: %v", err)
	}
	return m
}

func tmpEntries(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, versionDir, tmpName))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// flipByte inverts one byte in the middle of the file at path.
func flipByte(t testing.TB, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func countFiles(t testing.TB, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

func fmtKey(k [32]byte) string { return fmt.Sprintf("%x", k[:4]) }
