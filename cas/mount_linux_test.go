package cas

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// mount runs mount(8) with args, skipping the test when that is not
// possible (not root, no mount namespace rights).
func mount(t *testing.T, args ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
		t.Skipf("cannot mount (%v): %s", err, bytes.TrimSpace(out))
	}
}

func unmountAtCleanup(t *testing.T, dir string) {
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

// TestReadOnlyDirectory opens a cache on a read-only bind mount without
// the ReadOnly option: reads work, writes report ErrReadOnly. (Tests run
// as root, whom permission bits do not stop.)
func TestReadOnlyDirectory(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openT(t, Options{Dir: dir})
	a := simpleAction(t, s, "x", []byte("out"), content(1, 80<<10))
	s.Close()

	ro := filepath.Join(t.TempDir(), "ro")
	os.Mkdir(ro, 0o777)
	mount(t, "--bind", dir, ro)
	unmountAtCleanup(t, ro)
	if out, err := exec.Command("mount", "-o", "remount,bind,ro", ro).CombinedOutput(); err != nil {
		t.Skipf("cannot remount read-only (%v): %s", err, out)
	}
	if err := os.WriteFile(filepath.Join(ro, "probe"), nil, 0o644); err == nil {
		t.Fatal("bind mount is writable")
	}

	s, err := Open(ctx, Options{Dir: ro})
	if err != nil {
		t.Fatalf("Open on a read-only directory: %v", err)
	}
	defer s.Close()
	if !s.ReadOnly() {
		t.Error("ReadOnly() = false on a read-only directory")
	}
	got, err := s.GetAction(ctx, a.Key)
	if err != nil {
		t.Fatalf("GetAction: %v", err)
	}
	if b, err := readBlob(s, got.Files[0].Digest); err != nil || !bytes.Equal(b, content(1, 80<<10)) {
		t.Fatalf("read blob: %v", err)
	}
	if err := s.PutBlob(ctx, sum([]byte("n")), 1, bytes.NewReader([]byte("n"))); !errors.Is(err, ErrReadOnly) {
		t.Errorf("PutBlob = %v, want ErrReadOnly", err)
	}
	if err := s.PutAction(ctx, &ActionResult{Key: key("n"), Stdout: EmptyBlob}); !errors.Is(err, ErrReadOnly) {
		t.Errorf("PutAction = %v, want ErrReadOnly", err)
	}
	if _, err := s.Stats(ctx); err != nil {
		t.Errorf("Stats: %v", err)
	}
}

// TestDiskFullDuringBlobWrite puts v1/tmp on a 1 MiB tmpfs: a larger blob
// fails with the write error, leaves no temporary file and no entry, and
// the store keeps working.
func TestDiskFullDuringBlobWrite(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	openT(t, Options{Dir: dir}).Close()
	tmp := filepath.Join(dir, versionDir, tmpName)
	mount(t, "-t", "tmpfs", "-o", "size=1m", "tmpfs", tmp)
	unmountAtCleanup(t, tmp)

	s := openT(t, Options{Dir: dir})
	// Renaming across file systems fails, so this store can only keep
	// inline blobs; the point is the failed write.
	big := content(1, 2<<20)
	err := s.PutBlob(ctx, sum(big), int64(len(big)), bytes.NewReader(big))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("PutBlob = %v, want ENOSPC", err)
	}
	if ok, _ := s.HasBlob(ctx, sum(big)); ok {
		t.Error("blob present after a failed write")
	}
	if left := tmpEntries(t, dir); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if _, err := s.PutReader(ctx, bytes.NewReader(big)); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("PutReader = %v, want ENOSPC", err)
	}
	if left := tmpEntries(t, dir); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	a := &ActionResult{Key: key("after"), Stdout: putT(t, s, []byte("still works"))}
	if err := s.PutAction(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAction(ctx, a.Key); err != nil {
		t.Fatal(err)
	}
}

// fillTo writes a filler file until about leave bytes remain free on the
// file system holding dir.
func fillTo(t *testing.T, dir string, leave int64) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "filler"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n := freeSpace(dir) - leave; n > 0 {
		if _, err := f.Write(make([]byte, n)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestNearlyFullDisk puts the whole cache on a small tmpfs: badger would
// crash the process writing its mapped log on a full disk, so the store
// refuses index writes below minFreeBytes, GC still frees space, and Open
// falls back to read-only when even less is left.
func TestNearlyFullDisk(t *testing.T) {
	old := minFreeBytes
	minFreeBytes = 8 << 20
	t.Cleanup(func() { minFreeBytes = old })
	dir := t.TempDir()
	mount(t, "-t", "tmpfs", "-o", "size=40m", "tmpfs", dir)
	unmountAtCleanup(t, dir)
	ctx := context.Background()
	cache := filepath.Join(dir, "cache")

	s := openT(t, Options{Dir: cache})
	var keys [][32]byte
	for i := range 10 {
		a := simpleAction(t, s, string(rune('a'+i)), []byte{byte(i)}, content(uint64(i), 1<<20))
		keys = append(keys, a.Key)
	}
	fillTo(t, dir, 6<<20) // below minFreeBytes, above a quarter of it
	small := []byte("small")
	if err := s.PutBlob(ctx, sum(small), 5, bytes.NewReader(small)); !errors.Is(err, ErrNoSpace) {
		t.Errorf("PutBlob = %v, want ErrNoSpace", err)
	}
	if err := s.PutAction(ctx, &ActionResult{Key: key("new"), Stdout: EmptyBlob}); !errors.Is(err, ErrNoSpace) {
		t.Errorf("PutAction = %v, want ErrNoSpace", err)
	}
	big := content(99, 1<<20)
	if err := s.PutBlob(ctx, sum(big), int64(len(big)), bytes.NewReader(big)); !errors.Is(err, ErrNoSpace) {
		t.Errorf("PutBlob (file) = %v, want ErrNoSpace", err)
	}
	if _, err := s.GetAction(ctx, keys[0]); err != nil {
		t.Errorf("GetAction on a full disk: %v", err)
	}
	// Below even a quarter of minFreeBytes, GC removes blob files first,
	// and deletes the index entries once that has made room.
	fillTo(t, dir, 1<<20)
	res, err := s.GC(ctx, GCOptions{MaxSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.RemovedBySize != len(keys) || res.Deferred != 0 || res.BlobsRemoved < len(keys) {
		t.Errorf("GC = %+v, want all %d removed", res, len(keys))
	}
	if n := len(listKeys(t, s)); n != 0 {
		t.Errorf("%d actions left in the index", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Nearly nothing left: Open degrades to read-only.
	fillTo(t, dir, 1<<20)
	s, err = Open(ctx, Options{Dir: cache})
	if err != nil {
		t.Fatalf("Open on a full disk: %v", err)
	}
	defer s.Close()
	if !s.ReadOnly() {
		t.Error("store writable on a full disk")
	}
	err = s.PutAction(ctx, &ActionResult{Key: key("new"), Stdout: EmptyBlob})
	if !errors.Is(err, ErrReadOnly) || !errors.Is(err, ErrNoSpace) {
		t.Errorf("PutAction = %v, want ErrReadOnly and ErrNoSpace", err)
	}
	if _, err := s.GetAction(ctx, keys[0]); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetAction = %v, want a miss after GC", err)
	}
}
