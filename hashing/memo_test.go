package hashing

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// past is an mtime well outside the racy window.
var past = time.Now().Add(-time.Hour).Truncate(time.Second)

func writeFile(t testing.TB, root, rel, content string, mode fs.FileMode, mtime time.Time) string {
	t.Helper()
	full := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(full, mode); err != nil { // WriteFile's mode is filtered by the umask
		t.Fatal(err)
	}
	if err := os.Chtimes(full, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	return full
}

func openTestMemo(t testing.TB, path string) *Memo {
	t.Helper()
	m, err := OpenMemo(path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustDigest(t testing.TB, m *Memo, root, rel string) FileEntry {
	t.Helper()
	e, err := m.Digest(root, rel)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestMemoDigestContent(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "src/a.c", "int main;", 0o644, past)
	writeFile(t, root, "run.sh", "#!/bin/sh\n", 0o755, past)
	big := string(bytes.Repeat([]byte("x"), 3*readBufSize+17)) // several reads
	writeFile(t, root, "big.bin", big, 0o644, past)
	writeFile(t, root, "empty", "", 0o644, past)
	m := openTestMemo(t, "")

	tests := []struct {
		rel, path, content string
		exec               bool
	}{
		{"src/a.c", "src/a.c", "int main;", false},
		{"./src//a.c", "src/a.c", "int main;", false},
		{"run.sh", "run.sh", "#!/bin/sh\n", true},
		{"big.bin", "big.bin", big, false},
		{"empty", "empty", "", false},
	}
	for _, tt := range tests {
		e := mustDigest(t, m, root, tt.rel)
		if e.Path != tt.path || e.Digest != d(tt.content) {
			t.Errorf("Digest(%q) = %s %s, want %s %s", tt.rel, e.Path, e.Digest, tt.path, d(tt.content))
		}
		if runtime.GOOS != "windows" && (e.Mode&0o111 != 0) != tt.exec {
			t.Errorf("Digest(%q) mode %04o, exec want %v", tt.rel, e.Mode, tt.exec)
		}
	}
}

func TestMemoHitDoesNotRead(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "a.txt", "alpha", 0o644, past)
	m := openTestMemo(t, "")

	first := mustDigest(t, m, root, "a.txt")
	for range 3 {
		if again := mustDigest(t, m, root, "a.txt"); again != first {
			t.Fatalf("hit returned %+v, want %+v", again, first)
		}
	}
	if n := m.hashed.Load(); n != 1 {
		t.Fatalf("file read %d times, want 1", n)
	}

	// A trusted entry is used without reading: plant a wrong digest under
	// the file's current stat data and the memo returns it.
	full := filepath.Join(root, "a.txt")
	m.mu.Lock()
	m.entries[full].digest = d("planted")
	m.mu.Unlock()
	if got := mustDigest(t, m, root, "a.txt"); got.Digest != d("planted") || m.hashed.Load() != 1 {
		t.Fatalf("trusted entry not used: got %s after %d reads", got.Digest, m.hashed.Load())
	}

	// Any stat change makes it re-read: a different size here.
	writeFile(t, root, "a.txt", "alpha2", 0o644, past)
	if got := mustDigest(t, m, root, "a.txt"); got.Digest != d("alpha2") || m.hashed.Load() != 2 {
		t.Fatalf("after rewrite got %s after %d reads, want %s after 2", got.Digest, m.hashed.Load(), d("alpha2"))
	}
}

// TestMemoRacy: a file whose mtime is within the racy window of the read
// time is re-read on every lookup until it is old enough; with the coarse
// window and, where the file system keeps fine times, the fine one.
func TestMemoRacy(t *testing.T) {
	for _, fine := range []bool{false, true} {
		t.Run(fmt.Sprintf("fine=%v", fine), func(t *testing.T) {
			root := t.TempDir()
			writeFile(t, root, "r.txt", "racy", 0o644, past)
			window := forceWindow(t, root, "r.txt", fine)
			m := openTestMemo(t, filepath.Join(root, ".rustypipe", "statmemo"))

			clock := past.Add(window / 2) // mtime is within the window of "now": racy
			m.now = func() time.Time { return clock }
			for i := 1; i <= 3; i++ {
				if e := mustDigest(t, m, root, "r.txt"); e.Digest != d("racy") {
					t.Fatalf("wrong digest %s", e.Digest)
				}
				if n := m.hashed.Load(); n != int64(i) {
					t.Fatalf("lookup %d: %d reads, want %d (racy entries must not be trusted)", i, n, i)
				}
			}
			if err := m.Save(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(m.path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a memo holding only racy entries was written (%v)", err)
			}

			// Exactly at the edge: mtime == now - window is still racy
			// ("strictly older").
			clock = past.Add(window)
			mustDigest(t, m, root, "r.txt")
			mustDigest(t, m, root, "r.txt")
			if n := m.hashed.Load(); n != 5 {
				t.Fatalf("at the window edge: %d reads, want 5", n)
			}

			clock = past.Add(window + time.Nanosecond)
			mustDigest(t, m, root, "r.txt")
			mustDigest(t, m, root, "r.txt")
			if n := m.hashed.Load(); n != 6 {
				t.Fatalf("after the window: %d reads, want 6", n)
			}
		})
	}
}

// forceWindow makes the file system of root count as keeping fine times or
// not, for this test, and returns the racy window of root/rel then.
func forceWindow(t *testing.T, root, rel string, fine bool) time.Duration {
	t.Helper()
	fi, err := os.Lstat(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	st := statOf(fi)
	old, had := fineDevs.Load(st.dev)
	fineDevs.Store(st.dev, fine)
	t.Cleanup(func() {
		if had {
			fineDevs.Store(st.dev, old)
		} else {
			fineDevs.Delete(st.dev)
		}
	})
	w := racyWindow(st.dev, st.ctimeNs)
	switch {
	case !fine && w != coarseRacyWindow:
		t.Fatalf("window %v on a file system forced coarse", w)
	case fine && w != fineRacyWindow:
		if st.ctimeNs%int64(time.Second) != 0 {
			t.Fatalf("window %v for a change time with nanoseconds on a file system forced fine", w)
		}
		t.Logf("the change time has whole seconds here: window %v", w)
	}
	return w
}

// TestMemoChangedWhileReading: a file rewritten while it is being hashed is
// not remembered.
func TestMemoChangedWhileReading(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "grow.log", "line 1\n", 0o644, past)
	m := openTestMemo(t, "")
	m.midRead = func(full string) {
		m.midRead = nil
		writeFile(t, root, "grow.log", "line 1\nline 2\n", 0o644, past.Add(time.Second))
	}
	mustDigest(t, m, root, "grow.log")
	if len(m.entries) != 0 {
		t.Fatal("a file that changed while being read was remembered")
	}
	if e := mustDigest(t, m, root, "grow.log"); e.Digest != d("line 1\nline 2\n") || m.hashed.Load() != 2 {
		t.Fatalf("got %s after %d reads, want the new content after 2", e.Digest, m.hashed.Load())
	}
}

// TestMemoSameSizeSameMtimeRewrite: content replaced, size and mtime kept.
// Where the platform has ctime the memo notices; git has the same limit
// elsewhere.
func TestMemoSameSizeSameMtimeRewrite(t *testing.T) {
	if !hasCtime {
		t.Skip("no ctime on this platform")
	}
	root := t.TempDir()
	writeFile(t, root, "f", "aaaa", 0o644, past)
	m := openTestMemo(t, "")
	if e := mustDigest(t, m, root, "f"); e.Digest != d("aaaa") {
		t.Fatal("wrong digest")
	}
	time.Sleep(10 * time.Millisecond) // let ctime move on coarse clocks
	writeFile(t, root, "f", "bbbb", 0o644, past)
	if e := mustDigest(t, m, root, "f"); e.Digest != d("bbbb") {
		t.Fatalf("after same-size rewrite got %s, want %s", e.Digest, d("bbbb"))
	}
}

func TestMemoSaveLoad(t *testing.T) {
	root := t.TempDir()
	memoPath := filepath.Join(root, ".rustypipe", "statmemo")
	want := map[string]Digest{}
	m := openTestMemo(t, memoPath)
	for i := range 5 {
		rel := fmt.Sprintf("dir/f%d", i)
		writeFile(t, root, rel, rel, 0o644, past)
		want[rel] = mustDigest(t, m, root, rel).Digest
	}
	if err := m.Save(); err != nil {
		t.Fatal(err)
	}

	m2 := openTestMemo(t, memoPath)
	if len(m2.entries) != 5 {
		t.Fatalf("loaded %d entries, want 5", len(m2.entries))
	}
	for rel, dg := range want {
		if got := mustDigest(t, m2, root, rel); got.Digest != dg || got.Path != rel {
			t.Errorf("%s: %+v, want digest %s", rel, got, dg)
		}
	}
	if n := m2.hashed.Load(); n != 0 {
		t.Errorf("reloaded memo read %d files, want 0", n)
	}

	// Nothing changed: Save must not rewrite the file.
	before, _ := os.Stat(memoPath)
	old := time.Unix(1, 0)
	os.Chtimes(memoPath, old, old)
	if err := m2.Save(); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(memoPath); !after.ModTime().Equal(old) {
		t.Errorf("clean memo was rewritten (mtime %v, size %d)", after.ModTime(), before.Size())
	}
	if ents, _ := os.ReadDir(filepath.Dir(memoPath)); len(ents) != 1 {
		t.Errorf("temporary files left beside the memo: %v", ents)
	}
}

// TestMemoLoadRacyAgainstWriteTime: an entry whose mtime is within the racy
// window of the memo file's own mtime is not trusted after loading.
func TestMemoLoadRacyAgainstWriteTime(t *testing.T) {
	root := t.TempDir()
	memoPath := filepath.Join(root, "statmemo")
	writeFile(t, root, "f", "content", 0o644, past)
	window := forceWindow(t, root, "f", false)
	m := openTestMemo(t, memoPath)
	mustDigest(t, m, root, "f")
	if err := m.Save(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		memoTime time.Time
		reads    int64
	}{
		{past.Add(window / 2), 1},           // memo written within the window after the file: racy
		{past.Add(window + time.Second), 0}, // well after: trusted
		{past.Add(-time.Minute), 1},         // memo older than the file (clock skew): racy
	} {
		if err := os.Chtimes(memoPath, tc.memoTime, tc.memoTime); err != nil {
			t.Fatal(err)
		}
		m2 := openTestMemo(t, memoPath)
		if e := mustDigest(t, m2, root, "f"); e.Digest != d("content") {
			t.Fatal("wrong digest")
		}
		if n := m2.hashed.Load(); n != tc.reads {
			t.Errorf("memo mtime %v: %d reads, want %d", tc.memoTime.Sub(past), n, tc.reads)
		}
	}
}

func validMemoBytes(t *testing.T) []byte {
	t.Helper()
	root := t.TempDir()
	memoPath := filepath.Join(root, "statmemo")
	writeFile(t, root, "f", "content", 0o644, past)
	m := openTestMemo(t, memoPath)
	mustDigest(t, m, root, "f")
	if err := m.Save(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(memoPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := decodeMemo(data); !ok {
		t.Fatal("valid memo does not decode")
	}
	return data
}

// withChecksum re-signs body so that only the structure is wrong.
func withChecksum(body []byte) []byte {
	sum := DigestBytes(body)
	return append(body, sum[:]...)
}

func TestMemoCorruptIgnored(t *testing.T) {
	valid := validMemoBytes(t)
	body := valid[:len(valid)-Size]
	flipped := bytes.Clone(valid)
	flipped[len(flipped)/2] ^= 0x40

	version2 := binary.AppendUvarint([]byte(memoMagic), 2)
	version2 = withChecksum(append(version2, body[len(memoMagic)+1:]...))
	hugeCount := binary.AppendUvarint(binary.AppendUvarint([]byte(memoMagic), memoVersion), 1<<62)
	hugePath := binary.AppendUvarint(binary.AppendUvarint(bytes.Clone(hugeCount[:len(memoMagic)+1]), 1), 1<<40)
	trailing := withChecksum(append(bytes.Clone(body), 0))

	cases := map[string][]byte{
		"empty":        {},
		"garbage":      []byte("this is not a memo at all, just text that is long enough......"),
		"foreign":      append([]byte("gitindex\n"), valid[9:]...),
		"truncated":    valid[:len(valid)-5],
		"header only":  []byte(memoMagic),
		"flipped byte": flipped,
		"version 2":    version2,
		"huge count":   withChecksum(hugeCount),
		"huge path":    withChecksum(hugePath),
		"trailing":     trailing,
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			memoPath := filepath.Join(root, "statmemo")
			if err := os.WriteFile(memoPath, data, 0o644); err != nil {
				t.Fatal(err)
			}
			m, err := OpenMemo(memoPath)
			if err != nil {
				t.Fatalf("OpenMemo: %v", err)
			}
			if len(m.entries) != 0 {
				t.Fatalf("corrupt memo gave %d entries", len(m.entries))
			}
			writeFile(t, root, "f", "content", 0o644, past)
			if e := mustDigest(t, m, root, "f"); e.Digest != d("content") {
				t.Fatal("wrong digest")
			}
			if err := m.Save(); err != nil {
				t.Fatal(err)
			}
			m2 := openTestMemo(t, memoPath)
			if len(m2.entries) != 1 {
				t.Errorf("after Save the memo has %d entries, want 1", len(m2.entries))
			}
		})
	}
}

func FuzzDecodeMemo(f *testing.F) {
	f.Add([]byte(memoMagic))
	f.Add(withChecksum(binary.AppendUvarint(binary.AppendUvarint([]byte(memoMagic), memoVersion), 3)))
	f.Fuzz(func(t *testing.T, data []byte) {
		decodeMemo(data)
		decodeMemo(withChecksum(bytes.Clone(data)))
		decodeMemo(withChecksum(append([]byte(memoMagic), data...)))
	})
}

func TestMemoPrunesIdleEntries(t *testing.T) {
	root := t.TempDir()
	memoPath := filepath.Join(root, "statmemo")
	writeFile(t, root, "old", "o", 0o644, past)
	writeFile(t, root, "new", "n", 0o644, past)

	clock := time.Now()
	m := openTestMemo(t, memoPath)
	m.now = func() time.Time { return clock }
	mustDigest(t, m, root, "old")
	clock = clock.Add(memoMaxIdle + 2*memoUseTick)
	mustDigest(t, m, root, "new")
	if err := m.Save(); err != nil {
		t.Fatal(err)
	}
	m2 := openTestMemo(t, memoPath)
	if _, ok := m2.entries[filepath.Join(root, "old")]; ok || len(m2.entries) != 1 {
		t.Errorf("idle entry kept: %d entries", len(m2.entries))
	}
}

func TestMemoSymlink(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "target.txt", "t", 0o644, past)
	if err := os.Symlink("target.txt", filepath.Join(root, "link")); err != nil {
		t.Skipf("symlinks unavailable: %v", err)
	}
	if err := os.Symlink("missing/elsewhere", filepath.Join(root, "dangling")); err != nil {
		t.Fatal(err)
	}
	m := openTestMemo(t, "")
	e := mustDigest(t, m, root, "link")
	if e.Mode != ModeSymlink || e.Digest != d("target.txt") {
		t.Errorf("link: mode %o digest %s, want %o %s", e.Mode, e.Digest, ModeSymlink, d("target.txt"))
	}
	e = mustDigest(t, m, root, "dangling")
	if e.Mode != ModeSymlink || e.Digest != d("missing/elsewhere") {
		t.Errorf("dangling link: mode %o digest %s", e.Mode, e.Digest)
	}
	if m.hashed.Load() != 0 {
		t.Error("a symlink target was read")
	}
}

func TestMemoDigestErrors(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "dir/f", "x", 0o644, past)
	m := openTestMemo(t, "")
	tests := []struct {
		rel      string
		notExist bool
	}{
		{"", false},
		{".", false},
		{"dir", false},
		{"/etc/passwd", false},
		{"../outside", false},
		{"dir/../../outside", false},
		{"missing.txt", true},
	}
	for _, tt := range tests {
		_, err := m.Digest(root, tt.rel)
		if err == nil {
			t.Errorf("Digest(%q) succeeded", tt.rel)
			continue
		}
		if errors.Is(err, fs.ErrNotExist) != tt.notExist {
			t.Errorf("Digest(%q) = %v; errors.Is(ErrNotExist) want %v", tt.rel, err, tt.notExist)
		}
	}
}

func TestMemoConcurrent(t *testing.T) {
	root := t.TempDir()
	memoPath := filepath.Join(root, "statmemo")
	const files = 40
	for i := range files {
		writeFile(t, root, fmt.Sprintf("f%02d", i), fmt.Sprint(i), 0o644, past)
	}
	m := openTestMemo(t, memoPath)
	var wg sync.WaitGroup
	errs := make(chan error, 8*files+8)
	for g := range 8 {
		wg.Go(func() {
			for i := range files {
				rel := fmt.Sprintf("f%02d", (i+g*5)%files)
				e, err := m.Digest(root, rel)
				if err == nil && e.Digest != d(fmt.Sprint((i+g*5)%files)) {
					err = fmt.Errorf("%s: wrong digest", rel)
				}
				if err != nil {
					errs <- err
				}
			}
			if err := m.Save(); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := m.hashed.Load(); n < files || n > 8*files {
		t.Errorf("%d reads for %d files", n, files)
	}
	if m2 := openTestMemo(t, memoPath); len(m2.entries) != files {
		t.Errorf("saved memo has %d entries, want %d", len(m2.entries), files)
	}
}

// SaveIfWorthwhile leaves the file alone for a few digests of small files
// (and dropped entries), and saves for more of them or for a large file.
func TestMemoSaveIfWorthwhile(t *testing.T) {
	root := t.TempDir()
	memoPath := filepath.Join(root, ".rustypipe", "statmemo")
	m := openTestMemo(t, memoPath)
	for i := range memoDeferMax {
		rel := fmt.Sprintf("small%d", i)
		writeFile(t, root, rel, rel, 0o644, past)
		mustDigest(t, m, root, rel)
	}
	if err := m.SaveIfWorthwhile(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(memoPath); !os.IsNotExist(err) {
		t.Fatalf("a few small digests were saved (stat: %v)", err)
	}
	// One more small file passes the bound.
	writeFile(t, root, "small-last", "x", 0o644, past)
	mustDigest(t, m, root, "small-last")
	if err := m.SaveIfWorthwhile(); err != nil {
		t.Fatal(err)
	}
	if got := len(openTestMemo(t, memoPath).entries); got != memoDeferMax+1 {
		t.Fatalf("after passing the bound: %d entries saved, want %d", got, memoDeferMax+1)
	}
	// A single large file is worth a save.
	writeFile(t, root, "large", strings.Repeat("x", memoSmallFile+1), 0o644, past)
	mustDigest(t, m, root, "large")
	if err := m.SaveIfWorthwhile(); err != nil {
		t.Fatal(err)
	}
	if got := len(openTestMemo(t, memoPath).entries); got != memoDeferMax+2 {
		t.Fatalf("after a large file: %d entries saved, want %d", got, memoDeferMax+2)
	}
	// What was deferred is saved by Save.
	writeFile(t, root, "small-deferred", "y", 0o644, past)
	mustDigest(t, m, root, "small-deferred")
	if err := m.SaveIfWorthwhile(); err != nil {
		t.Fatal(err)
	}
	if got := len(openTestMemo(t, memoPath).entries); got != memoDeferMax+2 {
		t.Fatalf("a deferred small digest was saved: %d entries", got)
	}
	if err := m.Save(); err != nil {
		t.Fatal(err)
	}
	if got := len(openTestMemo(t, memoPath).entries); got != memoDeferMax+3 {
		t.Fatalf("Save after a deferral: %d entries saved, want %d", got, memoDeferMax+3)
	}
}

// A lazy memo reads its file only when a digest needs an entry: not for
// files modified within the racy window.
func TestLazyMemo(t *testing.T) {
	root := t.TempDir()
	memoPath := filepath.Join(root, ".rustypipe", "statmemo")
	m := openTestMemo(t, memoPath)
	writeFile(t, root, "old", "old", 0o644, past)
	want := mustDigest(t, m, root, "old")
	if err := m.Save(); err != nil {
		t.Fatal(err)
	}

	lazy := NewLazyMemo(memoPath, func(err error) { t.Errorf("load error: %v", err) })
	writeFile(t, root, "new", "new", 0o644, time.Now())
	if got := mustDigest(t, lazy, root, "new"); got.Digest != DigestBytes([]byte("new")) {
		t.Fatalf("digest of a new file: %v", got)
	}
	lazy.mu.Lock()
	loaded := len(lazy.entries) > 0
	lazy.mu.Unlock()
	if loaded {
		t.Fatal("hashing a file modified just now read the memo")
	}
	if got := mustDigest(t, lazy, root, "old"); got != want {
		t.Fatalf("digest of the old file: %v, want %v", got, want)
	}
	if n := lazy.hashed.Load(); n != 1 {
		t.Fatalf("hashed %d files, want 1 (the old one is a memo hit)", n)
	}

	// A memo path that cannot be read is reported, and the memo is empty.
	bad := filepath.Join(root, "dir-memo")
	if err := os.Mkdir(bad, 0o755); err != nil {
		t.Fatal(err)
	}
	var errs int
	broken := NewLazyMemo(bad, func(error) { errs++ })
	mustDigest(t, broken, root, "old")
	if errs != 1 || broken.hashed.Load() != 1 {
		t.Fatalf("unreadable memo: %d errors, %d hashed; want 1 and 1", errs, broken.hashed.Load())
	}
}

// TestExpandContent checks that ExpandContent returns, aligned with the
// sorted entries, exactly the hashed content of the small files it read,
// and nil for a file over the limit, a symlink and a file the memo
// answered without reading; and that Expand's entries are the same.
func TestExpandContent(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "b/small.txt", "small", 0o644, time.Now())
	writeFile(t, root, "a/empty", "", 0o644, time.Now())
	writeFile(t, root, "c/big.bin", strings.Repeat("x", 100), 0o644, time.Now())
	writeFile(t, root, "d/old.txt", "old", 0o644, past)
	if runtime.GOOS != "windows" {
		if err := os.Symlink("small.txt", filepath.Join(root, "b", "link")); err != nil {
			t.Fatal(err)
		}
	}
	m := openTestMemo(t, "")
	mustDigest(t, m, root, "d/old.txt") // trusted from now on: answered by the memo
	patterns := []string{"d/old.txt", "c/big.bin", "b/*", "a/empty"}
	files, contents, err := m.ExpandContent(root, patterns, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a/empty": "", "b/small.txt": "small"} // the rest: nil
	if len(contents) != len(files) {
		t.Fatalf("%d contents for %d files", len(contents), len(files))
	}
	for i, f := range files {
		w, ok := want[f.Path]
		switch {
		case !ok && contents[i] != nil:
			t.Errorf("%s: content %q, want nil", f.Path, contents[i])
		case ok && (contents[i] == nil || string(contents[i]) != w):
			t.Errorf("%s: content %q (nil %v), want %q", f.Path, contents[i], contents[i] == nil, w)
		case ok && DigestBytes(contents[i]) != f.Digest:
			t.Errorf("%s: content does not hash to the entry's digest", f.Path)
		}
		delete(want, f.Path)
	}
	if len(want) != 0 {
		t.Errorf("entries missing: %v", want)
	}
	plain, err := m.Expand(root, patterns)
	if err != nil || !slices.Equal(plain, files) {
		t.Errorf("Expand = %v, %v; want ExpandContent's entries %v", plain, err, files)
	}
}

// TestRFileStatMatchesLstat checks that the stat data of a file opened for
// hashing equals what the memo compares it with, statOf of an Lstat, for
// plain, executable, setuid, setgid and sticky files: an entry hashed
// through one must match through the other.
func TestRFileStatMatchesLstat(t *testing.T) {
	root := t.TempDir()
	modes := []fs.FileMode{0o644, 0o755, 0o600 | fs.ModeSetuid, 0o750 | fs.ModeSetgid, 0o644 | fs.ModeSticky}
	for i, mode := range modes {
		full := writeFile(t, root, fmt.Sprintf("f%d", i), strings.Repeat("x", i*1000), 0o644, past)
		if err := os.Chmod(full, mode); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(full)
		if err != nil {
			t.Fatal(err)
		}
		f, err := openR(full)
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.stat()
		f.close()
		if err != nil || got != statOf(fi) {
			t.Errorf("mode %v: rfile stat = %+v, %v; statOf(Lstat) = %+v", mode, got, err, statOf(fi))
		}
	}
}
