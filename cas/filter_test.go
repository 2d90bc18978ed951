package cas

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	badger "github.com/dgraph-io/badger/v4"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A filter never loses a key, rejects most others, and survives its
// encoding; damage makes it invalid.
func TestKeyFilter(t *testing.T) {
	f := newKeyFilter(1000)
	for i := range 1000 {
		f.add(sum([]byte{byte(i), byte(i >> 8), 'k'}))
	}
	m := manifestStamp{1, 2, 3}
	g, gm, ok := decodeKeyFilter(f.encode(m))
	if !ok || gm != m || g.count != 1000 {
		t.Fatalf("decode: ok=%v stamp=%v count=%d", ok, gm, g.count)
	}
	passed := 0
	for i := range 1000 {
		if !g.mayContain(sum([]byte{byte(i), byte(i >> 8), 'k'})) {
			t.Fatalf("key %d added but not contained", i)
		}
		if g.mayContain(sum([]byte{byte(i), byte(i >> 8), 'x'})) {
			passed++
		}
	}
	if passed > 50 { // about 1% expected
		t.Errorf("%d of 1000 absent keys passed the filter", passed)
	}
	data := f.encode(m)
	for i := range data {
		bad := append([]byte(nil), data...)
		bad[i] ^= 1
		if _, _, ok := decodeKeyFilter(bad); ok {
			t.Fatalf("a filter with byte %d flipped decoded", i)
		}
	}
	for i := range data {
		if _, _, ok := decodeKeyFilter(data[:i]); ok {
			t.Fatalf("a filter cut to %d bytes decoded", i)
		}
	}
}

func filterPath(dir string) string { return filepath.Join(dir, versionDir, filterName) }

// A Lookup store with a valid filter answers a miss without opening the
// index, and still finds what the index and the journal hold.
func TestLookupMissSkipsIndex(t *testing.T) {
	dir := newCache(t)
	w := openT(t, Options{Dir: dir})
	if _, err := os.Stat(filterPath(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("filter while a writer holds the store: %v, want none", err)
	}
	a := simpleAction(t, w, "a", []byte("out a"), []byte("file a"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filterPath(dir)); err != nil {
		t.Fatalf("no filter after a writer closed: %v", err)
	}

	l := openT(t, Options{Dir: dir, Lookup: true})
	if _, err := l.GetAction(context.Background(), sum([]byte("absent"))); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lookup of an absent key: %v, want ErrNotFound", err)
	}
	if l.db != nil {
		t.Fatal("a miss opened the index")
	}
	// A journal put of content put as builds put it (PutReader, which
	// does not look for the blob first) needs no index either.
	b := readerAction(t, l, "b", []byte("out b"), []byte("file b"))
	if l.db != nil {
		t.Fatal("a journal put opened the index")
	}
	checkAction(t, l, b, []byte("out b"), []byte("file b"))
	checkAction(t, l, a, []byte("out a"), []byte("file a")) // opens it
	if l.db == nil {
		t.Fatal("a hit in the index did not open it")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// The journal's entries join the filter when a writer merges them.
	openT(t, Options{Dir: dir}).Close()
	l = openT(t, Options{Dir: dir, Lookup: true})
	checkAction(t, l, b, []byte("out b"), []byte("file b"))
	l.Close()
}

// A filter is not trusted once the index changed without it (a writer
// killed before closing leaves none; a writer that knows no filter changes
// the MANIFEST), and a writer rebuilds it from the index.
func TestKeyFilterInvalidation(t *testing.T) {
	dir := newCache(t)
	w := openT(t, Options{Dir: dir})
	a := simpleAction(t, w, "a", []byte("out a"), []byte("file a"))
	w.Close()

	// The index changed behind the filter's back.
	manifest := filepath.Join(dir, versionDir, indexName, "MANIFEST")
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(manifest, later, later); err != nil {
		t.Fatal(err)
	}
	l := openT(t, Options{Dir: dir, Lookup: true})
	if l.lazyDB || l.db == nil {
		t.Fatal("a filter written for another state of the index was trusted")
	}
	checkAction(t, l, a, []byte("out a"), []byte("file a"))
	l.Close()

	// A writer that finds no valid filter rebuilds it from the index.
	if err := os.Remove(filterPath(dir)); err != nil {
		t.Fatal(err)
	}
	openT(t, Options{Dir: dir}).Close()
	f, ok := (&Store{root: filepath.Join(dir, versionDir)}).readKeyFilter()
	if !ok || !f.mayContain(a.Key) {
		t.Fatalf("rebuilt filter: ok=%v, holds a: %v", ok, ok && f.mayContain(a.Key))
	}
}

// readerAction is simpleAction through PutReader.
func readerAction(t *testing.T, s *Store, name string, stdout, file []byte) *ActionResult {
	t.Helper()
	put := func(b []byte) BlobRef {
		ref, err := s.PutReader(context.Background(), bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		return ref
	}
	a := &ActionResult{Key: key(name), Task: name, Stdout: put(stdout), Stderr: EmptyBlob,
		Files: []OutputFile{{Path: "out/" + name, Mode: 0o644, Digest: put(file).Digest, Size: int64(len(file))}}}
	if err := s.PutAction(context.Background(), a); err != nil {
		t.Fatalf("PutAction(%s): %v", name, err)
	}
	return a
}

// A writable store answers lookups of keys it never stored from its key
// filter, without reading the index: for an index it made (an empty
// filter), and for one whose filter it took at Open. Keys it stores, or
// merges from the journal, are found.
func TestWriterFiltersMisses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openT(t, Options{Dir: dir})
	if s.filter == nil {
		t.Fatal("a writer on a new index has no key filter")
	}
	missing := key("missing")
	_, err := s.GetAction(ctx, missing)
	if !errors.Is(err, ErrNotFound) || err.Error() != fmt.Sprintf("cas: get action %s: %v", hexKey(missing), ErrNotFound) {
		t.Fatalf("GetAction of a missing key = %v", err)
	}
	simpleAction(t, s, "stored", []byte("o"), []byte("f"))
	if _, err := s.GetAction(ctx, key("stored")); err != nil {
		t.Fatalf("a stored key: %v", err)
	}
	// A key in the index that the store did not put is not looked for:
	// the filter answers. Its record is a copy of a good one, which a
	// lookup finds once the key is in the filter.
	copyRecord := func(to [32]byte) {
		t.Helper()
		err := s.db.Update(func(txn *badger.Txn) error {
			item, err := txn.Get(actionKey(key("stored")))
			if err != nil {
				return err
			}
			val, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			return txn.Set(actionKey(to), val)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	known := key("known")
	copyRecord(known)
	s.filterAdd(known)
	if _, err := s.GetAction(ctx, known); err != nil {
		t.Fatalf("the copied record is not a good one: %v", err)
	}
	hidden := key("hidden")
	copyRecord(hidden)
	if _, err := s.GetAction(ctx, hidden); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a key the filter does not hold was read from the index: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopened, the writer takes the filter written at Close.
	s = openT(t, Options{Dir: dir})
	if s.filter == nil {
		t.Fatal("the reopened writer has no key filter")
	}
	if _, err := s.GetAction(ctx, key("stored")); err != nil {
		t.Fatalf("a stored key after reopening: %v", err)
	}
	if _, err := s.GetAction(ctx, missing); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a missing key after reopening: %v", err)
	}
}
