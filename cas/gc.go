package cas

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// GC removes actions by age (MaxAge) and then, least recently used first,
// by size (MaxSize), sparing those Keep names; removes blobs no action
// names (except those a put in this session relies on); and compacts the
// index so that the space is returned. Sizes are measured by walking the
// directory, so after GC the directory is really below MaxSize unless the
// kept actions need more. Undecodable action records are removed too.
// Readers in other goroutines may run meanwhile: what GC removes becomes a
// miss for them. Returns ErrReadOnly on a read-only store.
func (s *Store) GC(ctx context.Context, o GCOptions) (GCResult, error) {
	res, err := s.gc(ctx, o)
	if err != nil {
		return res, fmt.Errorf("cas: gc: %w", err)
	}
	return res, nil
}

// gcEntry is what GC knows of one live action.
type gcEntry struct {
	key   [32]byte
	used  time.Time
	refs  []BlobRef
	bytes int64 // estimated index space of the record
	keep  bool
}

func (s *Store) gc(ctx context.Context, o GCOptions) (GCResult, error) {
	var res GCResult
	if o.MaxAge < 0 || o.MaxSize < 0 {
		return res, fmt.Errorf("negative limit (max age %v, max size %d)", o.MaxAge, o.MaxSize)
	}
	if err := s.writable(); err != nil {
		return res, err
	}
	s.pinMu.Lock()
	s.gcRunning++
	s.pinMu.Unlock()
	defer func() {
		s.pinMu.Lock()
		if s.gcRunning--; s.gcRunning == 0 {
			for _, d := range s.unpinLater {
				delete(s.pins, d)
			}
			s.unpinLater = nil
		}
		s.pinMu.Unlock()
	}()
	if err := s.withDB(s.flushUsed); err != nil {
		return res, err
	}
	var err error
	if res.BytesBefore, err = DiskUsage(s.dir); err != nil {
		return res, err
	}

	var live []*gcEntry
	var dead [][32]byte
	err = s.scanActions(ctx, func(key [32]byte, a *ActionResult, derr error) error {
		res.Actions++
		if a == nil {
			res.Corrupt++
			dead = append(dead, key)
			return nil
		}
		live = append(live, &gcEntry{
			key:   key,
			used:  a.LastUsed,
			refs:  a.Blobs(),
			bytes: 256 + int64(len(a.Preimage)+len(a.Task)) + 128*int64(len(a.Files)),
			keep:  o.Keep != nil && o.Keep(key),
		})
		return nil
	})
	if err != nil {
		return res, err
	}
	if o.MaxAge > 0 {
		cutoff := s.now().Add(-o.MaxAge)
		live = slices.DeleteFunc(live, func(e *gcEntry) bool {
			if !e.keep && e.used.Before(cutoff) {
				dead = append(dead, e.key)
				res.RemovedByAge++
				return true
			}
			return false
		})
	}
	size, err := s.removeActions(ctx, live, dead, &res)
	if err != nil {
		return res, err
	}

	if o.MaxSize > 0 {
		// Least recently used first; ties in key order, so runs repeat.
		slices.SortFunc(live, func(a, b *gcEntry) int {
			if c := a.used.Compare(b.used); c != 0 {
				return c
			}
			return strings.Compare(string(a.key[:]), string(b.key[:]))
		})
		for size > o.MaxSize {
			evict := s.pickEvictions(live, size-o.MaxSize)
			if len(evict) == 0 {
				break // only kept actions remain
			}
			gone := make(map[[32]byte]bool, len(evict))
			for _, k := range evict {
				gone[k] = true
			}
			live = slices.DeleteFunc(live, func(e *gcEntry) bool { return gone[e.key] })
			res.RemovedBySize += len(evict)
			if size, err = s.removeActions(ctx, live, evict, &res); err != nil {
				return res, err
			}
		}
	}
	res.BytesAfter = size
	return res, nil
}

// removeActions deletes the dead actions and the blobs only they named,
// and returns the directory's disk usage. On a nearly full disk, where
// writing to the index is unsafe, it removes blob files first (which makes
// the dead actions misses: GetAction drops an action whose blob is gone)
// and deletes the index entries once that has freed enough space.
func (s *Store) removeActions(ctx context.Context, live []*gcEntry, dead [][32]byte, res *GCResult) (int64, error) {
	indexOK := s.checkSpace(minFreeBytes/4) == nil
	if !indexOK {
		if _, err := s.sweepAndCompact(ctx, live, false, false, res); err != nil {
			return 0, err
		}
		if s.checkSpace(minFreeBytes/4) != nil {
			res.Deferred += len(dead)
			return DiskUsage(s.dir)
		}
	}
	if err := s.deleteActions(dead); err != nil {
		return 0, err
	}
	return s.sweepAndCompact(ctx, live, true, len(dead) > 0, res)
}

// pickEvictions returns the least recently used unkept actions whose
// removal is estimated to free at least over bytes: each action's record
// plus the blobs no remaining action names. At least one when any is
// evictable; the caller measures again and repeats if the estimate fell
// short.
func (s *Store) pickEvictions(live []*gcEntry, over int64) [][32]byte {
	refs := make(map[[32]byte]int)
	for _, e := range live {
		for _, b := range e.refs {
			refs[b.Digest]++
		}
	}
	var evict [][32]byte
	var freed int64
	for _, e := range live {
		if freed >= over {
			break
		}
		if e.keep {
			continue
		}
		evict = append(evict, e.key)
		freed += e.bytes
		for _, b := range e.refs {
			refs[b.Digest]--
			if refs[b.Digest] == 0 {
				freed += s.blobCost(b)
			}
		}
	}
	return evict
}

// blobCost estimates the disk space a blob takes: its size plus key and
// table overhead inside the index, or its size rounded up to a 4 KiB file
// system block as a file.
func (s *Store) blobCost(b BlobRef) int64 {
	switch {
	case b.Digest == EmptyBlob.Digest:
		return 0
	case b.Size <= s.inline:
		return b.Size + 64
	default:
		return (b.Size + 4095) &^ 4095
	}
}

// sweepAndCompact removes blobs that no live action names and no put in
// this session pinned, and returns the directory's disk usage. With index
// set it also removes inline blobs and compacts the index when anything in
// it changed; otherwise it touches only blob files.
func (s *Store) sweepAndCompact(ctx context.Context, live []*gcEntry, index, indexChanged bool, res *GCResult) (int64, error) {
	referenced := make(map[[32]byte]bool)
	for _, e := range live {
		for _, b := range e.refs {
			referenced[b.Digest] = true
		}
	}

	// Inline blobs: collect keys in a read transaction, delete unpinned
	// ones while holding pinMu so that no put can start relying on them.
	var unref [][32]byte
	err := s.withDB(func(db *badger.DB) error {
		if !index {
			return nil
		}
		return db.View(func(txn *badger.Txn) error {
			opts := badger.DefaultIteratorOptions
			opts.PrefetchValues = false
			opts.Prefix = prefixBlob
			it := txn.NewIterator(opts)
			defer it.Close()
			for it.Rewind(); it.ValidForPrefix(prefixBlob); it.Next() {
				k := it.Item().Key()
				if len(k) != len(prefixBlob)+32 {
					continue
				}
				var d [32]byte
				copy(d[:], k[len(prefixBlob):])
				if !referenced[d] {
					unref = append(unref, d)
				}
			}
			return nil
		})
	})
	if err != nil {
		return 0, err
	}
	if len(unref) > 0 {
		err := s.withDB(func(db *badger.DB) error {
			s.pinMu.Lock()
			defer s.pinMu.Unlock()
			wb := db.NewWriteBatch()
			defer wb.Cancel()
			for _, d := range unref {
				if _, pinned := s.pins[d]; pinned {
					continue
				}
				if err := wb.Delete(blobKey(d)); err != nil {
					return err
				}
				res.BlobsRemoved++
				indexChanged = true
			}
			return wb.Flush()
		})
		if err != nil {
			return 0, err
		}
	}

	// Blob files: deleting one returns its space at once.
	var shards []string
	err = s.walkBlobFiles(ctx, func(d [32]byte, path string, _ fs.FileInfo) error {
		if referenced[d] {
			return nil
		}
		s.pinMu.Lock()
		defer s.pinMu.Unlock()
		if _, pinned := s.pins[d]; pinned {
			return nil
		}
		// A file open for reading cannot be removed on Windows; it stays
		// until the next GC.
		if err := os.Remove(path); err == nil {
			res.BlobsRemoved++
			if sh := filepath.Dir(path); len(shards) == 0 || shards[len(shards)-1] != sh {
				shards = append(shards, sh)
			}
		}
		return nil
	}, func(path string) error {
		os.RemoveAll(path)
		return nil
	})
	if err != nil {
		return 0, err
	}
	// Remove emptied shard directories (each takes a block); os.Remove
	// fails on one that is not empty. storeFile retries when a shard
	// vanishes under it.
	for _, sh := range shards {
		os.Remove(sh)
	}

	if index && indexChanged {
		// Flatten rewrites the tables before deleting the old ones.
		indexSize, err := DiskUsage(filepath.Join(s.root, indexName))
		if err != nil {
			return 0, err
		}
		if s.checkSpace(indexSize+minFreeBytes/4) == nil {
			if err := s.compact(ctx); err != nil {
				return 0, err
			}
		} else {
			res.CompactSkipped = true
		}
	}
	return DiskUsage(s.dir)
}

// compact makes badger return the space of deleted entries: it reopens the
// index (flushing the memtable, which holds the deletions, to a table),
// flattens all levels into one (dropping deleted and overwritten entries)
// and runs value-log GC until nothing is left to rewrite.
func (s *Store) compact(ctx context.Context) error {
	s.dbMu.Lock()
	if s.closed {
		s.dbMu.Unlock()
		return ErrClosed
	}
	err := s.flushUsedLocked()
	if err == nil {
		err = s.reopenLocked()
	}
	s.dbMu.Unlock()
	if err != nil {
		return fmt.Errorf("compact index: %w", err)
	}
	return s.withDB(func(db *badger.DB) error {
		if err := db.Flatten(2); err != nil {
			return fmt.Errorf("compact index: %w", err)
		}
		for ctx.Err() == nil {
			err := db.RunValueLogGC(0.5)
			if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("value log gc: %w", err)
			}
		}
		return ctx.Err()
	})
}
