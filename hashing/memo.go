package hashing

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rustypipe/rustypipe/internal/atomicfile"
	"github.com/rustypipe/rustypipe/internal/binread"
)

// memoMaxIdle is how long an entry that no lookup used survives in the saved
// memo, so that deleted and renamed files do not accumulate forever.
const memoMaxIdle = 30 * 24 * time.Hour

// memoSmallFile and memoDeferMax bound the changes SaveIfWorthwhile may
// leave unsaved:
// hashing eight files of 4 KiB again costs well under what rewriting a
// memo of thousands of entries does.
const (
	memoSmallFile = 4 << 10
	memoDeferMax  = 8
)

// memoUseTick is the resolution of an entry's last-use time: a hit refreshes
// it (and makes the memo worth saving) at most once a day.
const memoUseTick = 24 * time.Hour

// readBufSize is the read size when hashing a file. 1 MiB gives BLAKE3's
// SIMD code long runs of 1 KiB chunks and keeps syscalls per GiB near 1000.
const readBufSize = 1 << 20

// memoMagic and memoVersion open a memo file; anything else is foreign.
const (
	memoMagic   = "rustypipe statmemo\n"
	memoVersion = 1
)

// memoMaxPath bounds a path read from a memo file: a longer one means the
// file is not what it seems.
const memoMaxPath = 1 << 16

// smallReadBufSize is the read size for files no larger than it: most
// inputs and outputs are small, and a fresh 1 MiB buffer costs a short
// build hundreds of page faults.
const smallReadBufSize = 64 << 10

var (
	bufPool      = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}
	smallBufPool = sync.Pool{New: func() any { b := make([]byte, smallReadBufSize); return &b }}
	// digesterPool: a Digester holds 8 KiB of buffer; one per file hashed
	// was a cold build's largest source of garbage.
	digesterPool = sync.Pool{New: func() any { return NewDigester() }}
)

// fileStat is what the memo compares to decide that a file is unchanged.
type fileStat struct {
	size    int64
	mtimeNs int64
	ctimeNs int64 // 0 where the platform has none
	ino     uint64
	dev     uint64
	mode    uint32 // fs.FileMode bits, type included
}

// racy reports whether the file was modified within the racy window of
// now (racy.go): its stat data cannot vouch for its content (a rewrite
// within the timestamp granularity could keep them), so its digest is not
// trusted.
func (s fileStat) racy(now time.Time) bool {
	return s.mtimeNs >= now.Add(-racyWindow(s.dev, s.ctimeNs)).UnixNano()
}

func statOf(fi fs.FileInfo) fileStat {
	dev, ino, ctime := sysStat(fi)
	return fileStat{
		size:    fi.Size(),
		mtimeNs: fi.ModTime().UnixNano(),
		ctimeNs: ctime,
		ino:     ino,
		dev:     dev,
		mode:    uint32(fi.Mode()),
	}
}

type memoEntry struct {
	st      fileStat
	digest  Digest
	usedAt  int64 // unix seconds of the last hit or hash, at memoUseTick resolution
	trusted bool  // false when loaded but racy against the memo file's write time
}

// Memo digests files and remembers each digest under the file's stat data
// (size, mtime, inode, device, mode and, where available, ctime), so that an
// unchanged file is not read again, in this process or the next one. It is
// safe for concurrent use by many goroutines. Lookups never block on I/O of
// other lookups: the lock is not held while a file is read.
type Memo struct {
	path string // "" for a memo that is never saved

	mu      sync.Mutex
	entries map[string]*memoEntry // by filepath.Join(root, rel)
	dirty   bool                  // the file differs from entries
	minor   int                   // changes since the last save, all minor (see Save)
	major   bool                  // a change since the last save that Save must write

	now     func() time.Time  // wall clock; replaced in tests
	hashed  atomic.Int64      // files read and hashed (symlinks excluded)
	midRead func(full string) // test hook: runs after the first read of a file

	loadOnce sync.Once
	loader   func() // loads a lazy memo (NewLazyMemo); nil for others
}

// NewLazyMemo is OpenMemo that reads the file only when an entry is first
// needed. A file modified within the racy window needs none: no trusted
// entry can match its stat data (trusted entries are older than that), and
// its digest will not be trusted either, so a build that only hashes files
// it just changed never reads the memo. onErr, if set, is told when the
// file exists but cannot be read; the memo is then empty.
func NewLazyMemo(path string, onErr func(error)) *Memo {
	m := &Memo{path: path, entries: map[string]*memoEntry{}, now: time.Now}
	m.loader = func() {
		entries, err := readMemoFile(path)
		if err != nil {
			if onErr != nil {
				onErr(err)
			}
			return
		}
		m.mu.Lock()
		m.entries = entries // nothing was added before the load
		m.mu.Unlock()
	}
	return m
}

// Load reads a lazy memo's file now if it was not read yet, so that the
// reading can overlap other work; it does nothing for other memos.
func (m *Memo) Load() {
	if m.loader != nil {
		m.loadOnce.Do(m.loader)
	}
}

// OpenMemo loads the memo saved at path (typically .rustypipe/statmemo). A
// missing, corrupt, truncated, foreign or other-version file gives an empty
// memo, not an error; the error is for a file that exists but cannot be read
// (for example permission denied). An empty path gives an in-memory memo
// whose Save does nothing. Close is not needed; call Save to persist.
func OpenMemo(path string) (*Memo, error) {
	entries, err := readMemoFile(path)
	if err != nil {
		return nil, err
	}
	return &Memo{path: path, entries: entries, now: time.Now}, nil
}

// readMemoFile reads the entries saved at path: none for "", a missing
// file or one that does not decode; an error for a file that exists but
// cannot be read.
func readMemoFile(path string) (map[string]*memoEntry, error) {
	empty := map[string]*memoEntry{}
	if path == "" {
		return empty, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return empty, nil
	}
	if err != nil {
		return nil, fmt.Errorf("hashing: open memo: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("hashing: open memo: %w", err)
	}
	var buf bytes.Buffer
	buf.Grow(int(fi.Size()) + bytes.MinRead) // one read, no regrowth
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, fmt.Errorf("hashing: open memo: read %s: %w", path, err)
	}
	entries, ok := decodeMemo(buf.Bytes())
	if !ok {
		return empty, nil // the file is rewritten by the next Save
	}
	// Entries were trusted against the wall clock when hashed; check them
	// again against the memo file's mtime, which comes from the file
	// system's clock, in case the two clocks disagree.
	memoSt := statOf(fi)
	noteFS(memoSt.dev, path)
	written := fi.ModTime().UnixNano()
	for _, e := range entries {
		e.trusted = e.st.mtimeNs < written-int64(racyWindow(e.st.dev, e.st.ctimeNs))
	}
	return entries, nil
}

// Digest returns the entry of the file at rel under root. rel is relative,
// "/"-separated and may not leave root; the returned Path is its clean form.
// A regular file is hashed unless the memo holds a trusted digest for its
// current stat data; a symlink is not followed: its Digest is that of its
// target string and its Mode is ModeSymlink. Directories and other special
// files are an error. A missing file gives an error that matches
// fs.ErrNotExist. Safe for concurrent use.
func (m *Memo) Digest(root, rel string) (FileEntry, error) {
	e, _, err := m.digest(root, rel, -1)
	return e, err
}

// digest is Digest keeping the content of a file of at most keep bytes
// that it reads (keep < 0: none).
func (m *Memo) digest(root, rel string, keep int64) (FileEntry, []byte, error) {
	clean, err := cleanRel(rel)
	if err != nil {
		return FileEntry{}, nil, fmt.Errorf("hashing: digest %s: %w", rel, err)
	}
	full := filepath.Join(root, filepath.FromSlash(clean))
	fi, err := os.Lstat(full)
	if err != nil {
		return FileEntry{}, nil, fmt.Errorf("hashing: digest %s: %w", clean, err)
	}
	return m.digestInfo(full, clean, fi, keep)
}

// digestInfo is digest for a file whose Lstat result is at hand.
func (m *Memo) digestInfo(full, clean string, fi fs.FileInfo, keep int64) (FileEntry, []byte, error) {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(full)
		if err != nil {
			return FileEntry{}, nil, fmt.Errorf("hashing: digest %s: %w", clean, err)
		}
		return FileEntry{Path: clean, Mode: ModeSymlink, Digest: DigestBytes([]byte(filepath.ToSlash(target)))}, nil, nil
	case fi.IsDir():
		return FileEntry{}, nil, fmt.Errorf("hashing: digest %s: is a directory", clean)
	case !fi.Mode().IsRegular():
		return FileEntry{}, nil, fmt.Errorf("hashing: digest %s: not a regular file (%v)", clean, fi.Mode().Type())
	}

	st := statOf(fi)
	noteFS(st.dev, full)
	now := m.now()
	// A file modified within the racy window cannot match a trusted entry
	// (see NewLazyMemo): it is hashed without consulting the entries.
	racy := st.racy(now)
	if !racy {
		m.Load()
		m.mu.Lock()
		if e, ok := m.entries[full]; ok && e.trusted && e.st == st {
			if tick := now.Unix(); tick-e.usedAt >= int64(memoUseTick/time.Second) {
				e.usedAt = tick
				m.dirty, m.major = true, true
			}
			m.mu.Unlock()
			return FileEntry{Path: clean, Mode: uint32(fi.Mode().Perm()), Digest: e.digest}, nil, nil
		}
		m.mu.Unlock()
	}

	d, pre, stable, content, err := m.hashFile(full, now, keep)
	if err != nil {
		return FileEntry{}, nil, fmt.Errorf("hashing: digest %s: %w", clean, err)
	}
	// Trust the result only if the file did not change while it was read
	// and its mtime is old enough that a later rewrite must change it.
	trust := stable && !pre.racy(now)
	if !trust && racy {
		return FileEntry{Path: clean, Mode: pre.mode & uint32(fs.ModePerm), Digest: d}, content, nil
	}
	m.Load()
	m.mu.Lock()
	if trust {
		m.entries[full] = &memoEntry{st: pre, digest: d, usedAt: now.Unix(), trusted: true}
		m.dirty = true
		if pre.size > memoSmallFile {
			m.major = true
		} else {
			m.minor++
		}
	} else if _, ok := m.entries[full]; ok {
		// The saved entry no longer matches the file, and so is never used.
		delete(m.entries, full)
		m.dirty = true
		m.minor++
	}
	m.mu.Unlock()
	return FileEntry{Path: clean, Mode: pre.mode & uint32(fs.ModePerm), Digest: d}, content, nil
}

// hashFile reads and hashes the file at full. pre is the stat data of the
// open file before reading; stable reports that it was the same after. A
// file modified within the racy window of now is never trusted, so for it
// stable is false without a second look. content is a copy of what was
// hashed when that is at most keep bytes, else nil.
func (m *Memo) hashFile(full string, now time.Time, keep int64) (d Digest, pre fileStat, stable bool, content []byte, err error) {
	f, err := openR(full)
	if err != nil {
		return d, pre, false, nil, err
	}
	defer f.close()
	if pre, err = f.stat(); err != nil {
		return d, pre, false, nil, err
	}
	if mode := fs.FileMode(pre.mode); !mode.IsRegular() { // replaced since Lstat
		return d, pre, false, nil, fmt.Errorf("not a regular file (%v)", mode.Type())
	}
	m.hashed.Add(1)

	pool := &bufPool
	if pre.size < smallReadBufSize {
		pool = &smallBufPool
	}
	bp := pool.Get().(*[]byte)
	defer pool.Put(bp)
	buf := *bp
	dg := digesterPool.Get().(*Digester)
	defer digesterPool.Put(dg)
	dg.Reset()
	// A plain read loop, which reads the size the stat gave and no
	// further: the stat after the read tells whether the file grew, shrank
	// or was rewritten meanwhile, so the read that would return end-of-file
	// is not needed.
	if pre.size <= keep {
		content = make([]byte, 0, pre.size)
	}
	for dg.Size() < pre.size {
		n, rerr := f.read(buf[:min(int64(len(buf)), pre.size-dg.Size())])
		dg.Write(buf[:n])
		if content != nil {
			content = append(content, buf[:n]...)
		}
		if m.midRead != nil && dg.Size() == int64(n) {
			m.midRead(full)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return d, pre, false, nil, rerr
		}
	}
	if pre.racy(now) {
		return dg.Sum(), pre, false, content, nil
	}
	post, err := f.stat()
	if err != nil {
		return d, pre, false, nil, err
	}
	return dg.Sum(), pre, post == pre && dg.Size() == pre.size, content, nil
}

// SaveIfWorthwhile is Save, except that it leaves the file as it is when
// the only changes since the last save are a few minor ones (at most
// memoDeferMax digests of files of at most memoSmallFile bytes, or dropped
// entries that no longer match their file): rewriting the whole memo costs
// more than hashing those few small files again next time. A build that
// re-runs one small task of a thousand then writes no memo.
func (m *Memo) SaveIfWorthwhile() error {
	m.mu.Lock()
	minor := !m.major && m.minor <= memoDeferMax
	m.mu.Unlock()
	if minor {
		return nil
	}
	return m.Save()
}

// Save writes the memo to its path atomically (temporary file in the same
// directory, then rename), creating the directory if needed. Entries no
// lookup used for 30 days are dropped. It does nothing when nothing changed
// since the last Open or Save, or for an in-memory memo. The file is not
// fsynced: a torn file fails its checksum and is ignored by OpenMemo. Two
// processes saving at once each write a whole file; the last rename wins.
// Safe for concurrent use with Digest.
func (m *Memo) Save() error {
	if m.path == "" {
		return nil
	}
	m.mu.Lock()
	if !m.dirty { // a lazy memo is dirty only once loaded
		m.mu.Unlock()
		return nil
	}
	data := encodeMemo(m.entries, m.now().Add(-memoMaxIdle).Unix())
	m.dirty, m.major, m.minor = false, false, 0
	m.mu.Unlock()

	if err := atomicfile.Write(m.path, data, 0o600); err != nil {
		m.mu.Lock()
		m.dirty, m.major = true, true
		m.mu.Unlock()
		return fmt.Errorf("hashing: save memo: %w", err)
	}
	return nil
}

// encodeMemo serialises entries used at or after minUsed:
//
//	magic "rustypipe statmemo\n", uvarint version, uvarint count,
//	count × entry, 32-byte BLAKE3 of all preceding bytes
//
// entry: uvarint len(path), path, varint size, varint mtime ns,
// varint ctime ns, uvarint inode, uvarint device, uvarint mode,
// 32-byte digest, varint last-use unix seconds.
func encodeMemo(entries map[string]*memoEntry, minUsed int64) []byte {
	keep := make([]string, 0, len(entries))
	for p, e := range entries {
		if e.trusted && e.usedAt >= minUsed {
			keep = append(keep, p)
		}
	}
	buf := make([]byte, 0, 32+len(keep)*96)
	buf = append(buf, memoMagic...)
	buf = binary.AppendUvarint(buf, memoVersion)
	buf = binary.AppendUvarint(buf, uint64(len(keep)))
	for _, p := range keep {
		e := entries[p]
		buf = binary.AppendUvarint(buf, uint64(len(p)))
		buf = append(buf, p...)
		buf = binary.AppendVarint(buf, e.st.size)
		buf = binary.AppendVarint(buf, e.st.mtimeNs)
		buf = binary.AppendVarint(buf, e.st.ctimeNs)
		buf = binary.AppendUvarint(buf, e.st.ino)
		buf = binary.AppendUvarint(buf, e.st.dev)
		buf = binary.AppendUvarint(buf, uint64(e.st.mode))
		buf = append(buf, e.digest[:]...)
		buf = binary.AppendVarint(buf, e.usedAt)
	}
	sum := DigestBytes(buf)
	return append(buf, sum[:]...)
}

// decodeMemo parses data written by encodeMemo. ok is false for anything
// else; it never panics.
//
// The paths share data's memory: data must not change afterwards.
func decodeMemo(data []byte) (entries map[string]*memoEntry, ok bool) {
	if len(data) < len(memoMagic)+Size || !bytes.HasPrefix(data, []byte(memoMagic)) {
		return nil, false
	}
	body, sum := data[:len(data)-Size], data[len(data)-Size:]
	if d := DigestBytes(body); !bytes.Equal(d[:], sum) {
		return nil, false
	}
	r := binread.New(body[len(memoMagic):])
	if r.Uvarint() != memoVersion {
		return nil, false
	}
	count := r.Count() // an entry takes more than one byte
	if r.Bad() {
		return nil, false
	}
	entries = make(map[string]*memoEntry, count)
	slab := make([]memoEntry, count) // one allocation, not one per entry
	for i := range slab {
		p := r.Str() // shares data (see above)
		if len(p) > memoMaxPath {
			return nil, false
		}
		e := &slab[i]
		e.st.size = r.Varint()
		e.st.mtimeNs = r.Varint()
		e.st.ctimeNs = r.Varint()
		e.st.ino = r.Uvarint()
		e.st.dev = r.Uvarint()
		mode := r.Uvarint()
		copy(e.digest[:], r.Bytes(Size))
		e.usedAt = r.Varint()
		if r.Bad() || mode > 1<<32-1 {
			return nil, false
		}
		e.st.mode = uint32(mode)
		entries[p] = e
	}
	if !r.Done() {
		return nil, false
	}
	return entries, true
}

// cleanRel checks that rel is a relative "/"-separated path inside its root
// and returns its clean form.
func cleanRel(rel string) (string, error) {
	switch {
	case rel == "":
		return "", errors.New("empty path")
	case isAbsPattern(rel):
		return "", errors.New("path is absolute")
	}
	clean := path.Clean(rel)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", errors.New("path escapes the workspace")
	}
	if clean == "." {
		return "", errors.New("path names the workspace root")
	}
	if !filepath.IsLocal(filepath.FromSlash(clean)) { // e.g. `a\..\..` or a reserved name on Windows
		return "", errors.New("path is not local to the workspace")
	}
	return clean, nil
}
