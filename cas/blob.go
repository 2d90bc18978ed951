package cas

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/zeebo/blake3"
)

// BlobRef names content by its BLAKE3 digest and size. Callers convert
// hashing.Digest to and from the [32]byte field.
type BlobRef struct {
	Digest [32]byte
	Size   int64
}

// IsZero reports whether b is the zero BlobRef, which an ActionResult uses
// for output that was not captured. Empty content is EmptyBlob, not zero.
func (b BlobRef) IsZero() bool { return b == BlobRef{} }

// String formats b as digest/size for messages.
func (b BlobRef) String() string { return fmt.Sprintf("%s/%d", hexKey(b.Digest), b.Size) }

// EmptyBlob is the reference of empty content. It is present in every
// store without being put.
var EmptyBlob = BlobRef{Digest: blake3.Sum256(nil)}

// Key prefixes in the index. See doc.go.
var (
	prefixBlob   = []byte("b/")
	prefixAction = []byte("a/")
	prefixUsed   = []byte("u/")
)

func blobKey(d [32]byte) []byte { return append(append(make([]byte, 0, 34), prefixBlob...), d[:]...) }

// blobPath is where a blob larger than the inline limit lives:
// v1/blobs/ab/abcdef… (the first two hex digits shard the directory).
func (s *Store) blobPath(d [32]byte) string {
	h := hexKey(d)
	return filepath.Join(s.root, blobsName, h[:2], h)
}

// copyBufs holds buffers for streaming blobs; 256 KiB amortises syscalls
// and lets BLAKE3 hash several chunks in parallel.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// ctxReader fails reads once ctx is done, so long copies stop on cancel.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, context.Cause(c.ctx)
	}
	return c.r.Read(p)
}

// HasBlob reports whether the blob d is stored. It does not verify the
// content (OpenBlob does). Safe for concurrent use.
func (s *Store) HasBlob(ctx context.Context, d [32]byte) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	var ok bool
	err := s.withDB(func(db *badger.DB) error {
		var err error
		ok, err = s.hasBlob(db, d)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("cas: has blob %s: %w", hexKey(d), err)
	}
	return ok, nil
}

func (s *Store) hasBlob(db *badger.DB, d [32]byte) (bool, error) {
	if d == EmptyBlob.Digest || s.journalHasBlob(d) {
		return true, nil
	}
	err := db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(blobKey(d))
		return err
	})
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, badger.ErrKeyNotFound) {
		return false, err
	}
	if _, err := os.Stat(s.blobPath(d)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// pin records that this session relies on blob d, so that GC in another
// goroutine does not delete it; see Store.pins.
func (s *Store) pin(d [32]byte) {
	s.pinMu.Lock()
	s.pins[d] = struct{}{}
	s.pinMu.Unlock()
}

// PutBlob stores the content read from r under digest d. It reads r to EOF
// and verifies both digest and size (size < 0: unknown): on a mismatch it
// returns an error matching ErrCorrupt and stores nothing. A blob already
// stored is not written again, and r may then not be read at all. A
// failed write (disk full, cancel) removes its temporary file. Returns
// ErrReadOnly on a read-only store. Safe for concurrent use.
func (s *Store) PutBlob(ctx context.Context, d [32]byte, size int64, r io.Reader) error {
	if err := s.putBlob(ctx, d, size, r); err != nil {
		return fmt.Errorf("cas: put blob %s: %w", hexKey(d), err)
	}
	return nil
}

func (s *Store) putBlob(ctx context.Context, d [32]byte, size int64, r io.Reader) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.canPut(); err != nil {
		return err
	}
	s.pin(d)
	var exists bool
	if err := s.withDB(func(db *badger.DB) error {
		var err error
		exists, err = s.hasBlob(db, d)
		return err
	}); err != nil {
		return err
	}
	if exists && d != EmptyBlob.Digest {
		// A blob file of the wrong size is damaged: store it afresh
		// (the rename replaces it).
		fi, err := os.Stat(s.blobPath(d))
		if err != nil || size < 0 || fi.Size() == size {
			return nil
		}
	}
	_, err := s.store(ctx, &d, size, r)
	return err
}

// PutReader stores the content of r, whose digest is not known in
// advance, and returns its reference. Use it for captured output. Errors
// as PutBlob. Safe for concurrent use.
func (s *Store) PutReader(ctx context.Context, r io.Reader) (BlobRef, error) {
	if err := s.canPut(); err != nil {
		return BlobRef{}, fmt.Errorf("cas: put: %w", err)
	}
	ref, err := s.store(ctx, nil, -1, r)
	if err != nil {
		return BlobRef{}, fmt.Errorf("cas: put: %w", err)
	}
	return ref, nil
}

// PutFile stores the file at path in one pass (hashing while copying to a
// temporary file that is then renamed to its digest) and returns its
// reference. A file whose size changes while it is read gives an error
// matching ErrCorrupt. Errors as PutBlob. Safe for concurrent use.
func (s *Store) PutFile(ctx context.Context, path string) (BlobRef, error) {
	if err := s.canPut(); err != nil {
		return BlobRef{}, fmt.Errorf("cas: put file %s: %w", path, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return BlobRef{}, fmt.Errorf("cas: put file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return BlobRef{}, fmt.Errorf("cas: put file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return BlobRef{}, fmt.Errorf("cas: put file %s: not a regular file", path)
	}
	ref, err := s.store(ctx, nil, fi.Size(), f)
	if err != nil {
		return BlobRef{}, fmt.Errorf("cas: put file %s: %w", path, err)
	}
	return ref, nil
}

// store reads r to EOF and stores it, verifying *want (when non-nil) and
// size (when ≥ 0). Content up to s.inline bytes goes into the index,
// larger content into a file.
func (s *Store) store(ctx context.Context, want *[32]byte, size int64, r io.Reader) (BlobRef, error) {
	if err := ctx.Err(); err != nil {
		return BlobRef{}, err
	}
	r = ctxReader{ctx, r}
	// Read up to one byte past the inline limit to learn which side of it
	// the content falls; with a known size past the limit, go straight to
	// a file.
	var head []byte
	if size < 0 || size <= s.inline {
		limit := s.inline + 1
		if size >= 0 {
			limit = size + 1 // one more byte detects content longer than size
		}
		var buf bytes.Buffer
		if _, err := io.Copy(&buf, io.LimitReader(r, limit)); err != nil {
			return BlobRef{}, err
		}
		head = buf.Bytes()
		if int64(len(head)) <= s.inline && (size < 0 || int64(len(head)) <= size) {
			return s.storeInline(ctx, want, size, head)
		}
	}
	return s.storeFile(ctx, want, size, head, r)
}

func checkContent(want *[32]byte, size int64, got [32]byte, n int64) error {
	if size >= 0 && n != size {
		return fmt.Errorf("content is %d bytes, expected %d: %w", n, size, ErrCorrupt)
	}
	if want != nil && *want != got {
		return fmt.Errorf("content hashes to %s: %w", hexKey(got), ErrCorrupt)
	}
	return nil
}

func (s *Store) storeInline(_ context.Context, want *[32]byte, size int64, data []byte) (BlobRef, error) {
	d := blake3.Sum256(data)
	if err := checkContent(want, size, d, int64(len(data))); err != nil {
		return BlobRef{}, err
	}
	ref := BlobRef{Digest: d, Size: int64(len(data))}
	if d == EmptyBlob.Digest {
		return ref, nil
	}
	if s.lookup {
		// Written to the journal with the action that names it.
		s.jnMu.Lock()
		s.pending[d] = bytes.Clone(data)
		s.jnMu.Unlock()
		return ref, nil
	}
	if err := s.checkSpace(minFreeBytes); err != nil {
		return BlobRef{}, err
	}
	s.pin(d)
	err := s.withDB(func(db *badger.DB) error {
		return db.Update(func(txn *badger.Txn) error {
			return txn.Set(blobKey(d), data)
		})
	})
	if err != nil {
		return BlobRef{}, err
	}
	return ref, nil
}

// storeFile writes head and the rest of r to a temporary file while
// hashing, checks it, fsyncs it and renames it to its digest. On any
// failure the temporary file is removed.
func (s *Store) storeFile(_ context.Context, want *[32]byte, size int64, head []byte, r io.Reader) (ref BlobRef, err error) {
	s.dbMu.RLock()
	closed := s.closed
	s.dbMu.RUnlock()
	if closed {
		return BlobRef{}, ErrClosed
	}
	// Leave room for the index: badger crashes on a full disk.
	if err := s.checkSpace(max(size, 0) + minFreeBytes); err != nil {
		return BlobRef{}, err
	}
	f, err := os.CreateTemp(filepath.Join(s.root, tmpName), "blob-*")
	if err != nil {
		return BlobRef{}, err
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			f.Close()
		}
		if err != nil {
			os.Remove(tmp)
		}
	}()
	h := blake3.New()
	w := io.MultiWriter(f, h)
	n, err := w.Write(head)
	if err != nil {
		return BlobRef{}, err
	}
	bp := copyBufs.Get().(*[]byte)
	m, err := io.CopyBuffer(w, onlyReader{r}, *bp)
	copyBufs.Put(bp)
	if err != nil {
		return BlobRef{}, err
	}
	total := int64(n) + m
	var d [32]byte
	h.Sum(d[:0])
	if err := checkContent(want, size, d, total); err != nil {
		return BlobRef{}, err
	}
	if err := f.Sync(); err != nil {
		return BlobRef{}, err
	}
	cerr := f.Close()
	f = nil
	if cerr != nil {
		return BlobRef{}, cerr
	}
	ref = BlobRef{Digest: d, Size: total}
	s.pin(d)
	dst := s.blobPath(d)
	// GC removes empty shard directories; retry if one vanishes between
	// MkdirAll and Rename.
	for try := 0; ; try++ {
		if err = os.MkdirAll(filepath.Dir(dst), 0o777); err != nil {
			return BlobRef{}, err
		}
		if err = os.Rename(tmp, dst); err == nil || !errors.Is(err, fs.ErrNotExist) || try == 2 {
			break
		}
	}
	if err != nil {
		// Windows refuses to replace a file that is open; the same
		// content is there already.
		if fi, serr := os.Stat(dst); serr == nil && fi.Size() == total {
			os.Remove(tmp)
			return ref, nil
		}
		return BlobRef{}, err
	}
	return ref, nil
}

// onlyReader hides a reader's WriterTo so that io.CopyBuffer uses the
// pooled buffer.
type onlyReader struct{ io.Reader }

// OpenBlob opens the blob d for reading and returns its size. Reading
// verifies the content: an inline blob is checked before OpenBlob returns,
// a file as it is read, and the final Read returns an error matching
// ErrCorrupt (and ErrNotFound) instead of io.EOF when the bytes do not hash
// to d. A corrupt blob is removed from a writable store. A missing blob
// gives ErrNotFound. The reader is not safe for concurrent use, and stays
// usable after the Store is closed; the caller must Close it.
func (s *Store) OpenBlob(ctx context.Context, d [32]byte) (io.ReadCloser, int64, error) {
	rc, n, err := s.openBlob(ctx, d)
	if err != nil {
		return nil, 0, fmt.Errorf("cas: open blob %s: %w", hexKey(d), err)
	}
	return rc, n, nil
}

func (s *Store) openBlob(ctx context.Context, d [32]byte) (io.ReadCloser, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	if d == EmptyBlob.Digest {
		return io.NopCloser(bytes.NewReader(nil)), 0, nil
	}
	var data []byte
	found := false
	err := s.withDB(func(db *badger.DB) error {
		err := db.View(func(txn *badger.Txn) error {
			item, err := txn.Get(blobKey(d))
			if err != nil {
				return err
			}
			data, err = item.ValueCopy(nil)
			return err
		})
		if err == nil {
			found = true
			if blake3.Sum256(data) != d {
				if !s.readOnly && s.checkSpace(minFreeBytes/4) == nil {
					db.Update(func(txn *badger.Txn) error { return txn.Delete(blobKey(d)) })
				}
				return corruptf("stored bytes hash to %s", hexKey(blake3.Sum256(data)))
			}
			return nil
		}
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	if !found {
		data, found = s.journalBlob(d)
	}
	if found {
		return io.NopCloser(bytes.NewReader(data)), int64(len(data)), nil
	}
	path := s.blobPath(d)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return &verifyingReader{f: f, h: blake3.New(), want: d, path: path, drop: !s.readOnly}, fi.Size(), nil
}

// verifyingReader hashes a blob file as it is read and checks the digest
// at EOF.
type verifyingReader struct {
	f    *os.File
	h    *blake3.Hasher
	want [32]byte
	path string
	drop bool  // remove the file when it turns out corrupt
	err  error // sticky result once EOF was reached
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.f.Read(p)
	v.h.Write(p[:n])
	if err == io.EOF {
		var got [32]byte
		v.h.Sum(got[:0])
		if got != v.want {
			v.err = corruptf("blob %s: file hashes to %s", hexKey(v.want), hexKey(got))
			if v.drop {
				removeIfSame(v.f, v.path)
			}
		} else {
			v.err = io.EOF
		}
		return n, v.err
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.f.Close() }

// removeIfSame removes path if it is still the file f: a concurrent put may
// have replaced a corrupt file with a good one.
func removeIfSame(f *os.File, path string) {
	a, err := f.Stat()
	if err != nil {
		return
	}
	b, err := os.Stat(path)
	if err != nil || !os.SameFile(a, b) {
		return
	}
	os.Remove(path)
}
