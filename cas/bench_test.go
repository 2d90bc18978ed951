package cas

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/zeebo/blake3"
)

// benchStore returns a directory holding a small cache: 100 actions, each
// with an inline stdout and a 40 KiB file.
func benchStore(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	s := openT(b, Options{Dir: dir})
	for i := range 100 {
		simpleAction(b, s, fmt.Sprint(i), []byte(fmt.Sprint("output ", i)), content(uint64(i), 40<<10))
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkOpenClose is the fixed cost of a session that only reads.
func BenchmarkOpenClose(b *testing.B) {
	dir := benchStore(b)
	ctx := context.Background()
	for b.Loop() {
		s, err := Open(ctx, Options{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenGetClose is a lookup session: open, one hit, close.
func BenchmarkOpenGetClose(b *testing.B) {
	dir := benchStore(b)
	ctx := context.Background()
	k := key("7")
	for b.Loop() {
		s, err := Open(ctx, Options{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.GetAction(ctx, k); err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenPutClose is a store session: open, store a small stdout and
// an action, close (which flushes the index's memtable to a table).
func BenchmarkOpenPutClose(b *testing.B) { benchPutSession(b, Options{}) }

// BenchmarkLookupPutClose is the same session through a Lookup store: the
// put is one append to the journal. A writable open merges the journal
// whenever it fills, as a build's writable session would.
func BenchmarkLookupPutClose(b *testing.B) { benchPutSession(b, Options{Lookup: true}) }

// benchPutSession opens the store with o, stores a small stdout and an
// action, and closes it, in each iteration.
func benchPutSession(b *testing.B, o Options) {
	o.Dir = benchStore(b)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		s, err := Open(ctx, o)
		if err != nil {
			b.Fatal(err)
		}
		out := []byte(fmt.Sprint("bench output ", i))
		ref, err := s.PutReader(ctx, bytes.NewReader(out))
		if err != nil {
			b.Fatal(err)
		}
		err = s.PutAction(ctx, &ActionResult{Key: key(fmt.Sprint("bench", i)), Stdout: ref, Stderr: EmptyBlob})
		if errors.Is(err, ErrJournalFull) {
			s.Close()
			w, werr := Open(ctx, Options{Dir: o.Dir})
			if werr != nil {
				b.Fatal(werr)
			}
			w.Close()
			continue
		}
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkGetActionHit(b *testing.B) {
	s := openT(b, Options{Dir: benchStore(b)})
	ctx := context.Background()
	k := key("7")
	for b.Loop() {
		if _, err := s.GetAction(ctx, k); err != nil {
			b.Fatal(err)
		}
	}
}

// distinct returns data with i written into its first bytes, so that
// every iteration stores new content.
func distinct(data []byte, i int) []byte {
	binary.LittleEndian.PutUint64(data, uint64(i))
	return data
}

func BenchmarkPutSmallBlob(b *testing.B) { benchPutBlob(b, 1<<10) }

func BenchmarkPutBlob1MiB(b *testing.B) { benchPutBlob(b, 1<<20) }

// benchPutBlob stores new content of size bytes in each iteration.
func benchPutBlob(b *testing.B, size int) {
	s := openT(b, Options{Dir: b.TempDir()})
	ctx := context.Background()
	data := content(1, size)
	b.SetBytes(int64(len(data)))
	i := 0
	for b.Loop() {
		d := distinct(data, i)
		if err := s.PutBlob(ctx, sum(d), int64(len(d)), bytes.NewReader(d)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkOpenBlob1MiB(b *testing.B) {
	s := openT(b, Options{Dir: b.TempDir()})
	ctx := context.Background()
	data := content(1, 1<<20)
	ref := putT(b, s, data)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		rc, _, err := s.OpenBlob(ctx, ref.Digest)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
}

// BenchmarkOpenCloseReadOnly is a read-only session: badger opens without
// creating log files, and the lock is shared.
func BenchmarkOpenCloseReadOnly(b *testing.B) {
	dir := benchStore(b)
	ctx := context.Background()
	for b.Loop() {
		s, err := Open(ctx, Options{Dir: dir, ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLookupSession is a lookup the way a build does it between
// writes: open with Lookup, one hit, close.
func BenchmarkLookupSession(b *testing.B) {
	dir := benchStore(b)
	ctx := context.Background()
	k := key("7")
	for b.Loop() {
		s, err := Open(ctx, Options{Dir: dir, Lookup: true})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.GetAction(ctx, k); err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// typicalAction is a typical small task's action: one output file, stdout
// inline, a key preimage of ten records.
func typicalAction() *ActionResult {
	var pre strings.Builder
	pre.WriteString(`{"records":[`)
	for i := range 10 {
		if i > 0 {
			pre.WriteByte(',')
		}
		fmt.Fprintf(&pre, `{"label":"input","name":"in/%d.txt","value":"0644 %064x"}`, i, i)
	}
	pre.WriteString(`]}`)
	out := []byte("7\n")
	return &ActionResult{Task: "t7", Preimage: []byte(pre.String()),
		Stdout: BlobRef{Digest: blake3.Sum256(out), Size: 2},
		Files:  []OutputFile{{Path: "out/7.txt", Mode: 0o644, Digest: blake3.Sum256(out), Size: 2}}}
}

// BenchmarkEncodeAction encodes typicalAction's index record, by hand as
// rustypipe does, and with encoding/json for comparison.
func BenchmarkEncodeAction(b *testing.B) {
	a := typicalAction()
	b.Run("appendJSON", func(b *testing.B) {
		for b.Loop() {
			encodeAction(a)
		}
	})
	b.Run("Marshal", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(newRecord(a)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkJournalLine encodes typicalAction's journal line.
func BenchmarkJournalLine(b *testing.B) {
	a := typicalAction()
	out := []byte("7\n")
	rec := encodeAction(a)
	blobs := map[[32]byte][]byte{blake3.Sum256(out): out}
	for b.Loop() {
		journalLineFor(a.Key, rec, blobs)
	}
}

// BenchmarkPutActionInline is one task's result in a cold build: an action
// with a key preimage and a small output file, stored with its content
// into a store that stays open (writable, or Lookup for the journal).
func BenchmarkPutActionInline(b *testing.B) {
	for _, o := range []Options{{}, {Lookup: true}} {
		name := "writable"
		if o.Lookup {
			name = "lookup"
		}
		b.Run(name, func(b *testing.B) {
			o.Dir = benchStore(b)
			s := openT(b, o)
			ctx := context.Background()
			pre := []byte(strings.Repeat(`{"command":"echo 1 > out/1.txt","shell":"sh"}`, 6))
			i := 0
			for b.Loop() {
				data := []byte(fmt.Sprintf("%d\n", i))
				a := &ActionResult{Key: key(fmt.Sprint("put", i)), Stdout: EmptyBlob, Stderr: EmptyBlob, Preimage: pre,
					Files: []OutputFile{{Path: fmt.Sprintf("out/%d.txt", i), Mode: 0o644, Digest: blake3.Sum256(data), Size: int64(len(data))}}}
				err := s.PutActionInline(ctx, a, [][]byte{data})
				if errors.Is(err, ErrJournalFull) {
					s.Close()
					openT(b, Options{Dir: o.Dir}).Close()
					s = openT(b, o)
					continue
				}
				if err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
