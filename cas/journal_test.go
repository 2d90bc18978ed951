package cas

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// newCache creates a cache directory with an index, as a first build does.
func newCache(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	openT(t, Options{Dir: dir}).Close()
	return dir
}

func journalPath(dir string) string { return filepath.Join(dir, versionDir, journalName) }

// checkAction asserts that s serves a with the content of its blobs.
func checkAction(t *testing.T, s *Store, a *ActionResult, stdout, file []byte) {
	t.Helper()
	got, err := s.GetAction(context.Background(), a.Key)
	if err != nil {
		t.Fatalf("GetAction(%s): %v", a.Task, err)
	}
	if got.Task != a.Task || len(got.Files) != 1 || got.Files[0].Digest != sum(file) {
		t.Fatalf("GetAction(%s) = %+v", a.Task, got)
	}
	for _, c := range []struct {
		d    [32]byte
		want []byte
	}{{got.Stdout.Digest, stdout}, {got.Files[0].Digest, file}} {
		b, err := readBlob(s, c.d)
		if err != nil || !bytes.Equal(b, c.want) {
			t.Fatalf("blob of %s: %d bytes, %v; want %d bytes", a.Task, len(b), err, len(c.want))
		}
	}
}

func TestLookupStorePutsThroughJournal(t *testing.T) {
	dir := newCache(t)
	stdout := []byte("hello\n")
	big := content(1, DefaultBlobInline+100) // a blob file
	l := openT(t, Options{Dir: dir, Lookup: true})
	a := simpleAction(t, l, "a", stdout, big)
	b := simpleAction(t, l, "b", []byte("small out"), []byte("small file"))
	checkAction(t, l, a, stdout, big) // the store sees its own appends
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(journalPath(dir)); err != nil {
		t.Fatalf("journal: %v", err)
	}

	// Other Lookup and read-only stores read the journal.
	l2 := openT(t, Options{Dir: dir, Lookup: true})
	checkAction(t, l2, b, []byte("small out"), []byte("small file"))
	l2.Close()
	ro := openT(t, Options{Dir: dir, ReadOnly: true})
	if keys := listKeys(t, ro); len(keys) != 2 || keys[a.Key] == nil || keys[b.Key] == nil {
		t.Fatalf("List on a read-only store: %d actions, want a and b", len(keys))
	}
	st, err := ro.Stats(context.Background())
	if err != nil || st.Actions != 2 {
		t.Fatalf("Stats: %+v, %v; want 2 actions", st, err)
	}
	ro.Close()

	// A writable Open merges the journal into the index and removes it.
	w := openT(t, Options{Dir: dir})
	if _, err := os.Stat(journalPath(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("journal after a writable open: %v, want it gone", err)
	}
	checkAction(t, w, a, stdout, big)
	checkAction(t, w, b, []byte("small out"), []byte("small file"))
	if keys := listKeys(t, w); len(keys) != 2 {
		t.Fatalf("List after merge: %d actions, want 2", len(keys))
	}
	w.Close()
}

func TestJournalDamageIsAMiss(t *testing.T) {
	dir := newCache(t)
	l := openT(t, Options{Dir: dir, Lookup: true})
	a := simpleAction(t, l, "a", []byte("out a"), []byte("file a"))
	l.Close()

	// Flip one byte of the action's JSON, then append a torn line (a full
	// disk cuts a write short) and a good line after it.
	data, err := os.ReadFile(journalPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte(`"task":"a"`))
	if i < 0 {
		t.Fatalf("journal %q has no task a", data)
	}
	data[i+9] = 'x'
	data = append(data, []byte("\nJ1 "+hexKey(key("torn"))+" - 0123")...)
	if err := os.WriteFile(journalPath(dir), data, 0o644); err != nil {
		t.Fatal(err)
	}
	l = openT(t, Options{Dir: dir, Lookup: true})
	if _, err := l.GetAction(context.Background(), a.Key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetAction of a damaged line = %v, want ErrNotFound", err)
	}
	b := simpleAction(t, l, "b", []byte("out b"), []byte("file b"))
	l.Close()

	l = openT(t, Options{Dir: dir, Lookup: true})
	checkAction(t, l, b, []byte("out b"), []byte("file b"))
	if _, err := l.GetAction(context.Background(), key("torn")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetAction of a torn line = %v, want ErrNotFound", err)
	}
	l.Close()

	// The merge drops what does not check out and keeps the rest.
	w := openT(t, Options{Dir: dir})
	keys := listKeys(t, w)
	if len(keys) != 1 || keys[b.Key] == nil {
		t.Fatalf("after merge: %d actions, want only b", len(keys))
	}
	checkAction(t, w, b, []byte("out b"), []byte("file b"))
}

func TestJournalFullNeedsWriter(t *testing.T) {
	dir := newCache(t)
	l := openT(t, Options{Dir: dir, Lookup: true})
	var err error
	n := 0
	for ; n < 1000 && err == nil; n++ {
		name := fmt.Sprint("t", n)
		s := putT(t, l, content(uint64(n), 4<<10))
		err = l.PutAction(context.Background(), &ActionResult{Key: key(name), Task: name, Stdout: s, Stderr: EmptyBlob})
	}
	if !errors.Is(err, ErrJournalFull) {
		t.Fatalf("after %d puts: %v, want ErrJournalFull", n, err)
	}
	if fi, err := os.Stat(journalPath(dir)); err != nil || fi.Size() > journalMax {
		t.Fatalf("journal: %v, %v; want at most %d bytes", fi.Size(), err, journalMax)
	}
	l.Close()
	w := openT(t, Options{Dir: dir})
	if keys := listKeys(t, w); len(keys) != n-1 {
		t.Fatalf("after merge: %d actions, want %d", len(keys), n-1)
	}
	w.Close()
	l = openT(t, Options{Dir: dir, Lookup: true})
	simpleAction(t, l, "again", []byte("x"), []byte("y"))
}

func TestConcurrentLookupStoresAppend(t *testing.T) {
	if !sharedLocks {
		t.Skip("Lookup stores do not share a directory on this platform")
	}
	dir := newCache(t)
	const stores, each = 4, 20
	var wg sync.WaitGroup
	errs := make(chan error, stores)
	for i := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(context.Background(), Options{Dir: dir, Lookup: true})
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			for j := range each {
				name := fmt.Sprintf("s%d-%d", i, j)
				out, err := s.PutReader(context.Background(), bytes.NewReader([]byte(name)))
				if err == nil {
					err = s.PutAction(context.Background(), &ActionResult{Key: key(name), Task: name, Stdout: out, Stderr: EmptyBlob})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	w := openT(t, Options{Dir: dir})
	for i := range stores {
		for j := range each {
			name := fmt.Sprintf("s%d-%d", i, j)
			a, err := w.GetAction(context.Background(), key(name))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if b, err := readBlob(w, a.Stdout.Digest); err != nil || string(b) != name {
				t.Fatalf("%s: stdout %q, %v", name, b, err)
			}
		}
	}
}

// TestJournalEntryEncoding checks the hand-built journal entry against
// encoding/json's, byte for byte, for records whose strings need escaping
// and for zero to three blobs.
func TestJournalEntryEncoding(t *testing.T) {
	for i, task := range []string{"plain", `quote " back\ slash`, "<html> & \u2028 \x01 ünï", ""} {
		a := &ActionResult{
			Task:     task,
			Preimage: []byte(`{"records":[{"label":"cmd","value":"echo \u003cx\u003e \u0026"}]}`),
			Files:    []OutputFile{{Path: "out/" + task, Mode: 0o644, Digest: [32]byte{byte(i)}, Size: 3}},
		}
		rec := encodeAction(a)
		blobs := map[[32]byte][]byte{}
		var digests [][32]byte
		for j := range i {
			d := [32]byte{byte(j), 1}
			blobs[d] = bytes.Repeat([]byte{byte(j), 0xff, '"'}, j+1)
			digests = append(digests, d)
		}
		e := journalEntry{R: rec}
		for _, d := range digests {
			e.B = append(e.B, blobs[d])
		}
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendJournalEntry(nil, rec, digests, blobs); !bytes.Equal(got, want) {
			t.Errorf("task %q, %d blobs:\n got %s\nwant %s", task, i, got, want)
		}
	}
}
