package cas

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
)

// FormatVersion is the on-disk format this package reads and writes. It is
// recorded in v1/FORMAT; a directory recording a larger number was written
// by a newer rustypipe and is refused with ErrUnsupportedVersion.
const FormatVersion = 1

// Sentinel errors. Test with errors.Is.
var (
	// ErrNotFound reports a miss: no such action or blob. Errors that wrap
	// ErrCorrupt also match ErrNotFound, because corrupt content is a miss.
	ErrNotFound = errors.New("not found")
	// ErrCorrupt reports content that does not match its digest, a size
	// that does not match, or an index record that cannot be decoded.
	ErrCorrupt = errors.New("corrupt")
	// ErrUnsupportedVersion reports a cache directory written in a newer
	// format than this build reads.
	ErrUnsupportedVersion = errors.New("unsupported cache version")
	// ErrReadOnly reports a write to a store opened read-only, by option or
	// because the directory is not writable.
	ErrReadOnly = errors.New("cache is read-only")
	// ErrLocked reports that another process held the cache directory for
	// longer than Options.LockWait or the context allowed. The error is a
	// *LockedError.
	ErrLocked = errors.New("cache directory is in use")
	// ErrClosed reports a call on a closed Store.
	ErrClosed = errors.New("store is closed")
	// ErrNoSpace reports a write refused because the cache's file system
	// is nearly full (see minFreeBytes).
	ErrNoSpace = errors.New("not enough free disk space")
)

// minFreeBytes is the free space the index needs before a put. Badger
// writes its log and tables through memory maps of sparse files; when the
// disk is full, touching a new page kills the process with SIGBUS instead
// of returning an error. So the store checks free space first: puts need
// minFreeBytes (a memtable flush writes about 1 MiB, compactions more);
// deletions and opening writable need a quarter of it. It is a variable so
// that tests can lower it.
var minFreeBytes int64 = 16 << 20

// LockedError is returned by Open when another process holds the cache.
type LockedError struct {
	Dir string
	PID int // 0 when the holder is unknown (a read-only holder writes no pid)
}

func (e *LockedError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("cache: directory %s is in use by another process", e.Dir)
	}
	return fmt.Sprintf("cache: directory %s is in use by process %d", e.Dir, e.PID)
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// corruptError matches both ErrCorrupt and ErrNotFound: corrupt content is
// reported as what it is and handled as a miss.
type corruptError struct{ msg string }

func (e *corruptError) Error() string { return e.msg + ": " + ErrCorrupt.Error() }
func (e *corruptError) Is(target error) bool {
	return target == ErrCorrupt || target == ErrNotFound
}

func corruptf(format string, args ...any) error {
	return &corruptError{msg: fmt.Sprintf(format, args...)}
}

// Defaults for Options. See doc.go for how they were chosen.
const (
	// DefaultBlobInline is the largest blob kept inside the index. Larger
	// blobs are files, whose space deleting returns at once; 32 KiB keeps
	// most logs and small outputs out of the file system while staying well
	// under badger's per-transaction limit (15% of the memtable: 153 KiB).
	DefaultBlobInline = 32 << 10
	// maxBlobInline bounds Options.BlobInline: one inline blob must fit in
	// one badger transaction (15% of memTableSize).
	maxBlobInline = 128 << 10
	// lockPollFirst is how long Open waits for another process before it
	// calls Options.OnWait; lockPollMax caps the retry backoff.
	lockPollFirst = 100 * time.Millisecond
	lockPollMax   = 500 * time.Millisecond
)

// Options configure Open. The zero value of each field is a usable default,
// except Dir, which is required.
type Options struct {
	// Dir is the cache directory; it is created if missing (unless ReadOnly).
	Dir string
	// ReadOnly serves hits and writes nothing: puts return ErrReadOnly and
	// GetAction does not record use. Read-only stores share the directory
	// with each other (not on Windows), and open about ten times faster
	// than writable ones (BenchmarkOpenCloseReadOnly). A directory that
	// cannot be written is opened read-only even without this option; see
	// Store.ReadOnly.
	ReadOnly bool
	// Lookup opens the store like ReadOnly, shared and fast, for lookups
	// between writes, except that hits are recorded: Close appends them to
	// v1/uses.log, which the next writable Open merges into the index, so
	// that GC ages entries by their real use.
	Lookup bool
	// LockWait bounds how long Open waits while another process holds the
	// directory; 0 waits until ctx is done, a negative value not at all.
	LockWait time.Duration
	// OnWait, if set, is called once, from Open's goroutine, when Open has
	// waited about 100 ms for another process. pid is the holder's process
	// id, or 0 when unknown.
	OnWait func(pid int)
	// BlobInline is the largest blob stored inside the index; larger blobs
	// are files. 0 means DefaultBlobInline. At most 128 KiB.
	BlobInline int64
	// Clock returns the current time; nil means time.Now. Tests pass a fake
	// clock to exercise ageing.
	Clock func() time.Time
}

// Store is an open cache directory. Its methods are safe for concurrent use
// by multiple goroutines. Only one process at a time holds a writable
// Store on a directory; Open waits for it. Hold a Store only as long as
// needed: another process may be waiting.
type Store struct {
	dir      string // the cache directory as given
	root     string // dir/v1
	readOnly bool
	lookup   bool  // Options.Lookup: read-only, but uses are logged
	roErr    error // why writes are refused when readOnly; nil: ErrReadOnly
	inline   int64
	now      func() time.Time
	lock     *dirLock

	spaceMu   sync.Mutex
	spaceAt   time.Time // the last free-space reading (checkSpace)
	spaceFree int64

	// dbMu guards db: operations hold it for reading; GC holds it for
	// writing while it closes and reopens badger to flush its memtable.
	// Lock order: dbMu before pinMu before usedMu.
	dbMu   sync.RWMutex
	db     *badger.DB
	closed bool
	// lazyDB: a reader with a valid key filter opens db on first need
	// (withDB); dbErr is that open's error, returned to every later need.
	lazyDB bool
	dbErr  error

	// filterMu guards filter: for a reader, the key filter it trusts (set
	// at Open, then only read); for a writer, the one it extends and
	// writes at Close, nil when it is rebuilt then (filter.go).
	filterMu sync.Mutex
	filter   *keyFilter

	// pinMu guards pins: blobs a put in this session stored or relied on
	// and that no action stored since names. GC never deletes a pinned
	// blob, so a blob stored just before the action naming it cannot be
	// collected in between. PutAction unpins its blobs, unless a GC is
	// running (gcRunning > 0): that GC may have listed the actions before
	// this one was stored, so the unpinning waits in unpinLater until it
	// ends.
	pinMu      sync.Mutex
	pins       map[[32]byte]struct{}
	gcRunning  int
	unpinLater [][32]byte

	// usedMu guards used: last-use times not yet written to the index.
	usedMu sync.Mutex
	used   map[[32]byte]time.Time

	// jnMu guards jn, the journal as read at Open plus this store's own
	// appends, and pending: inline blobs a Lookup store was given and will
	// write with the action that names them (see journal.go).
	jnMu    sync.Mutex
	jn      *journal
	jnFile  *os.File // the journal, open for appends once a put needed it
	pending map[[32]byte][]byte
}

// Dir returns the cache directory the store was opened on.
func (s *Store) Dir() string { return s.dir }

// ReadOnly reports whether writes are refused with ErrReadOnly, because
// Options.ReadOnly was set, the directory is not writable or its file
// system was nearly full at Open (then the error matches ErrNoSpace too).
func (s *Store) ReadOnly() bool { return s.readOnly }

// Layout names inside the cache directory. See doc.go.
const (
	versionDir   = "v1"
	readmeName   = "README.txt"
	formatName   = "FORMAT"
	lockName     = "lock"
	lockWaitName = "lockwait"
	usesName     = "uses.log"
	indexName    = "index"
	blobsName    = "blobs"
	tmpName      = "tmp"
)

const readmeText = `This directory is rustypipe's task cache.

It holds the results of tasks that already ran, addressed by the BLAKE3 hash
of everything that went into them, so that unchanged tasks are not run again.

It is safe to delete at any time no rustypipe is running here: the next run
simply misses and rebuilds it. To trim it by age and size instead, run

    rustypipe cache gc

and to empty it, rustypipe cache clear (see rustypipe cache --help).

Layout: v1/index is the index (badger), v1/blobs holds large outputs named by
their digest, v1/FORMAT the format version. A future format uses a new
directory beside v1, so older and newer rustypipe never misread each other.
`

// InlineLimit is the size up to which a store opened with o keeps blobs in
// its index: BlobInline, or DefaultBlobInline when that is 0.
func (o Options) InlineLimit() int64 {
	if o.BlobInline == 0 {
		return DefaultBlobInline
	}
	return o.BlobInline
}

// Open opens (creating if needed) the cache in o.Dir. When another process
// holds the directory, Open waits (calling o.OnWait once) until it is free,
// ctx is done or o.LockWait has passed; then it returns a *LockedError.
// A directory in a newer format gives an error matching
// ErrUnsupportedVersion; a damaged FORMAT file one matching ErrCorrupt.
// The caller must Close the store.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Dir == "" {
		return nil, errors.New("cas: open: no directory given")
	}
	inline := o.InlineLimit()
	if inline < 0 || inline > maxBlobInline {
		return nil, fmt.Errorf("cas: open %s: BlobInline %d out of range [0, %d]", o.Dir, o.BlobInline, maxBlobInline)
	}
	s := &Store{
		dir:      o.Dir,
		root:     filepath.Join(o.Dir, versionDir),
		readOnly: o.ReadOnly || o.Lookup,
		lookup:   o.Lookup && !o.ReadOnly,
		inline:   inline,
		now:      o.Clock,
		pins:     map[[32]byte]struct{}{},
		used:     map[[32]byte]time.Time{},
		pending:  map[[32]byte][]byte{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if !s.readOnly {
		if err := s.prepare(); err != nil {
			if !isReadOnlyErr(err) {
				return nil, fmt.Errorf("cas: open %s: %w", o.Dir, err)
			}
			s.readOnly = true
		} else if err := s.checkSpace(minFreeBytes / 4); err != nil {
			s.readOnly = true
			s.roErr = fmt.Errorf("%w: %w", ErrReadOnly, err)
		}
	}
	if _, err := os.Stat(s.root); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("cas: open %s: no cache here: %w", o.Dir, ErrNotFound)
		}
		return nil, fmt.Errorf("cas: open %s: %w", o.Dir, err)
	}

	lock, err := acquireLock(ctx, filepath.Join(s.root, lockName), o.Dir, !s.readOnly, o.LockWait, o.OnWait)
	if err != nil {
		return nil, err
	}
	s.lock = lock
	if err := s.openLocked(); err != nil {
		lock.release()
		return nil, err
	}
	return s, nil
}

// prepare creates the directory layout and README. Errors matching
// isReadOnlyErr make Open fall back to read-only.
func (s *Store) prepare() error {
	for _, d := range []string{s.root, filepath.Join(s.root, blobsName), filepath.Join(s.root, tmpName), filepath.Join(s.root, indexName)} {
		if err := os.MkdirAll(d, 0o777); err != nil {
			return err
		}
	}
	// Nothing here may touch v1/tmp: we do not hold the lock yet, and a
	// writer clears v1/tmp when it opens.
	readme := filepath.Join(s.dir, readmeName)
	if _, err := os.Stat(readme); errors.Is(err, fs.ErrNotExist) {
		if err := writeFileAtomic(s.dir, readme, []byte(readmeText)); err != nil {
			return err
		}
	}
	// Probe writability: a directory whose mode forbids writing still lets
	// MkdirAll succeed when everything exists already.
	f, err := os.CreateTemp(s.root, ".probe-*")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// openLocked runs with the directory lock held: it checks the format,
// clears stale temporary files and opens badger.
func (s *Store) openLocked() error {
	if err := s.checkFormat(); err != nil {
		return err
	}
	if !s.readOnly {
		// Temporary files belong to writers; we are the only writer now,
		// so any left over were abandoned by a killed process.
		tmp := filepath.Join(s.root, tmpName)
		if ents, err := os.ReadDir(tmp); err == nil {
			for _, e := range ents {
				os.RemoveAll(filepath.Join(tmp, e.Name()))
			}
		}
	}
	// A journal that cannot be read serves nothing; a writer's merge then
	// leaves it alone.
	jerr := s.readJournal()
	if s.readOnly {
		if f, ok := s.readKeyFilter(); ok {
			s.filter, s.lazyDB = f, true
			return nil
		}
	}
	// A writer reads the filter before badger opens the index, which
	// rewrites the MANIFEST the filter is bound to; we hold the lock
	// exclusively, so nothing else writes in between. An index that badger
	// makes now holds no key: an empty filter is complete for it.
	var (
		filter   *keyFilter
		filterOK bool
	)
	if !s.readOnly {
		if _, err := os.Stat(filepath.Join(s.root, indexName, "MANIFEST")); errors.Is(err, fs.ErrNotExist) {
			filter, filterOK = newKeyFilter(0), true
		} else {
			filter, filterOK = s.readKeyFilter()
		}
	}
	db, err := s.openIndex()
	if err != nil {
		return err
	}
	s.db = db
	if !s.readOnly {
		if err := s.takeKeyFilter(filter, filterOK); err != nil {
			db.Close()
			s.db = nil
			return fmt.Errorf("cas: open %s: %w", s.dir, err)
		}
		s.mergeUses(db)
		if jerr == nil {
			// A failed merge (the disk is nearly full) keeps the journal,
			// which goes on serving reads.
			s.mergeJournal(db)
		}
	}
	return nil
}

// checkFormat reads v1/FORMAT, writing it when missing and writable.
func (s *Store) checkFormat() error {
	p := filepath.Join(s.root, formatName)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		if s.readOnly {
			return nil // nothing was ever written with a newer format here
		}
		content := fmt.Sprintf("%d\n", FormatVersion)
		if err := writeFileAtomic(filepath.Join(s.root, tmpName), p, []byte(content)); err != nil {
			return fmt.Errorf("cas: open %s: write format: %w", s.dir, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("cas: open %s: read format: %w", s.dir, err)
	}
	return parseFormat(s.dir, b)
}

// parseFormat interprets the content of a FORMAT file.
func parseFormat(dir string, b []byte) error {
	text := strings.TrimSpace(string(b))
	n, err := strconv.Atoi(text)
	if err != nil || n < 1 {
		if len(text) > 40 {
			text = text[:40] + "…"
		}
		return fmt.Errorf("cas: open %s: %w: %s has %q where a format version was expected; delete the cache directory to start afresh",
			dir, ErrCorrupt, filepath.Join(versionDir, formatName), text)
	}
	if n > FormatVersion {
		return fmt.Errorf("cas: open %s: %w %d; this rustypipe reads %d", dir, ErrUnsupportedVersion, n, FormatVersion)
	}
	return nil
}

// badgerOptions are tuned for short sessions: opening and closing is the
// common case, so memtables and value-log files are small (their buffers
// are allocated and mapped at every open), compression is off (blobs are
// often compressed already, and without compression badger needs no block
// cache), metrics and logging are off. Compaction needs at least two
// compactors. Writes are not synced: badger writes its log through a
// shared memory map, so an acknowledged write survives the process being
// killed; after a power loss the newest entries may be gone, which is a
// miss (blob files are fsynced before the action naming them is written).
func badgerOptions(dir string, readOnly bool) badger.Options {
	return badger.DefaultOptions(dir).
		WithLogger(nil).
		WithReadOnly(readOnly).
		WithSyncWrites(false).
		WithNumVersionsToKeep(1).
		WithDetectConflicts(false).
		WithMetricsEnabled(false).
		WithCompression(options.None).
		WithBlockCacheSize(0).
		WithIndexCacheSize(0).
		WithMemTableSize(memTableSize).
		WithNumMemtables(2).
		WithValueThreshold(64 << 10).
		WithValueLogFileSize(1 << 20).
		WithBaseTableSize(1 << 20).
		WithNumCompactors(2).
		WithNumGoroutines(2)
}

// memTableSize is badger's memtable size. Badger allocates it and maps a
// log twice its size at every writable open: BenchmarkOpenClose measured
// about 3.6 ms at 1 MiB, 4.4 ms at 2 MiB and 6 ms at 8 MiB (64 MiB, the
// default, about 19 ms). Smaller memtables only flush more often in long
// sessions, which are rare here.
const memTableSize = 1 << 20

// l0CompactAt is how many level-0 tables make Close compact them. Badger
// compacts in the background only after a random delay of up to a second,
// which short sessions never reach; each session that wrote leaves one
// level-0 table, and every lookup consults every level-0 table.
const l0CompactAt = 8

// openIndex opens badger, converting its panics and raw errors.
func (s *Store) openIndex() (db *badger.DB, err error) {
	dir := filepath.Join(s.root, indexName)
	open := func(readOnly bool) (db *badger.DB, err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("index panicked: %v: %w", r, ErrCorrupt)
			}
		}()
		return badger.Open(badgerOptions(dir, readOnly))
	}
	if err := checkTables(dir); err != nil {
		return nil, fmt.Errorf("cas: open %s: %w; delete the cache directory to start afresh", s.dir, err)
	}
	if s.readOnly {
		if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("cas: open %s: no index here: %w", s.dir, ErrNotFound)
		}
		db, err = open(sharedLocks)
		if err != nil && sharedLocks && s.lock.canWrite() {
			// Badger refuses read-only opens after a crash until its log
			// is replayed; a writable open replays it. This changes no
			// cache content.
			if rw, rerr := s.recoverIndex(open); rerr == nil {
				rw.Close()
				db, err = open(true)
			}
		}
	} else {
		db, err = open(false)
	}
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrCorrupt) {
			return nil, fmt.Errorf("cas: open %s: index: %w", s.dir, err)
		}
		// Badger formats its errors with %+v, so their causes cannot be
		// tested; with our lock held, a failure is damage or an I/O error.
		return nil, fmt.Errorf("cas: open %s: index is unreadable: %w (%v); delete the cache directory to start afresh", s.dir, ErrCorrupt, err)
	}
	return db, nil
}

// checkTables checks the footer of every badger table in dir: a table
// truncated or overwritten at its end makes badger panic in a goroutine of
// its own, which no recover can catch. The footer is, from the end: a
// 4-byte checksum length, the checksum, a 4-byte index length, the index
// (github.com/dgraph-io/badger/v4/table, initIndex); badger verifies the
// index checksum itself once the lengths are sane.
func checkTables(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	// Only tables the MANIFEST names are read by badger. A table that a
	// killed process was still writing is not named yet, and badger deletes
	// it on open: it is no damage. Without a readable MANIFEST, badger
	// itself reports the problem.
	live := map[uint64]bool{}
	mf, err := os.Open(filepath.Join(dir, badger.ManifestFilename))
	if err != nil {
		return nil
	}
	m, _, err := badger.ReplayManifestFile(mf, 0, badgerOptions(dir, true))
	mf.Close()
	if err != nil {
		return nil
	}
	for id := range m.Tables {
		live[id] = true
	}
	for _, e := range ents {
		id, ok := table.ParseFileID(e.Name())
		if !strings.HasSuffix(e.Name(), ".sst") || !ok || !live[id] {
			continue
		}
		if err := checkTable(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("index table %s is damaged (%v): %w", e.Name(), err, ErrCorrupt)
		}
	}
	return nil
}

func checkTable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	var b [4]byte
	read := func(off int64) (int64, error) {
		if off < 0 || off+4 > size {
			return 0, fmt.Errorf("footer points outside the file (offset %d, size %d)", off, size)
		}
		if _, err := f.ReadAt(b[:], off); err != nil {
			return 0, err
		}
		return int64(binary.BigEndian.Uint32(b[:])), nil
	}
	chkLen, err := read(size - 4)
	if err != nil {
		return err
	}
	if chkLen > size-8 {
		return fmt.Errorf("checksum length %d exceeds the file size %d", chkLen, size)
	}
	indexLen, err := read(size - 4 - chkLen - 4)
	if err != nil {
		return err
	}
	if indexLen > size-8-chkLen {
		return fmt.Errorf("index length %d exceeds the file (size %d)", indexLen, size)
	}
	return nil
}

// recoverIndex opens badger writable under a temporarily exclusive lock.
func (s *Store) recoverIndex(open func(bool) (*badger.DB, error)) (*badger.DB, error) {
	if err := s.lock.upgrade(); err != nil {
		return nil, err
	}
	defer s.lock.downgrade()
	return open(false)
}

// Close records pending use times, closes the index and releases the
// directory. Close is idempotent; other methods return ErrClosed after it.
func (s *Store) Close() error {
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.jnMu.Lock()
	if s.jnFile != nil {
		s.jnFile.Close()
		s.jnFile = nil
	}
	s.jnMu.Unlock()
	err := s.flushUsedLocked()
	if !s.readOnly && s.db != nil && s.checkSpace(minFreeBytes) == nil {
		if n := level0Tables(s.db); n >= l0CompactAt {
			err = errors.Join(err, s.compactL0Locked())
		}
	}
	if s.db != nil {
		var f *keyFilter
		if !s.readOnly {
			f = s.keyFilterToSave(s.db)
		}
		cerr := s.db.Close()
		if cerr != nil {
			err = errors.Join(err, cerr)
		} else if f != nil {
			s.writeKeyFilter(f) // after the close, which changes the MANIFEST
		}
		s.db = nil
	}
	s.lock.release()
	if err != nil {
		return fmt.Errorf("cas: close %s: %w", s.dir, err)
	}
	return nil
}

// Contended reports whether another process is waiting to open the store:
// it could not take the directory's lock, which this store holds. A
// session that has had its turn gives way then, and holds on otherwise.
// Safe for concurrent use.
func (s *Store) Contended() bool { return s.lock.contended() }

func level0Tables(db *badger.DB) int {
	for _, l := range db.Levels() {
		if l.Level == 0 {
			return l.NumTables
		}
	}
	return 0
}

// compactL0Locked closes badger and reopens it with CompactL0OnClose, then
// closes it again: badger merges level 0 into its base level on that
// close. Unlike Flatten, it does not rewrite the lower levels.
func (s *Store) compactL0Locked() error {
	dir := filepath.Join(s.root, indexName)
	if err := s.db.Close(); err != nil {
		return err
	}
	db, err := badger.Open(badgerOptions(dir, false).WithCompactL0OnClose(true))
	if err != nil {
		return err
	}
	s.db = db
	return nil
}

// reopenLocked closes and reopens badger, which flushes its memtable to a
// table so that compaction can drop deleted entries. Callers hold dbMu.
func (s *Store) reopenLocked() error {
	if err := s.db.Close(); err != nil {
		s.db = nil
		return err
	}
	db, err := badger.Open(badgerOptions(filepath.Join(s.root, indexName), false))
	if err != nil {
		s.db = nil
		return err
	}
	s.db = db
	return nil
}

// view runs fn with the index for reading; fn must not call other Store
// methods that take dbMu for writing.
func (s *Store) withDB(fn func(db *badger.DB) error) error {
	s.dbMu.RLock()
	if s.db == nil && s.lazyDB && !s.closed {
		s.dbMu.RUnlock()
		if err := s.openLazyDB(); err != nil {
			return err
		}
		s.dbMu.RLock()
	}
	defer s.dbMu.RUnlock()
	if s.closed || s.db == nil {
		return ErrClosed
	}
	return fn(s.db)
}

// openLazyDB opens the index of a reader that deferred it (lazyDB).
func (s *Store) openLazyDB() error {
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if s.db != nil || s.closed {
		return nil
	}
	if s.dbErr == nil {
		s.db, s.dbErr = s.openIndex()
	}
	return s.dbErr
}

// filteredOut reports that key is certainly not in the index, so that a
// lookup need not read it: the key filter says so. A reader's filter is
// the one it trusted at Open; a writer's holds every key of the index at
// Open (the filter it took then, or none for an index made then) and
// every key it added since, and no one else writes while it holds the
// lock. A store without a filter never filters out.
func (s *Store) filteredOut(key [32]byte) bool {
	s.filterMu.Lock()
	defer s.filterMu.Unlock()
	return s.filter != nil && !s.filter.mayContain(key)
}

// canPut is writable for puts, which Lookup stores make through the
// journal.
func (s *Store) canPut() error {
	if s.lookup {
		return nil
	}
	return s.writable()
}

func (s *Store) writable() error {
	if s.readOnly {
		if s.roErr != nil {
			return s.roErr
		}
		return ErrReadOnly
	}
	return nil
}

// checkSpace returns an error matching ErrNoSpace when less than need
// bytes are free on the index's file system. Unknown free space passes.
//
// A file system that had room to spare (spaceSpare beyond need) a moment
// ago (spaceTTL) is taken to have it still, without asking again: a cold
// build asked once per task, 2% of rustypipe's own CPU. Filling the spare
// room within the moment would take hundreds of MB/s of writing by
// someone else; when room is short, every call asks.
func (s *Store) checkSpace(need int64) error {
	now := time.Now()
	s.spaceMu.Lock()
	roomy := now.Sub(s.spaceAt) < spaceTTL && s.spaceFree >= need+spaceSpare
	s.spaceMu.Unlock()
	if roomy {
		return nil
	}
	free := statFree(s.root)
	s.spaceMu.Lock()
	s.spaceAt, s.spaceFree = now, free
	s.spaceMu.Unlock()
	if free < 0 || free >= need {
		return nil
	}
	return fmt.Errorf("%w: %.1f MiB free on the cache's file system, %.1f MiB needed",
		ErrNoSpace, float64(free)/(1<<20), float64(need)/(1<<20))
}

// statFree is freeSpace, replaced in tests.
var statFree = freeSpace

// spaceTTL and spaceSpare bound checkSpace's reuse of a free-space
// reading.
const (
	spaceTTL   = 50 * time.Millisecond
	spaceSpare = 256 << 20
)

// writeFileAtomic writes data to a temporary file in tmpDir, fsyncs it and
// renames it to dst.
func writeFileAtomic(tmpDir, dst string, data []byte) error {
	f, err := os.CreateTemp(tmpDir, ".tmp-*")
	if err != nil {
		return err
	}
	name := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(name, dst)
	}
	if err != nil {
		os.Remove(name)
	}
	return err
}

// hexKey formats a digest or key for messages and file names.
func hexKey(d [32]byte) string { return hex.EncodeToString(d[:]) }

// Clear deletes the contents of the cache directory in every format
// version, keeping the directory and its lock file. It takes the directory
// lock first and fails at once with a *LockedError when another process
// holds it. A missing directory is not an error.
func Clear(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cas: clear %s: %w", dir, err)
	}
	root := filepath.Join(dir, versionDir)
	if err := os.MkdirAll(root, 0o777); err != nil {
		return fmt.Errorf("cas: clear %s: %w", dir, err)
	}
	lock, err := acquireLock(context.Background(), filepath.Join(root, lockName), dir, true, -1, nil)
	if err != nil {
		return fmt.Errorf("cas: clear: %w", err)
	}
	defer lock.release()
	// The lock file stays: a process waiting on it holds it open, and a
	// new file would let that process and the next one both hold a lock.
	sub, err := os.ReadDir(root)
	if err != nil {
		return fmt.Errorf("cas: clear %s: %w", dir, err)
	}
	for _, e := range sub {
		if e.Name() == lockName || e.Name() == lockWaitName {
			continue
		}
		if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
			return fmt.Errorf("cas: clear %s: %w", dir, err)
		}
	}
	for _, e := range ents {
		if e.Name() == versionDir {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("cas: clear %s: %w", dir, err)
		}
	}
	return nil
}
