package cas

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
)

// The key filter (v1/keys.filter) lets a lookup that misses skip the
// index: it is a Bloom filter over every action key in the index, so a key
// it does not contain is not there, and a Lookup or read-only store that
// finds a valid filter opens badger only when a lookup passes it (or
// something else needs the index). A build that re-runs a changed task
// thus neither opens nor closes the index, which cost it about a
// millisecond of each.
//
// A writable store answers misses from the filter too: the one it read
// before opening the index, or an empty one for an index it made, with
// every key it adds. A cold build so looks up each new key without
// reading the index (9 µs a lookup in badger).
//
// The filter can only say "maybe" wrongly, never "no": a writable store
// removes the file when it opens, before it writes anything, and writes it
// again (with every key it added, or rebuilt from the index) when it closes
// cleanly; readers hold the shared lock, so they never see a writer's work
// in progress, and a writer killed midway leaves no filter, which only
// means that readers open the index. Deleted keys stay in the filter until
// it is rebuilt; that costs an index open, nothing else. Journal entries are
// not in the filter: lookups consult the journal first.
const filterName = "keys.filter"

// filterMagic opens the file; the stat data of the index's MANIFEST when
// the filter was written (size, mtime in ns, inode), the bit count, the
// number of keys added, the bits (little-endian 64-bit words) and a CRC-32C
// of everything before it follow. The MANIFEST changes whenever badger
// closes after a write, so a filter is trusted only for the index it was
// written for: one that anything else wrote to since, such as an older
// rustypipe that knows no filter, makes readers open the index.
const filterMagic = "rustypipe keyfilter 1\n"

// manifestStamp is the stat data of the index's MANIFEST that binds a
// filter to the index.
type manifestStamp struct{ size, mtimeNs, ino uint64 }

func (s *Store) manifestStamp() (manifestStamp, bool) {
	fi, err := os.Stat(filepath.Join(s.root, indexName, "MANIFEST"))
	if err != nil {
		return manifestStamp{}, false
	}
	return manifestStamp{uint64(fi.Size()), uint64(fi.ModTime().UnixNano()), fileIno(fi)}, true
}

// Bits per key and probes per lookup: about 1% of missing keys pass.
const (
	filterBitsPerKey = 10
	filterProbes     = 7
	filterMinKeys    = 4096
)

var filterCRC = crc32.MakeTable(crc32.Castagnoli)

// keyFilter is a Bloom filter of action keys. Keys are BLAKE3 digests, so
// their own bytes serve as the hash values.
type keyFilter struct {
	bits  []uint64
	count uint64
}

// newKeyFilter returns an empty filter sized for capacity keys.
func newKeyFilter(capacity int) *keyFilter {
	n := max(capacity, filterMinKeys) * filterBitsPerKey
	return &keyFilter{bits: make([]uint64, (n+63)/64)}
}

func (f *keyFilter) probes(key [32]byte, fn func(bit uint64) bool) bool {
	n := uint64(len(f.bits)) * 64
	h1 := binary.LittleEndian.Uint64(key[0:8])
	h2 := binary.LittleEndian.Uint64(key[8:16]) | 1
	for i := range uint64(filterProbes) {
		if !fn((h1 + i*h2) % n) {
			return false
		}
	}
	return true
}

func (f *keyFilter) add(key [32]byte) {
	f.probes(key, func(b uint64) bool { f.bits[b/64] |= 1 << (b % 64); return true })
	f.count++
}

// mayContain reports false only for a key that was never added.
func (f *keyFilter) mayContain(key [32]byte) bool {
	return f.probes(key, func(b uint64) bool { return f.bits[b/64]&(1<<(b%64)) != 0 })
}

// full reports whether the filter holds more keys than it was sized for.
func (f *keyFilter) full() bool {
	return f.count*filterBitsPerKey > uint64(len(f.bits))*64
}

func (f *keyFilter) encode(m manifestStamp) []byte {
	b := make([]byte, 0, len(filterMagic)+40+8*len(f.bits)+4)
	b = append(b, filterMagic...)
	b = binary.LittleEndian.AppendUint64(b, m.size)
	b = binary.LittleEndian.AppendUint64(b, m.mtimeNs)
	b = binary.LittleEndian.AppendUint64(b, m.ino)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(f.bits))*64)
	b = binary.LittleEndian.AppendUint64(b, f.count)
	for _, w := range f.bits {
		b = binary.LittleEndian.AppendUint64(b, w)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, filterCRC))
}

// decodeKeyFilter reads an encoded filter and the MANIFEST stamp it was
// written for; ok is false for anything else.
func decodeKeyFilter(data []byte) (f *keyFilter, m manifestStamp, ok bool) {
	head := len(filterMagic) + 40
	if len(data) < head+4 || !bytes.HasPrefix(data, []byte(filterMagic)) {
		return nil, m, false
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, filterCRC) != sum {
		return nil, m, false
	}
	u := func(i int) uint64 { return binary.LittleEndian.Uint64(data[len(filterMagic)+8*i:]) }
	m = manifestStamp{u(0), u(1), u(2)}
	nbits := u(3)
	words := body[head:]
	if nbits == 0 || nbits%64 != 0 || uint64(len(words)) != nbits/8 {
		return nil, m, false
	}
	f = &keyFilter{bits: make([]uint64, nbits/64), count: u(4)}
	for i := range f.bits {
		f.bits[i] = binary.LittleEndian.Uint64(words[8*i:])
	}
	return f, m, true
}

// readKeyFilter reads the store's filter; ok is false when there is none,
// it is not valid, or the index changed since it was written.
func (s *Store) readKeyFilter() (*keyFilter, bool) {
	data, err := os.ReadFile(filepath.Join(s.root, filterName))
	if err != nil {
		return nil, false
	}
	f, m, ok := decodeKeyFilter(data)
	if !ok {
		return nil, false
	}
	now, ok := s.manifestStamp()
	return f, ok && now == m
}

// takeKeyFilter is a writable store's first step after opening the index:
// it keeps the filter to extend, f, which the caller read before the open
// (badger rewrites the MANIFEST when it opens, so a filter read after
// would never match it), and removes the file, which stays absent while
// this store may write. ok is readKeyFilter's verdict on f.
func (s *Store) takeKeyFilter(f *keyFilter, ok bool) error {
	if !ok || f.full() {
		f = nil // rebuilt from the index at Close
	}
	s.filter = f
	err := os.Remove(filepath.Join(s.root, filterName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove key filter: %w", err)
	}
	return nil
}

// filterAdd records a key a writable store put into the index.
func (s *Store) filterAdd(key [32]byte) {
	s.filterMu.Lock()
	if s.filter != nil {
		s.filter.add(key)
	}
	s.filterMu.Unlock()
}

// keyFilterToSave returns the filter a writable store writes when it
// closes, rebuilt from the index when there was none or it is full; nil
// when the index cannot be read, which leaves no filter. The caller holds
// dbMu.
func (s *Store) keyFilterToSave(db *badger.DB) *keyFilter {
	s.filterMu.Lock()
	f := s.filter
	s.filterMu.Unlock()
	if f == nil || f.full() {
		var keys [][32]byte
		err := db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefixAction}) // keys only
			defer it.Close()
			for it.Seek(prefixAction); it.ValidForPrefix(prefixAction); it.Next() {
				k := it.Item().Key()[len(prefixAction):]
				if len(k) == 32 {
					keys = append(keys, [32]byte(k))
				}
			}
			return nil
		})
		if err != nil {
			return nil
		}
		f = newKeyFilter(2 * len(keys))
		for _, k := range keys {
			f.add(k)
		}
	}
	return f
}

// writeKeyFilter writes f for the index as it is now, closed. A failure
// leaves no filter, which is safe.
func (s *Store) writeKeyFilter(f *keyFilter) {
	if m, ok := s.manifestStamp(); ok {
		writeFileAtomic(filepath.Join(s.root, tmpName), filepath.Join(s.root, filterName), f.encode(m))
	}
}
