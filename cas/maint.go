package cas

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/zeebo/blake3"
)

// Stats describes a store's content.
type Stats struct {
	Actions     int   // stored action results
	InlineBlobs int   // blobs inside the index
	InlineBytes int64 // their content size
	FileBlobs   int   // blobs stored as files
	FileBytes   int64 // their content size
	IndexBytes  int64 // disk space used by the index (v1/index)
	DiskBytes   int64 // disk space used by the whole cache directory
}

// Stats counts the store's content and measures its disk usage by walking
// the directory (allocated blocks, so badger's sparse files count for what
// they use). Safe for concurrent use.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	err := s.withDB(func(db *badger.DB) error {
		return db.View(func(txn *badger.Txn) error {
			opts := badger.DefaultIteratorOptions
			opts.PrefetchValues = false
			it := txn.NewIterator(opts)
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				k := it.Item().Key()
				switch {
				case hasPrefix(k, prefixAction):
					st.Actions++
				case hasPrefix(k, prefixBlob):
					st.InlineBlobs++
					st.InlineBytes += it.Item().ValueSize()
				}
			}
			return nil
		})
	})
	if err != nil {
		return Stats{}, fmt.Errorf("cas: stats: %w", err)
	}
	if err := s.scanJournal(ctx, func([32]byte, *ActionResult, error) error {
		st.Actions++
		return nil
	}); err != nil {
		return Stats{}, fmt.Errorf("cas: stats: %w", err)
	}
	if err := s.walkBlobFiles(ctx, func(_ [32]byte, _ string, fi fs.FileInfo) error {
		st.FileBlobs++
		st.FileBytes += fi.Size()
		return nil
	}, nil); err != nil {
		return Stats{}, fmt.Errorf("cas: stats: %w", err)
	}
	if st.IndexBytes, err = DiskUsage(filepath.Join(s.root, indexName)); err != nil {
		return Stats{}, fmt.Errorf("cas: stats: %w", err)
	}
	if st.DiskBytes, err = DiskUsage(s.dir); err != nil {
		return Stats{}, fmt.Errorf("cas: stats: %w", err)
	}
	return st, nil
}

func hasPrefix(k, p []byte) bool { return len(k) >= len(p) && string(k[:len(p)]) == string(p) }

// DiskUsage returns the disk space used by the files and directories under
// dir: allocated blocks where the platform reports them, sizes otherwise.
// Files that vanish during the walk are skipped.
func DiskUsage(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		n += diskUsage(fi)
		return nil
	})
	return n, err
}

// walkBlobFiles calls fn for every well-named blob file, and stray (when
// non-nil) for any other file under v1/blobs.
func (s *Store) walkBlobFiles(ctx context.Context, fn func(d [32]byte, path string, fi fs.FileInfo) error, stray func(path string) error) error {
	base := filepath.Join(s.root, blobsName)
	shards, err := os.ReadDir(base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, sh := range shards {
		if err := ctx.Err(); err != nil {
			return err
		}
		sp := filepath.Join(base, sh.Name())
		if !sh.IsDir() {
			if stray != nil {
				if err := stray(sp); err != nil {
					return err
				}
			}
			continue
		}
		ents, err := os.ReadDir(sp)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return err
		}
		for _, e := range ents {
			p := filepath.Join(sp, e.Name())
			var d [32]byte
			name := e.Name()
			ok := len(name) == 64 && name[:2] == sh.Name() && e.Type().IsRegular()
			if ok {
				_, err := hex.Decode(d[:], []byte(name))
				ok = err == nil && hexKey(d) == name
			}
			if !ok {
				if stray != nil {
					if err := stray(p); err != nil {
						return err
					}
				}
				continue
			}
			fi, err := e.Info()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				return err
			}
			if err := fn(d, p, fi); err != nil {
				return err
			}
		}
	}
	return nil
}

// Problem is one defect Verify found (and repaired on a writable store).
type Problem struct {
	Kind string   // "blob", "action" or "file" (a stray file among the blobs)
	ID   [32]byte // the blob's digest or the action's key; zero for a stray file
	Path string   // the file, for blob files and stray files
	Err  error    // what is wrong
}

func (p Problem) String() string {
	id := hexKey(p.ID)
	if p.Path != "" {
		id = p.Path
	}
	return fmt.Sprintf("%s %s: %v", p.Kind, id, p.Err)
}

// VerifyResult summarises a Verify run.
type VerifyResult struct {
	Actions    int   // actions checked
	Blobs      int   // blobs re-hashed
	Bytes      int64 // bytes re-hashed
	BadBlobs   int   // blobs that did not match their digest (removed)
	BadActions int   // actions undecodable or naming a missing blob (removed)
	StrayFiles int   // unexpected files among the blobs (removed)
	Removed    bool  // whether defects were removed (not on a read-only store or a full disk)
}

// Verify re-hashes every blob and checks every action. A blob whose bytes
// do not match its digest is removed, then every action that names a
// missing blob or cannot be decoded; report (if non-nil) is called for
// each defect, outside any index transaction. A read-only store reports
// but removes nothing. Safe for concurrent use; it is slow (it reads the
// whole cache).
func (s *Store) Verify(ctx context.Context, report func(Problem)) (VerifyResult, error) {
	res, err := s.verify(ctx, report)
	if err != nil {
		return res, fmt.Errorf("cas: verify: %w", err)
	}
	return res, nil
}

func (s *Store) verify(ctx context.Context, report func(Problem)) (VerifyResult, error) {
	fix := !s.readOnly && s.checkSpace(minFreeBytes/4) == nil
	res := VerifyResult{Removed: fix}
	if report == nil {
		report = func(Problem) {}
	}
	if err := s.withDB(s.flushUsed); err != nil {
		return res, err
	}
	// Inline blobs, in chunks so that report runs outside transactions.
	seek := append([]byte(nil), prefixBlob...)
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		type bad struct {
			key []byte
			p   Problem
		}
		var bads []bad
		var last []byte
		err := s.withDB(func(db *badger.DB) error {
			return db.View(func(txn *badger.Txn) error {
				opts := badger.DefaultIteratorOptions
				opts.Prefix = prefixBlob
				it := txn.NewIterator(opts)
				defer it.Close()
				n := 0
				for it.Seek(seek); it.ValidForPrefix(prefixBlob) && n < listChunk; it.Next() {
					n++
					item := it.Item()
					k := item.KeyCopy(nil)
					last = k
					var d [32]byte
					if len(k) != len(prefixBlob)+32 {
						bads = append(bads, bad{k, Problem{Kind: "blob", Err: fmt.Errorf("malformed index key %q", k)}})
						continue
					}
					copy(d[:], k[len(prefixBlob):])
					err := item.Value(func(v []byte) error {
						res.Blobs++
						res.Bytes += int64(len(v))
						if got := blake3.Sum256(v); got != d {
							bads = append(bads, bad{k, Problem{Kind: "blob", ID: d, Err: fmt.Errorf("content hashes to %s: %w", hexKey(got), ErrCorrupt)}})
						}
						return nil
					})
					if err != nil {
						return err
					}
				}
				return nil
			})
		})
		if err != nil {
			return res, err
		}
		for _, b := range bads {
			res.BadBlobs++
			if fix {
				if err := s.withDB(func(db *badger.DB) error {
					return db.Update(func(txn *badger.Txn) error { return txn.Delete(b.key) })
				}); err != nil {
					return res, err
				}
			}
			report(b.p)
		}
		if last == nil {
			break
		}
		seek = append(last, 0)
	}

	// Blob files.
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	err := s.walkBlobFiles(ctx, func(d [32]byte, path string, _ fs.FileInfo) error {
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		defer f.Close()
		h := blake3.New()
		n, err := io.CopyBuffer(h, ctxReader{ctx, onlyReader{f}}, *bp)
		if err != nil {
			return err
		}
		res.Blobs++
		res.Bytes += n
		var got [32]byte
		h.Sum(got[:0])
		if got != d {
			res.BadBlobs++
			if fix {
				removeIfSame(f, path)
			}
			report(Problem{Kind: "blob", ID: d, Path: path, Err: fmt.Errorf("content hashes to %s: %w", hexKey(got), ErrCorrupt)})
		}
		return nil
	}, func(path string) error {
		res.StrayFiles++
		if fix {
			os.RemoveAll(path)
		}
		report(Problem{Kind: "file", Path: path, Err: errors.New("not a blob")})
		return nil
	})
	if err != nil {
		return res, err
	}

	// Actions: decodable, and every blob present.
	var dead [][32]byte
	var problems []Problem
	err = s.scanActions(ctx, func(key [32]byte, a *ActionResult, derr error) error {
		res.Actions++
		if a == nil {
			dead = append(dead, key)
			problems = append(problems, Problem{Kind: "action", ID: key, Err: derr})
			return nil
		}
		return s.withDB(func(db *badger.DB) error {
			for _, b := range a.Blobs() {
				ok, err := s.hasBlob(db, b.Digest)
				if err != nil {
					return err
				}
				if !ok {
					dead = append(dead, a.Key)
					problems = append(problems, Problem{Kind: "action", ID: a.Key, Err: fmt.Errorf("blob %s is missing: %w", b, ErrNotFound)})
					break
				}
			}
			return nil
		})
	})
	if err != nil {
		return res, err
	}
	res.BadActions = len(dead)
	if fix {
		if err := s.deleteActions(dead); err != nil {
			return res, err
		}
	}
	for _, p := range problems {
		report(p)
	}
	return res, nil
}

// deleteActions removes actions and their last-use records.
func (s *Store) deleteActions(keys [][32]byte) error {
	if len(keys) == 0 {
		return nil
	}
	if err := s.checkSpace(minFreeBytes / 4); err != nil {
		return err
	}
	return s.withDB(func(db *badger.DB) error {
		wb := db.NewWriteBatch()
		defer wb.Cancel()
		for _, k := range keys {
			if err := wb.Delete(actionKey(k)); err != nil {
				return err
			}
			if err := wb.Delete(usedKey(k)); err != nil {
				return err
			}
		}
		return wb.Flush()
	})
}

// GCOptions select what GC removes.
type GCOptions struct {
	// MaxAge removes actions not used for longer than this; 0: no limit.
	MaxAge time.Duration
	// MaxSize removes least recently used actions until the cache
	// directory uses less than this many bytes on disk; 0: no limit.
	MaxSize int64
	// Keep, if set, names actions GC must not remove (those used by
	// recent runs). It is called once per action, outside any index
	// transaction.
	Keep func(key [32]byte) bool
}

// GCResult summarises a GC run.
type GCResult struct {
	Actions       int   // actions before
	RemovedByAge  int   // actions removed for MaxAge
	RemovedBySize int   // actions removed for MaxSize
	Corrupt       int   // undecodable action records removed
	BlobsRemoved  int   // unreferenced blobs removed
	BytesBefore   int64 // disk usage before
	BytesAfter    int64 // disk usage after; above MaxSize only if what is kept is larger
	// Deferred counts removed actions whose index entries could not be
	// deleted because the disk is nearly full; their blobs are gone, so
	// they are misses, and the next GC deletes them.
	Deferred int
	// CompactSkipped reports that the index was not compacted for lack of
	// free space to rewrite it.
	CompactSkipped bool
}
