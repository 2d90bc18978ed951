package cas

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

func TestGCByAge(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock()
	ctx := context.Background()
	s := openT(t, Options{Dir: dir, Clock: clock.Now})
	shared := content(99, 50<<10) // named by old and new: must survive
	oldFile := content(1, 50<<10)
	old := simpleAction(t, s, "old", []byte("old out"), oldFile)
	oldShared := &ActionResult{Key: key("old-shared"), Stdout: putT(t, s, shared)}
	if err := s.PutAction(ctx, oldShared); err != nil {
		t.Fatal(err)
	}
	kept := simpleAction(t, s, "kept", []byte("kept out"), content(2, 50<<10))
	clock.Advance(10 * 24 * time.Hour)
	fresh := &ActionResult{Key: key("new"), Stdout: putT(t, s, shared)}
	if err := s.PutAction(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	s.Close()
	clock.Advance(2 * 24 * time.Hour)

	s = openT(t, Options{Dir: dir, Clock: clock.Now})
	res, err := s.GC(ctx, GCOptions{
		MaxAge: 7 * 24 * time.Hour,
		Keep:   func(k [32]byte) bool { return k == kept.Key },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Actions != 4 || res.RemovedByAge != 2 || res.RemovedBySize != 0 {
		t.Errorf("GC = %+v, want 2 of 4 removed by age", res)
	}
	// old's stdout and file are gone; shared content stays.
	if res.BlobsRemoved != 2 {
		t.Errorf("BlobsRemoved = %d, want 2", res.BlobsRemoved)
	}
	got := listKeys(t, s)
	if len(got) != 2 || got[kept.Key] == nil || got[fresh.Key] == nil {
		t.Errorf("after GC: %d actions; want kept and new", len(got))
	}
	for _, d := range [][32]byte{old.Stdout.Digest, sum(oldFile)} {
		if ok, _ := s.HasBlob(ctx, d); ok {
			t.Errorf("blob %s of the removed action survived", fmtKey(d))
		}
	}
	if b, err := readBlob(s, sum(shared)); err != nil || !bytes.Equal(b, shared) {
		t.Errorf("shared blob: %v", err)
	}
	if _, err := os.Stat(s.blobPath(sum(oldFile))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("removed blob file still on disk: %v", err)
	}
}

func TestGCRemovesUnreferencedBlobsButNotPinned(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openT(t, Options{Dir: dir})
	orphanSmall := putT(t, s, []byte("orphan"))
	orphanBig := putT(t, s, content(1, 100<<10))
	s.Close()

	s = openT(t, Options{Dir: dir})
	pinned := putT(t, s, content(2, 100<<10)) // this session relies on it
	res, err := s.GC(ctx, GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.BlobsRemoved != 2 {
		t.Errorf("BlobsRemoved = %d, want 2", res.BlobsRemoved)
	}
	for _, r := range []BlobRef{orphanSmall, orphanBig} {
		if ok, _ := s.HasBlob(ctx, r.Digest); ok {
			t.Errorf("orphan %v survived", r)
		}
	}
	if ok, _ := s.HasBlob(ctx, pinned.Digest); !ok {
		t.Fatal("GC removed a blob this session stored")
	}
	// The action naming it can still be stored.
	if err := s.PutAction(ctx, &ActionResult{Key: key("late"), Stdout: pinned}); err != nil {
		t.Fatal(err)
	}
}

func TestGCBySizeGetsBelowCap(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock()
	ctx := context.Background()
	s := openT(t, Options{Dir: dir, Clock: clock.Now})
	const n = 40
	var actions []*ActionResult
	for i := range n {
		// Each action: a 120 KiB file, a 20 KiB inline blob, a small stdout.
		a := &ActionResult{
			Key:    key(fmt.Sprint("a", i)),
			Stdout: putT(t, s, []byte(fmt.Sprint("out", i))),
			Stderr: putT(t, s, content(uint64(1000+i), 20<<10)),
			Files: []OutputFile{{Path: "f", Mode: 0o644,
				Digest: putT(t, s, content(uint64(i), 120<<10)).Digest, Size: 120 << 10}},
			Preimage: bytes.Repeat([]byte("p"), 2000),
		}
		if err := s.PutAction(ctx, a); err != nil {
			t.Fatal(err)
		}
		actions = append(actions, a)
		clock.Advance(time.Hour) // a[i] used after a[i-1]
	}
	s.Close()
	before, err := DiskUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	limit := before / 2
	keep := actions[0].Key // the oldest, but in use by a recent run

	s = openT(t, Options{Dir: dir, Clock: clock.Now})
	res, err := s.GC(ctx, GCOptions{MaxSize: limit, Keep: func(k [32]byte) bool { return k == keep }})
	if err != nil {
		t.Fatal(err)
	}
	after, err := DiskUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("before %d, limit %d, after %d (GC: %+v)", before, limit, after, res)
	if after >= limit {
		t.Fatalf("directory uses %d bytes after GC, limit %d", after, limit)
	}
	if res.BytesAfter >= limit || res.BytesBefore < before {
		t.Errorf("GC reported %d bytes before, %d after; walks say %d, %d", res.BytesBefore, res.BytesAfter, before, after)
	}
	got := listKeys(t, s)
	if got[keep] == nil {
		t.Error("GC removed the kept action")
	}
	if res.RemovedBySize == 0 || len(got) != n-res.RemovedBySize {
		t.Errorf("removed %d by size, %d remain of %d", res.RemovedBySize, len(got), n)
	}
	// Least recently used go first: apart from keep, what remains is the
	// most recently used suffix.
	first := 1
	for first < n && got[actions[first].Key] == nil {
		first++
	}
	for i := first; i < n; i++ {
		if got[actions[i].Key] == nil {
			t.Errorf("action %d removed while older action %d remains", i, first)
		}
	}
	if got[actions[n-1].Key] == nil {
		t.Error("the most recently used action was removed")
	}
	// Everything that remains is intact.
	for _, a := range got {
		for _, b := range a.Blobs() {
			if _, err := readBlob(s, b.Digest); err != nil {
				t.Errorf("blob %v of a surviving action: %v", b, err)
			}
		}
	}
	s.Close()
	if final, _ := DiskUsage(dir); final >= limit {
		t.Errorf("after Close the directory uses %d bytes, limit %d", final, limit)
	}
}

func TestGCKeepsWhatItMust(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, Options{Dir: dir})
	ctx := context.Background()
	a := simpleAction(t, s, "a", []byte("o"), content(1, 100<<10))
	res, err := s.GC(ctx, GCOptions{MaxSize: 1, Keep: func([32]byte) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	if res.RemovedBySize != 0 || res.BytesAfter <= 1 {
		t.Errorf("GC = %+v; want nothing removed, size above the cap reported", res)
	}
	if _, err := s.GetAction(ctx, a.Key); err != nil {
		t.Errorf("kept action: %v", err)
	}
	if _, err := s.GC(ctx, GCOptions{MaxAge: -1}); err == nil {
		t.Error("GC accepted a negative age")
	}
}

// TestGCConcurrentWithReaders runs GC while other goroutines read and
// write: readers see hits with correct content or misses, never errors.
func TestGCConcurrentWithReaders(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock()
	ctx := context.Background()
	s := openT(t, Options{Dir: dir, Clock: clock.Now})
	const n = 30
	for i := range n {
		simpleAction(t, s, fmt.Sprint(i), []byte(fmt.Sprint("out", i)), content(uint64(i), 40<<10))
		clock.Advance(time.Hour)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 100)
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				i := (j + r) % n
				a, err := s.GetAction(ctx, key(fmt.Sprint(i)))
				if errors.Is(err, ErrNotFound) {
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				b, err := readBlob(s, a.Files[0].Digest)
				if errors.Is(err, ErrNotFound) && !errors.Is(err, ErrCorrupt) {
					continue // removed between lookup and read: a miss
				}
				if err != nil || !bytes.Equal(b, content(uint64(i), 40<<10)) {
					errs <- fmt.Errorf("action %d content: %v", i, err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // a writer storing new actions meanwhile
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			file := content(uint64(5000+i), 40<<10)
			ref, err := s.PutReader(ctx, bytes.NewReader(file))
			if err == nil {
				err = s.PutAction(ctx, &ActionResult{Key: key(fmt.Sprint("w", i)), Stdout: EmptyBlob,
					Files: []OutputFile{{Path: "f", Mode: 0o644, Digest: ref.Digest, Size: ref.Size}}})
			}
			if err != nil {
				errs <- fmt.Errorf("writer: %w", err)
				return
			}
		}
	}()
	for range 3 {
		if _, err := s.GC(ctx, GCOptions{MaxSize: 1 << 20}); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Every action the writer stored names blobs that are present.
	for _, a := range listKeys(t, s) {
		for _, b := range a.Blobs() {
			if ok, _ := s.HasBlob(ctx, b.Digest); !ok {
				t.Errorf("action %s names missing blob %v", fmtKey(a.Key), b)
			}
		}
	}
}

func TestConcurrentPutGet(t *testing.T) {
	s := openT(t, Options{Dir: t.TempDir()})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				name := fmt.Sprint(w, "/", i)
				// Overlapping content across workers exercises dedup.
				file := content(uint64(i), 1000+(i%3)*40000)
				ref, err := s.PutReader(ctx, bytes.NewReader(file))
				if err != nil {
					errs <- err
					return
				}
				a := &ActionResult{Key: key(name), Task: name, Stdout: EmptyBlob,
					Files: []OutputFile{{Path: "f", Mode: 0o644, Digest: ref.Digest, Size: ref.Size}}}
				if err := s.PutAction(ctx, a); err != nil {
					errs <- err
					return
				}
				got, err := s.GetAction(ctx, key(name))
				if err != nil || got.Task != name {
					errs <- fmt.Errorf("get %s: %v", name, err)
					return
				}
				if b, err := readBlob(s, ref.Digest); err != nil || !bytes.Equal(b, file) {
					errs <- fmt.Errorf("read %s: %v", name, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(listKeys(t, s)); n != 8*40 {
		t.Errorf("%d actions, want %d", n, 8*40)
	}
}
