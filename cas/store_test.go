package cas

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

func TestOpenWritesLayout(t *testing.T) {
	dir := t.TempDir()
	openT(t, Options{Dir: dir})
	readme, err := os.ReadFile(filepath.Join(dir, readmeName))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"rustypipe", "safe to delete", "cache gc"} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("README.txt lacks %q", want)
		}
	}
	format, err := os.ReadFile(filepath.Join(dir, versionDir, formatName))
	if err != nil || strings.TrimSpace(string(format)) != "1" {
		t.Errorf("FORMAT = %q, %v; want 1", format, err)
	}
	for _, d := range []string{indexName, blobsName, tmpName} {
		if fi, err := os.Stat(filepath.Join(dir, versionDir, d)); err != nil || !fi.IsDir() {
			t.Errorf("v1/%s: %v", d, err)
		}
	}
}

func TestBlobRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, Options{Dir: dir})
	ctx := context.Background()
	inline := int(s.inline)
	cases := []struct {
		name   string
		size   int
		asFile bool // expected to live in v1/blobs
	}{
		{"empty", 0, false},
		{"one byte", 1, false},
		{"just under inline", inline - 1, false},
		{"inline limit", inline, false},
		{"just over inline", inline + 1, true},
		{"1 MiB", 1 << 20, true},
	}
	puts := []struct {
		name string
		put  func(t *testing.T, data []byte) BlobRef
	}{
		{"PutBlob", func(t *testing.T, data []byte) BlobRef { return putT(t, s, data) }},
		{"PutBlob unknown size", func(t *testing.T, data []byte) BlobRef {
			if err := s.PutBlob(ctx, sum(data), -1, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			return BlobRef{Digest: sum(data), Size: int64(len(data))}
		}},
		{"PutReader", func(t *testing.T, data []byte) BlobRef {
			ref, err := s.PutReader(ctx, bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			return ref
		}},
		{"PutFile", func(t *testing.T, data []byte) BlobRef {
			p := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			ref, err := s.PutFile(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			return ref
		}},
	}
	for pi, p := range puts {
		for ci, c := range cases {
			t.Run(p.name+"/"+c.name, func(t *testing.T) {
				data := content(uint64(pi*100+ci), c.size)
				if c.size == 0 {
					data = nil
				}
				ref := p.put(t, data)
				want := BlobRef{Digest: sum(data), Size: int64(len(data))}
				if ref != want {
					t.Fatalf("ref = %v, want %v", ref, want)
				}
				ok, err := s.HasBlob(ctx, ref.Digest)
				if err != nil || !ok {
					t.Fatalf("HasBlob = %v, %v", ok, err)
				}
				rc, n, err := s.OpenBlob(ctx, ref.Digest)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Fatal(err)
				}
				if n != int64(len(data)) || !bytes.Equal(got, data) {
					t.Fatalf("read %d bytes (size %d), want %d", len(got), n, len(data))
				}
				_, statErr := os.Stat(s.blobPath(ref.Digest))
				if isFile := statErr == nil; isFile != c.asFile {
					t.Errorf("stored as file = %v, want %v", isFile, c.asFile)
				}
			})
		}
	}
	if left := tmpEntries(t, dir); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestPutBlobRejectsWrongContent(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, Options{Dir: dir})
	ctx := context.Background()
	for _, n := range []int{100, 100 << 10} {
		data := content(uint64(n), n)
		good := sum(data)
		other := sum(append([]byte("x"), data...))
		cases := []struct {
			name string
			d    [32]byte
			size int64
			body []byte
		}{
			{"wrong digest", other, int64(n), data},
			{"short content", good, int64(n), data[:n-1]},
			{"long content", good, int64(n - 1), data},
			{"flipped byte", good, int64(n), append(append([]byte{}, data[:n-1]...), data[n-1]^1)},
			{"nonempty for empty digest", EmptyBlob.Digest, 0, []byte("x")},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				err := s.PutBlob(ctx, c.d, c.size, bytes.NewReader(c.body))
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("PutBlob = %v, want ErrCorrupt", err)
				}
				if c.d != EmptyBlob.Digest {
					if ok, _ := s.HasBlob(ctx, c.d); ok {
						t.Error("blob stored despite mismatch")
					}
				}
				if left := tmpEntries(t, dir); len(left) != 0 {
					t.Errorf("temporary files left: %v", left)
				}
			})
		}
	}
}

// failingReader returns n bytes and then an error.
type failingReader struct {
	n   int
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, f.err
	}
	k := min(len(p), f.n)
	for i := range p[:k] {
		p[i] = 'a'
	}
	f.n -= k
	return k, nil
}

func TestPutBlobFailingReaderWritesNothing(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, Options{Dir: dir})
	ctx := context.Background()
	boom := errors.New("boom")
	for _, n := range []int{10, 1 << 20} {
		d := sum(bytes.Repeat([]byte("a"), 2*n))
		err := s.PutBlob(ctx, d, int64(2*n), &failingReader{n: n, err: boom})
		if !errors.Is(err, boom) {
			t.Fatalf("PutBlob = %v, want boom", err)
		}
		if ok, _ := s.HasBlob(ctx, d); ok {
			t.Error("blob stored after failed read")
		}
	}
	if _, err := s.PutReader(ctx, &failingReader{n: 1 << 20, err: boom}); !errors.Is(err, boom) {
		t.Fatalf("PutReader = %v, want boom", err)
	}
	if left := tmpEntries(t, dir); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if n := countFiles(t, filepath.Join(dir, versionDir, blobsName)); n != 0 {
		t.Errorf("%d blob files after failed puts", n)
	}
}

func TestPutBlobCancelled(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, Options{Dir: dir})
	ctx, cancel := context.WithCancel(context.Background())
	r := &cancelAfter{r: bytes.NewReader(content(1, 4<<20)), after: 1 << 20, cancel: cancel}
	_, err := s.PutReader(ctx, r)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("PutReader = %v, want context.Canceled", err)
	}
	if left := tmpEntries(t, dir); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

type cancelAfter struct {
	r      io.Reader
	after  int
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.after -= n
	if c.after <= 0 {
		c.cancel()
	}
	return n, err
}

func TestOpenBlobDetectsCorruptFile(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, Options{Dir: dir})
	ctx := context.Background()
	data := content(7, 200<<10)
	ref := putT(t, s, data)
	flipByte(t, s.blobPath(ref.Digest))

	got, err := readBlob(s, ref.Digest)
	if !errors.Is(err, ErrCorrupt) || !errors.Is(err, ErrNotFound) {
		t.Fatalf("read = %v, want ErrCorrupt matching ErrNotFound", err)
	}
	if len(got) != len(data) {
		t.Logf("read %d bytes before the error", len(got))
	}
	if _, err := os.Stat(s.blobPath(ref.Digest)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("corrupt blob file still present: %v", err)
	}
	if ok, _ := s.HasBlob(ctx, ref.Digest); ok {
		t.Error("HasBlob true after corruption was found")
	}
	// Putting it again repairs the store.
	putT(t, s, data)
	if got, err := readBlob(s, ref.Digest); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after re-put: %v", err)
	}
}

func TestOpenBlobDetectsCorruptInline(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, Options{Dir: dir})
	ctx := context.Background()
	data := content(8, 1000)
	ref := putT(t, s, data)
	bad := append([]byte{}, data...)
	bad[500] ^= 1
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(blobKey(ref.Digest), bad) }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.OpenBlob(ctx, ref.Digest); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("OpenBlob = %v, want ErrCorrupt", err)
	}
	if ok, _ := s.HasBlob(ctx, ref.Digest); ok {
		t.Error("corrupt inline blob still present")
	}
	if _, _, err := s.OpenBlob(ctx, ref.Digest); !errors.Is(err, ErrNotFound) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("second OpenBlob = %v, want plain ErrNotFound", err)
	}
}

func TestOpenBlobMissing(t *testing.T) {
	s := openT(t, Options{Dir: t.TempDir()})
	if _, _, err := s.OpenBlob(context.Background(), sum([]byte("nope"))); !errors.Is(err, ErrNotFound) {
		t.Fatalf("OpenBlob = %v, want ErrNotFound", err)
	}
	if ok, err := s.HasBlob(context.Background(), sum([]byte("nope"))); ok || err != nil {
		t.Fatalf("HasBlob = %v, %v", ok, err)
	}
}

func TestActionRoundTrip(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock()
	ctx := context.Background()
	s := openT(t, Options{Dir: dir, Clock: clock.Now})
	big := content(1, 100<<10)
	small := content(2, 10)
	a := &ActionResult{
		Key:    key("build"),
		Task:   "build",
		Stdout: putT(t, s, []byte("hello\n")),
		Stderr: EmptyBlob,
		Files: []OutputFile{
			{Path: "bin/app", Mode: 0o755, Digest: sum(big), Size: int64(len(big))},
			{Path: "bin/small", Mode: 0o600, Digest: sum(small), Size: int64(len(small))},
			{Path: "bin", Mode: fs.ModeDir | 0o755},
			{Path: "bin/link", Mode: fs.ModeSymlink | 0o777, LinkTarget: "app"},
		},
		ExitCode: 0,
		Preimage: []byte(`{"cmd":"go build"}`),
		Duration: 1500 * time.Millisecond,
	}
	putT(t, s, big)
	putT(t, s, small)
	if err := s.PutAction(ctx, a); err != nil {
		t.Fatal(err)
	}
	if !a.CreatedAt.Equal(clock.Now()) || !a.LastUsed.Equal(clock.Now()) {
		t.Errorf("PutAction set CreatedAt %v, LastUsed %v; want %v", a.CreatedAt, a.LastUsed, clock.Now())
	}
	check := func(s *Store) {
		t.Helper()
		got, err := s.GetAction(ctx, a.Key)
		if err != nil {
			t.Fatal(err)
		}
		want := *a
		want.LastUsed = got.LastUsed
		got.CreatedAt = got.CreatedAt.UTC()
		want.CreatedAt = want.CreatedAt.UTC()
		if !reflect.DeepEqual(got, &want) {
			t.Errorf("GetAction =\n%+v\nwant\n%+v", got, &want)
		}
	}
	check(s)
	s.Close()
	if _, err := s.GetAction(ctx, a.Key); !errors.Is(err, ErrClosed) {
		t.Errorf("GetAction after Close = %v, want ErrClosed", err)
	}
	check(openT(t, Options{Dir: dir, Clock: clock.Now}))
}

func TestGetActionMiss(t *testing.T) {
	s := openT(t, Options{Dir: t.TempDir()})
	_, err := s.GetAction(context.Background(), key("none"))
	if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("GetAction = %v, want ErrNotFound", err)
	}
}

func TestPutActionNeedsBlobs(t *testing.T) {
	s := openT(t, Options{Dir: t.TempDir()})
	ctx := context.Background()
	stdout := putT(t, s, []byte("out"))
	missing := []byte("never stored")
	cases := map[string]*ActionResult{
		"stdout": {Key: key("a"), Stdout: BlobRef{Digest: sum(missing), Size: 12}},
		"stderr": {Key: key("b"), Stdout: stdout, Stderr: BlobRef{Digest: sum(missing), Size: 12}},
		"file": {Key: key("c"), Stdout: stdout, Files: []OutputFile{
			{Path: "x", Mode: 0o644, Digest: sum(missing), Size: 12}}},
	}
	for name, a := range cases {
		t.Run(name, func(t *testing.T) {
			if err := s.PutAction(ctx, a); !errors.Is(err, ErrNotFound) {
				t.Fatalf("PutAction = %v, want ErrNotFound", err)
			}
			if _, err := s.GetAction(ctx, a.Key); !errors.Is(err, ErrNotFound) {
				t.Fatalf("action written despite missing blob: %v", err)
			}
		})
	}
}

func TestPutActionValidates(t *testing.T) {
	s := openT(t, Options{Dir: t.TempDir()})
	ctx := context.Background()
	cases := []struct {
		name string
		f    OutputFile
	}{
		{"absolute", OutputFile{Path: "/etc/passwd", Mode: fs.ModeDir}},
		{"dotdot", OutputFile{Path: "../x", Mode: fs.ModeDir}},
		{"inner dotdot", OutputFile{Path: "a/../../x", Mode: fs.ModeDir}},
		{"unclean", OutputFile{Path: "a//b", Mode: fs.ModeDir}},
		{"dot", OutputFile{Path: ".", Mode: fs.ModeDir}},
		{"empty", OutputFile{Path: "", Mode: fs.ModeDir}},
		{"backslash", OutputFile{Path: `a\b`, Mode: fs.ModeDir}},
		{"drive", OutputFile{Path: "C:/x", Mode: fs.ModeDir}},
		{"symlink without target", OutputFile{Path: "l", Mode: fs.ModeSymlink}},
		{"device", OutputFile{Path: "d", Mode: fs.ModeDevice}},
		{"negative size", OutputFile{Path: "f", Mode: 0o644, Digest: EmptyBlob.Digest, Size: -1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := &ActionResult{Key: key(c.name), Files: []OutputFile{c.f}}
			if err := s.PutAction(ctx, a); err == nil {
				t.Fatal("PutAction accepted an invalid action")
			}
		})
	}
	dup := &ActionResult{Key: key("dup"), Files: []OutputFile{{Path: "d", Mode: fs.ModeDir}, {Path: "d", Mode: fs.ModeDir}}}
	if err := s.PutAction(ctx, dup); err == nil {
		t.Error("PutAction accepted a duplicate path")
	}
}

func TestGetActionWithVanishedBlobIsMiss(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, Options{Dir: dir})
	ctx := context.Background()
	file := content(3, 64<<10)
	a := simpleAction(t, s, "t", []byte("out"), file)
	if err := os.Remove(s.blobPath(sum(file))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAction(ctx, a.Key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetAction = %v, want ErrNotFound", err)
	}
	if n := len(listKeys(t, s)); n != 0 {
		t.Errorf("dead action still listed (%d actions)", n)
	}
}

func TestCorruptActionRecord(t *testing.T) {
	ctx := context.Background()
	for name, val := range map[string][]byte{
		"garbage":     []byte("\x00\x01garbage{"),
		"empty":       {},
		"bad version": []byte(`{"v":99}`),
		"bad digest":  []byte(`{"v":1,"stdout":{"d":"zz","s":1}}`),
		"bad path":    []byte(`{"v":1,"files":[{"p":"../x","m":2147483648}]}`),
		"unknown":     []byte(`{"v":1,"surprise":true}`),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, Options{Dir: dir})
			simpleAction(t, s, "good", []byte("o"), []byte("f"))
			k := key("bad")
			// Written behind the store's back, as damage would be; the key
			// goes into the store's filter as a put would have put it.
			if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(actionKey(k), val) }); err != nil {
				t.Fatal(err)
			}
			s.filterAdd(k)
			if got := listKeys(t, s); len(got) != 1 || got[key("good")] == nil {
				t.Errorf("List = %d actions, want only the good one", len(got))
			}
			var problems []Problem
			res, err := s.Verify(ctx, func(p Problem) { problems = append(problems, p) })
			if err != nil {
				t.Fatal(err)
			}
			if res.BadActions != 1 || len(problems) != 1 || problems[0].ID != k {
				t.Errorf("Verify = %+v, problems %v; want the bad action", res, problems)
			}
			// Put it back and read it: a corrupt record is a miss.
			s.db.Update(func(txn *badger.Txn) error { return txn.Set(actionKey(k), val) })
			_, err = s.GetAction(ctx, k)
			if !errors.Is(err, ErrCorrupt) || !errors.Is(err, ErrNotFound) {
				t.Fatalf("GetAction = %v, want ErrCorrupt matching ErrNotFound", err)
			}
			if _, err := s.GetAction(ctx, k); !errors.Is(err, ErrNotFound) || errors.Is(err, ErrCorrupt) {
				t.Fatalf("second GetAction = %v, want the record dropped", err)
			}
			if _, err := s.GetAction(ctx, key("good")); err != nil {
				t.Fatalf("good action: %v", err)
			}
		})
	}
}

func TestDeleteAction(t *testing.T) {
	s := openT(t, Options{Dir: t.TempDir()})
	ctx := context.Background()
	a := simpleAction(t, s, "x", []byte("o"), []byte("f"))
	if err := s.DeleteAction(ctx, a.Key); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAction(ctx, a.Key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetAction after delete = %v", err)
	}
	if err := s.DeleteAction(ctx, a.Key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second DeleteAction = %v, want ErrNotFound", err)
	}
}

func TestListChunks(t *testing.T) {
	s := openT(t, Options{Dir: t.TempDir()})
	n := listChunk*2 + 7
	want := map[[32]byte]bool{}
	for i := range n {
		a := &ActionResult{Key: sum([]byte{byte(i), byte(i >> 8)}), Stdout: EmptyBlob}
		if err := s.PutAction(context.Background(), a); err != nil {
			t.Fatal(err)
		}
		want[a.Key] = true
	}
	got := listKeys(t, s)
	if len(got) != n {
		t.Fatalf("List saw %d actions, want %d", len(got), n)
	}
	stop := errors.New("stop")
	calls := 0
	err := s.List(context.Background(), func(*ActionResult) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("List = %v after %d calls, want stop after 1", err, calls)
	}
}

func TestLastUsed(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock()
	ctx := context.Background()
	s := openT(t, Options{Dir: dir, Clock: clock.Now})
	a := simpleAction(t, s, "x", []byte("o"), []byte("f"))
	t0 := clock.Now()
	s.Close()

	stored := func() time.Time {
		t.Helper()
		s := openT(t, Options{Dir: dir, Clock: clock.Now, ReadOnly: true})
		defer s.Close()
		return listKeys(t, s)[a.Key].LastUsed
	}
	// A hit within lastUsedInterval writes nothing.
	clock.Advance(lastUsedInterval / 2)
	s = openT(t, Options{Dir: dir, Clock: clock.Now})
	got, err := s.GetAction(ctx, a.Key)
	if err != nil || !got.LastUsed.Equal(clock.Now()) {
		t.Fatalf("GetAction = %v, LastUsed %v", err, got.LastUsed)
	}
	s.Close()
	if u := stored(); !u.Equal(t0) {
		t.Errorf("stored LastUsed = %v, want unchanged %v", u, t0)
	}
	// A read-only hit writes nothing either.
	clock.Advance(2 * lastUsedInterval)
	s = openT(t, Options{Dir: dir, Clock: clock.Now, ReadOnly: true})
	if _, err := s.GetAction(ctx, a.Key); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if u := stored(); !u.Equal(t0) {
		t.Errorf("stored LastUsed = %v after read-only hit, want %v", u, t0)
	}
	// A stale one is recorded (at Close at the latest), and List sees it
	// before that.
	s = openT(t, Options{Dir: dir, Clock: clock.Now})
	if _, err := s.GetAction(ctx, a.Key); err != nil {
		t.Fatal(err)
	}
	if u := listKeys(t, s)[a.Key].LastUsed; !u.Equal(clock.Now()) {
		t.Errorf("List LastUsed = %v, want %v", u, clock.Now())
	}
	s.Close()
	if u := stored(); !u.Equal(clock.Now()) {
		t.Errorf("stored LastUsed = %v, want %v", u, clock.Now())
	}
	// Stored again later under its key (a forced re-run), the action was
	// last used when it was stored, not at the older use of the one it
	// replaced; a use after that is recorded as before.
	clock.Advance(time.Hour)
	s = openT(t, Options{Dir: dir, Clock: clock.Now})
	again := *a
	again.CreatedAt = time.Time{}
	if err := s.PutAction(ctx, &again); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if u := stored(); !u.Equal(clock.Now()) {
		t.Errorf("stored LastUsed after a new put = %v, want %v", u, clock.Now())
	}
	clock.Advance(2 * lastUsedInterval)
	s = openT(t, Options{Dir: dir, Clock: clock.Now})
	if _, err := s.GetAction(ctx, a.Key); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if u := stored(); !u.Equal(clock.Now()) {
		t.Errorf("stored LastUsed after a use of the new put = %v, want %v", u, clock.Now())
	}
}

func TestFormatFile(t *testing.T) {
	cases := []struct {
		content string
		want    error
		msg     string
	}{
		{"1\n", nil, ""},
		{" 1 ", nil, ""},
		{"2\n", ErrUnsupportedVersion, "unsupported cache version 2; this rustypipe reads 1"},
		{"999", ErrUnsupportedVersion, "version 999"},
		{"garbage\x00\xff", ErrCorrupt, "FORMAT"},
		{"", ErrCorrupt, "FORMAT"},
		{"0", ErrCorrupt, "FORMAT"},
		{"-3", ErrCorrupt, "FORMAT"},
		{strings.Repeat("9", 100), ErrCorrupt, "FORMAT"},
	}
	for _, c := range cases {
		t.Run(c.content, func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, Options{Dir: dir})
			simpleAction(t, s, "x", []byte("o"), []byte("f"))
			s.Close()
			if err := os.WriteFile(filepath.Join(dir, versionDir, formatName), []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, ro := range []bool{false, true} {
				s, err := Open(context.Background(), Options{Dir: dir, ReadOnly: ro})
				if c.want == nil {
					if err != nil {
						t.Fatalf("Open(ReadOnly=%v) = %v", ro, err)
					}
					s.Close()
					continue
				}
				if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
					t.Fatalf("Open(ReadOnly=%v) = %v; want %v mentioning %q", ro, err, c.want, c.msg)
				}
			}
		})
	}
}

func TestDamagedIndexTable(t *testing.T) {
	for name, damage := range map[string]func([]byte) []byte{
		"truncated":     func(b []byte) []byte { return b[:len(b)/2] },
		"tiny":          func(b []byte) []byte { return b[:3] },
		"garbage tail":  func(b []byte) []byte { copy(b[len(b)-16:], bytes.Repeat([]byte{0xff}, 16)); return b },
		"garbage index": func(b []byte) []byte { copy(b[len(b)-200:], bytes.Repeat([]byte{0x5a}, 150)); return b },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, Options{Dir: dir})
			for i := range 20 {
				simpleAction(t, s, string(rune('a'+i)), []byte("o"), content(uint64(i), 100))
			}
			s.Close()
			ssts, _ := filepath.Glob(filepath.Join(dir, versionDir, indexName, "*.sst"))
			if len(ssts) == 0 {
				t.Fatal("no index table written")
			}
			b, err := os.ReadFile(ssts[0])
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(ssts[0], damage(b), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err = Open(context.Background(), Options{Dir: dir})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded on a damaged index")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("Open = %v; want a damaged-index error", err)
			}
			t.Logf("Open: %v", err)
		})
	}
}

func TestGarbageManifest(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, Options{Dir: dir})
	simpleAction(t, s, "x", []byte("o"), []byte("f"))
	s.Close()
	flipByte(t, filepath.Join(dir, versionDir, indexName, "MANIFEST"))
	if s, err := Open(context.Background(), Options{Dir: dir}); err == nil {
		s.Close()
		t.Fatal("Open succeeded with a garbage MANIFEST")
	} else if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "cas: open") {
		t.Errorf("Open = %v, want ErrCorrupt naming the operation", err)
	}
}

func TestReadOnlyOption(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openT(t, Options{Dir: dir})
	a := simpleAction(t, s, "x", []byte("out"), content(1, 50<<10))
	s.Close()

	ro := openT(t, Options{Dir: dir, ReadOnly: true})
	if !ro.ReadOnly() {
		t.Fatal("ReadOnly() = false")
	}
	// A second read-only store shares the directory (not on Windows,
	// where badger has no read-only mode).
	if sharedLocks {
		openT(t, Options{Dir: dir, ReadOnly: true, LockWait: -1})
	}
	if _, err := ro.GetAction(ctx, a.Key); err != nil {
		t.Fatalf("GetAction: %v", err)
	}
	if got, err := readBlob(ro, a.Files[0].Digest); err != nil || len(got) != 50<<10 {
		t.Fatalf("read blob: %v", err)
	}
	writes := map[string]error{
		"PutBlob":      ro.PutBlob(ctx, sum([]byte("n")), 1, strings.NewReader("n")),
		"PutAction":    ro.PutAction(ctx, &ActionResult{Key: key("n"), Stdout: EmptyBlob}),
		"DeleteAction": ro.DeleteAction(ctx, a.Key),
	}
	_, writes["PutReader"] = ro.PutReader(ctx, strings.NewReader("n"))
	_, writes["GC"] = ro.GC(ctx, GCOptions{MaxSize: 1})
	for name, err := range writes {
		if !errors.Is(err, ErrReadOnly) {
			t.Errorf("%s = %v, want ErrReadOnly", name, err)
		}
	}
	if _, err := ro.GetAction(ctx, a.Key); err != nil {
		t.Errorf("action gone after refused writes: %v", err)
	}
}

func TestReadOnlyMissingCache(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "none")
	_, err := Open(context.Background(), Options{Dir: dir, ReadOnly: true})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open = %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Error("read-only Open created the directory")
	}
}

func TestCloseIdempotent(t *testing.T) {
	s := openT(t, Options{Dir: t.TempDir()})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if _, err := s.PutReader(context.Background(), strings.NewReader(strings.Repeat("x", 100<<10))); !errors.Is(err, ErrClosed) {
		t.Errorf("PutReader after Close = %v, want ErrClosed", err)
	}
}

func TestOptionsValidated(t *testing.T) {
	for _, o := range []Options{{}, {Dir: t.TempDir(), BlobInline: -1}, {Dir: t.TempDir(), BlobInline: 1 << 30}} {
		if s, err := Open(context.Background(), o); err == nil {
			s.Close()
			t.Errorf("Open(%+v) succeeded", o)
		}
	}
}

func TestStats(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, Options{Dir: dir})
	ctx := context.Background()
	simpleAction(t, s, "a", []byte("small"), content(1, 100<<10))
	simpleAction(t, s, "b", []byte("other"), content(2, 10))
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{Actions: 2, InlineBlobs: 3, InlineBytes: 20, FileBlobs: 1, FileBytes: 100 << 10}
	got := st
	got.IndexBytes, got.DiskBytes = 0, 0
	if got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
	du, err := DiskUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.DiskBytes <= 0 || st.IndexBytes <= 0 || st.IndexBytes > st.DiskBytes || st.DiskBytes < 100<<10 {
		t.Errorf("DiskBytes %d, IndexBytes %d (walk: %d)", st.DiskBytes, st.IndexBytes, du)
	}
}

func TestVerifyRemovesBadBlobsAndTheirActions(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, Options{Dir: dir})
	ctx := context.Background()
	badFile := simpleAction(t, s, "file", []byte("o1"), content(1, 100<<10))
	badInline := simpleAction(t, s, "inline", []byte("o2"), content(2, 100))
	good := simpleAction(t, s, "good", []byte("o3"), content(3, 100<<10))
	flipByte(t, s.blobPath(badFile.Files[0].Digest))
	d := badInline.Files[0].Digest
	s.db.Update(func(txn *badger.Txn) error { return txn.Set(blobKey(d), []byte("not it")) })
	stray := filepath.Join(dir, versionDir, blobsName, "zz", "stray")
	os.MkdirAll(filepath.Dir(stray), 0o777)
	os.WriteFile(stray, []byte("?"), 0o644)

	var problems []Problem
	res, err := s.Verify(ctx, func(p Problem) { problems = append(problems, p) })
	if err != nil {
		t.Fatal(err)
	}
	if res.BadBlobs != 2 || res.BadActions != 2 || res.StrayFiles != 1 || !res.Removed {
		t.Errorf("Verify = %+v; problems: %v", res, problems)
	}
	if len(problems) != 5 {
		t.Errorf("%d problems reported, want 5: %v", len(problems), problems)
	}
	keys := listKeys(t, s)
	if len(keys) != 1 || keys[good.Key] == nil {
		t.Errorf("after Verify %d actions remain, want only the good one", len(keys))
	}
	res, err = s.Verify(ctx, nil)
	if err != nil || res.BadBlobs+res.BadActions+res.StrayFiles != 0 {
		t.Errorf("second Verify = %+v, %v; want clean", res, err)
	}
	if res.Actions != 1 || res.Blobs != 4 { // good's two, and the bad actions' stdouts (unreferenced until GC)
		t.Errorf("second Verify checked %d actions, %d blobs", res.Actions, res.Blobs)
	}
}

func TestClear(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, Options{Dir: dir})
	simpleAction(t, s, "x", []byte("o"), content(1, 100<<10))
	if err := Clear(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("Clear while open = %v, want ErrLocked", err)
	}
	s.Close()
	os.MkdirAll(filepath.Join(dir, "v2", "index"), 0o777)
	if err := Clear(dir); err != nil {
		t.Fatal(err)
	}
	if n := countFiles(t, dir); n != 1 { // v1/lock
		t.Errorf("%d files left after Clear", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "v2")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("Clear left another format's directory")
	}
	s = openT(t, Options{Dir: dir})
	if _, err := s.GetAction(context.Background(), key("x")); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetAction after Clear = %v", err)
	}
	if err := Clear(filepath.Join(dir, "missing")); err != nil {
		t.Errorf("Clear(missing) = %v", err)
	}
}

func TestLevel0CompactedOnClose(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	maxL0 := 0
	for i := range 2 * l0CompactAt {
		s := openT(t, Options{Dir: dir})
		maxL0 = max(maxL0, level0Tables(s.db))
		simpleAction(t, s, string(rune('a'+i)), []byte{byte(i)}, content(uint64(i), 100))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if maxL0 > l0CompactAt {
		t.Errorf("level 0 reached %d tables; Close should compact at %d", maxL0, l0CompactAt)
	}
	s := openT(t, Options{Dir: dir})
	if n := len(listKeys(t, s)); n != 2*l0CompactAt {
		t.Errorf("%d actions after compactions, want %d", n, 2*l0CompactAt)
	}
	for i := range 2 * l0CompactAt {
		if _, err := s.GetAction(ctx, key(string(rune('a'+i)))); err != nil {
			t.Errorf("action %d: %v", i, err)
		}
	}
}

func TestPutBlobRepairsTruncatedFile(t *testing.T) {
	s := openT(t, Options{Dir: t.TempDir()})
	data := content(5, 100<<10)
	ref := putT(t, s, data)
	if err := os.Truncate(s.blobPath(ref.Digest), 10); err != nil {
		t.Fatal(err)
	}
	putT(t, s, data)
	if got, err := readBlob(s, ref.Digest); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after re-put: %d bytes, %v", len(got), err)
	}
}

// TestPutActionInline stores actions with their small blobs given inline,
// through a writable store and a Lookup store (whose journal a later
// writable store merges), and checks what it refuses: content the action
// does not name, content over the inline limit, and a named blob neither
// given nor stored, each leaving nothing behind.
func TestPutActionInline(t *testing.T) {
	ctx := context.Background()
	for _, lookup := range []bool{false, true} {
		dir := newCache(t)
		if lookup {
			openT(t, Options{Dir: dir}).Close() // a Lookup store needs an existing cache
		}
		s := openT(t, Options{Dir: dir, Lookup: lookup})
		stdout, file, stderr := []byte("7\n"), []byte("seven"), []byte{}
		big := content(2, DefaultBlobInline+1)
		bigRef := putT(t, s, big) // stored first, as a file
		a := &ActionResult{Key: key("inline"), Task: "inline",
			Stdout: BlobRef{Digest: sum(stdout), Size: 2}, Stderr: EmptyBlob,
			Files: []OutputFile{
				{Path: "out/7.txt", Mode: 0o644, Digest: sum(file), Size: int64(len(file))},
				{Path: "out/big", Mode: 0o644, Digest: bigRef.Digest, Size: bigRef.Size},
			}}
		if err := s.PutActionInline(ctx, a, [][]byte{stdout, file, stderr}); err != nil {
			t.Fatalf("lookup=%v: PutActionInline: %v", lookup, err)
		}
		check := func(s *Store) {
			t.Helper()
			if got, err := s.GetAction(ctx, a.Key); err != nil || len(got.Files) != 2 {
				t.Fatalf("lookup=%v: GetAction: %+v, %v", lookup, got, err)
			}
			for _, want := range [][]byte{stdout, file, big} {
				if got, err := readBlob(s, sum(want)); err != nil || !bytes.Equal(got, want) {
					t.Fatalf("lookup=%v: blob of %d bytes: %d bytes, %v", lookup, len(want), len(got), err)
				}
			}
		}
		check(s)

		// Each refused action has stdout of its own, given inline: none of
		// it may be stored.
		missing := []byte("never stored")
		for i, name := range []string{"unnamed content", "over the inline limit", "a named blob missing"} {
			out := []byte("stdout of " + name)
			b := &ActionResult{Key: key(name), Task: "bad", Stdout: BlobRef{Digest: sum(out), Size: int64(len(out))},
				Files: []OutputFile{{Path: "out/x", Mode: 0o644, Digest: sum(file), Size: int64(len(file))}}}
			contents := [][]byte{out, []byte("not named")}
			switch i {
			case 1:
				b.Files[0] = OutputFile{Path: "out/x", Mode: 0o644, Digest: sum(big), Size: int64(len(big))}
				contents = [][]byte{out, big}
			case 2:
				b.Files[0] = OutputFile{Path: "out/x", Mode: 0o644, Digest: sum(missing), Size: int64(len(missing))}
				contents = [][]byte{out}
			}
			if err := s.PutActionInline(ctx, b, contents); err == nil {
				t.Errorf("lookup=%v, %s: PutActionInline succeeded", lookup, name)
			} else if i == 2 && !errors.Is(err, ErrNotFound) {
				t.Errorf("lookup=%v, %s: %v, want ErrNotFound", lookup, name, err)
			}
			if _, err := s.GetAction(ctx, b.Key); !errors.Is(err, ErrNotFound) {
				t.Errorf("lookup=%v, %s: GetAction after the refusal: %v, want ErrNotFound", lookup, name, err)
			}
			if _, err := readBlob(s, sum(out)); !errors.Is(err, ErrNotFound) {
				t.Errorf("lookup=%v, %s: its inline stdout was stored: %v", lookup, name, err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		w := openT(t, Options{Dir: dir}) // merges the journal, if any
		check(w)
		if _, err := readBlob(w, sum([]byte("not named"))); !errors.Is(err, ErrNotFound) {
			t.Errorf("lookup=%v: the refused content was stored: %v", lookup, err)
		}
		w.Close()
	}
}

// TestCheckSpaceReusesRoomyReading checks when checkSpace asks the file
// system again: not within spaceTTL of a reading with room to spare, but
// at every call when room is short, and again once the reading is old.
func TestCheckSpaceReusesRoomyReading(t *testing.T) {
	s := openT(t, Options{Dir: t.TempDir()})
	defer s.Close()
	calls, free := 0, int64(0)
	old := statFree
	statFree = func(string) int64 { calls++; return free }
	defer func() { statFree = old }()

	free = 4 << 30
	s.spaceAt = time.Time{}
	for range 3 {
		if err := s.checkSpace(minFreeBytes); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 1 {
		t.Errorf("roomy: %d readings for 3 checks, want 1", calls)
	}
	s.spaceAt = s.spaceAt.Add(-2 * spaceTTL)
	s.checkSpace(minFreeBytes)
	if calls != 2 {
		t.Errorf("after spaceTTL: %d readings, want 2", calls)
	}

	free, calls = minFreeBytes+spaceSpare/2, 0 // room, but not to spare
	s.spaceAt = time.Time{}
	for range 3 {
		if err := s.checkSpace(minFreeBytes); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 3 {
		t.Errorf("short of spare room: %d readings for 3 checks, want 3", calls)
	}
	free = minFreeBytes - 1
	if err := s.checkSpace(minFreeBytes); !errors.Is(err, ErrNoSpace) {
		t.Errorf("full: %v, want ErrNoSpace", err)
	}
}

// TestContended checks that a writable store learns that another store,
// writable or Lookup, waits for the directory's lock, and no longer once
// that store has it.
func TestContended(t *testing.T) {
	for _, lookup := range []bool{false, true} {
		dir := newCache(t)
		a := openT(t, Options{Dir: dir})
		if a.Contended() {
			t.Fatalf("lookup=%v: contended with nobody waiting", lookup)
		}
		opened := make(chan *Store, 1)
		go func() {
			b, err := Open(context.Background(), Options{Dir: dir, Lookup: lookup, LockWait: time.Minute})
			if err != nil {
				t.Error(err)
			}
			opened <- b
		}()
		deadline := time.Now().Add(10 * time.Second)
		for !a.Contended() {
			if time.Now().After(deadline) {
				t.Fatalf("lookup=%v: the waiting store never showed", lookup)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		b := <-opened
		if b == nil {
			return
		}
		if !lookup {
			if b.Contended() {
				t.Errorf("contended after the waiter got the lock")
			}
		}
		b.Close()
	}
}
