package cas

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/zeebo/blake3"
)

// The journal, v1/journal.log, lets Lookup stores write. Opening badger
// writable and closing it again costs milliseconds (a memtable is mapped,
// every table reopened, the memtable flushed to a new table at close),
// which dominated a build that re-ran one small task. A Lookup store
// instead appends each action, with the inline blobs it names, as one line
// to the journal; blob files are written as by a writable store (Lookup
// stores hold the directory lock shared, so no writer clears v1/tmp or
// runs GC meanwhile). Every store reads the journal at Open, and a
// writable Open (holding the lock exclusively, so no one appends) merges
// it into the index and removes it.
//
// A line is
//
//	J1 <key hex> <blob digests hex, comma-separated, or -> <check> <JSON>\n
//
// where check is the hex of the first 8 bytes of the BLAKE3 of everything
// after it (the space and the JSON), and the JSON is journalEntry. Each
// append is one write(2) of "\n" and one line, with O_APPEND: appends from
// several processes do not interleave, and a line cut short (a full disk)
// is ended by the next append's leading newline and fails its check.
// Lines that fail their check are skipped: that entry is a miss. A later
// line for the same key replaces an earlier one.

// journalMax is the journal size beyond which Lookup stores refuse puts
// with ErrJournalFull, so that the caller opens the store writable, which
// merges the journal. Every Open reads the journal, so it is kept small.
const journalMax = 256 << 10

// journalName is the journal's file name in v1.
const journalName = "journal.log"

// ErrJournalFull reports a put refused by a Lookup store because the
// journal is full: store it through a writable Store, which merges the
// journal first.
var ErrJournalFull = errors.New("cache journal is full")

// journalEntry is the JSON part of a journal line: the action record as
// stored in the index, and the content of the inline blobs listed in the
// line's header, in the same order.
type journalEntry struct {
	R json.RawMessage `json:"r"`
	B [][]byte        `json:"b,omitempty"`
}

// journal is the parsed journal of one Store: where each action and blob
// is found. Lines are checked when used, not at Open.
type journal struct {
	size    int // bytes read and appended
	actions map[[32]byte]journalLine
	blobs   map[[32]byte]journalLine
}

// journalLine is one line of the journal. Lines refer to the buffer they
// were read or appended in, so that appending never copies the journal.
type journalLine struct {
	text []byte // the line without its newline
	off  int    // its offset in the journal file, for messages
	blob int    // for blobs: the index in journalEntry.B
}

// readJournal reads and indexes the journal; a missing one is empty.
func (s *Store) readJournal() error {
	data, err := os.ReadFile(filepath.Join(s.root, journalName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read journal: %w", err)
	}
	s.jn = parseJournal(data)
	return nil
}

func parseJournal(data []byte) *journal {
	j := &journal{size: len(data), actions: map[[32]byte]journalLine{}, blobs: map[[32]byte]journalLine{}}
	for off := 0; off < len(data); {
		end := bytes.IndexByte(data[off:], '\n')
		if end < 0 {
			end = len(data)
		} else {
			end += off
		}
		j.index(data[off:end:end], off)
		off = end + 1
	}
	return j
}

// index records line, found at offset off of the file, by its header.
func (j *journal) index(line []byte, off int) {
	f := bytes.SplitN(line, []byte(" "), 5)
	if len(f) != 5 || string(f[0]) != "J1" {
		return
	}
	var key [32]byte
	if hex.DecodedLen(len(f[1])) != 32 || decodeHex(key[:], f[1]) != nil {
		return
	}
	j.actions[key] = journalLine{text: line, off: off}
	if string(f[2]) == "-" {
		return
	}
	for i, h := range bytes.Split(f[2], []byte(",")) {
		var d [32]byte
		if hex.DecodedLen(len(h)) != 32 || decodeHex(d[:], h) != nil {
			return
		}
		j.blobs[d] = journalLine{text: line, off: off, blob: i}
	}
}

func decodeHex(dst, src []byte) error {
	_, err := hex.Decode(dst, src)
	return err
}

// entry checks and decodes the line at l.
func (j *journal) entry(l journalLine) (*journalEntry, error) {
	f := bytes.SplitN(l.text, []byte(" "), 5)
	if len(f) != 5 {
		return nil, corruptf("journal line at byte %d: cut short", l.off)
	}
	rest := l.text[len(f[0])+len(f[1])+len(f[2])+len(f[3])+3:]
	sum := blake3.Sum256(rest)
	if hex.EncodeToString(sum[:8]) != string(f[3]) {
		return nil, corruptf("journal line at byte %d: checksum mismatch", l.off)
	}
	var e journalEntry
	if err := json.Unmarshal(f[4], &e); err != nil {
		return nil, corruptf("journal line at byte %d: %v", l.off, err)
	}
	return &e, nil
}

// action returns the record stored for key, if any line holds one that
// checks out.
func (j *journal) action(key [32]byte) ([]byte, bool) {
	if j == nil {
		return nil, false
	}
	l, ok := j.actions[key]
	if !ok {
		return nil, false
	}
	e, err := j.entry(l)
	if err != nil {
		return nil, false
	}
	return e.R, true
}

// blob returns the content of inline blob d, verified, if the journal holds
// it.
func (j *journal) blob(d [32]byte) ([]byte, bool) {
	if j == nil {
		return nil, false
	}
	l, ok := j.blobs[d]
	if !ok {
		return nil, false
	}
	e, err := j.entry(l)
	if err != nil || l.blob >= len(e.B) || blake3.Sum256(e.B[l.blob]) != d {
		return nil, false
	}
	return e.B[l.blob], true
}

func (j *journal) hasBlob(d [32]byte) bool {
	if j == nil {
		return false
	}
	_, ok := j.blobs[d]
	return ok
}

// hasAction reports whether a line names key, without decoding or checking
// it (action does both).
func (j *journal) hasAction(key [32]byte) bool {
	if j == nil {
		return false
	}
	_, ok := j.actions[key]
	return ok
}

// keys returns the keys of the journal's actions, sorted.
func (j *journal) keys() [][32]byte {
	if j == nil {
		return nil
	}
	keys := make([][32]byte, 0, len(j.actions))
	for k := range j.actions {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	return keys
}

// journalLineFor encodes one journal line (with its leading newline). rec
// is an action record as encodeAction returns it, compact JSON.
func journalLineFor(key [32]byte, rec []byte, blobs map[[32]byte][]byte) []byte {
	digests := make([][32]byte, 0, len(blobs))
	for d := range blobs {
		digests = append(digests, d)
	}
	slices.SortFunc(digests, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	hexes := make([]string, len(digests))
	for i, d := range digests {
		hexes[i] = hexKey(d)
	}
	rest := appendJournalEntry([]byte{' '}, rec, digests, blobs)
	list := strings.Join(hexes, ",")
	if list == "" {
		list = "-"
	}
	sum := blake3.Sum256(rest)
	var b bytes.Buffer
	b.Grow(len(rest) + 160 + len(list))
	fmt.Fprintf(&b, "\nJ1 %s %s %s", hexKey(key), list, hex.EncodeToString(sum[:8]))
	b.Write(rest)
	b.WriteByte('\n')
	return b.Bytes()
}

// appendJournalEntry appends the JSON of journalEntry{R: rec, B: the blobs
// in digests' order}, byte for byte what encoding/json gives for a compact
// rec, without json.Marshal scanning rec again (rec holds the whole key
// preimage: that scan was most of a journal put's encoding).
func appendJournalEntry(dst, rec []byte, digests [][32]byte, blobs map[[32]byte][]byte) []byte {
	dst = append(dst, `{"r":`...)
	dst = append(dst, rec...)
	if len(digests) > 0 {
		dst = append(dst, `,"b":[`...)
		for i, d := range digests {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '"')
			dst = base64.StdEncoding.AppendEncode(dst, blobs[d])
			dst = append(dst, '"')
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

// appendJournal writes line to the journal in one write, refusing with
// ErrJournalFull when the journal has grown past journalMax. Errors that
// mean the directory cannot be written match ErrReadOnly.
// The caller holds jnMu. The file stays open until the store closes.
func (s *Store) appendJournal(line []byte) error {
	if s.jnFile == nil {
		f, err := os.OpenFile(filepath.Join(s.root, journalName), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o666)
		if err != nil {
			if isReadOnlyErr(err) {
				return fmt.Errorf("%w: %w", ErrReadOnly, err)
			}
			return err
		}
		s.jnFile = f
	}
	f := s.jnFile
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size()+int64(len(line)) > journalMax {
		return ErrJournalFull
	}
	n, err := f.Write(line)
	if err == nil && n < len(line) {
		err = io.ErrShortWrite
	}
	if errors.Is(err, syscall.ENOSPC) {
		err = fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return err
}

// mergeJournal folds the journal into the index and removes it; the caller
// holds the directory lock exclusively. Lines that fail their check are
// dropped. When the index cannot take the entries, the journal stays and
// goes on serving reads.
func (s *Store) mergeJournal(db *badger.DB) error {
	j := s.jn
	if j == nil || j.size == 0 {
		return nil
	}
	if err := s.checkSpace(minFreeBytes); err != nil {
		return err
	}
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	// j.actions holds each key's last line only: the order of the writes
	// does not matter.
	for key, l := range j.actions {
		e, err := j.entry(l)
		if err != nil {
			continue
		}
		if _, err := decodeAction(key, e.R, nil); err != nil {
			continue
		}
		for _, data := range e.B {
			if err := wb.Set(blobKey(blake3.Sum256(data)), data); err != nil {
				return fmt.Errorf("merge journal: %w", err)
			}
		}
		if err := wb.Set(actionKey(key), e.R); err != nil {
			return fmt.Errorf("merge journal: %w", err)
		}
		s.filterAdd(key)
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("merge journal: %w", err)
	}
	if err := os.Remove(filepath.Join(s.root, journalName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("merge journal: %w", err)
	}
	s.jn = nil
	return nil
}

// putJournal is PutAction for a Lookup store: the action and the inline
// blobs it names that this store was given (inline, or earlier through
// PutBlob) go into the journal as one line. No GC runs while a Lookup store is open (GC needs the lock
// exclusively), so nothing needs pinning.
func (s *Store) putJournal(a, stored *ActionResult, rec []byte, refs []BlobRef, inline map[[32]byte][]byte, now time.Time) error {
	s.jnMu.Lock()
	blobs := map[[32]byte][]byte{}
	for _, b := range refs {
		if data, ok := inline[b.Digest]; ok {
			blobs[b.Digest] = data
		} else if data, ok := s.pending[b.Digest]; ok {
			blobs[b.Digest] = data
		}
	}
	s.jnMu.Unlock()
	// Only blobs this store was not given need the index (which a store
	// with a key filter may not have opened).
	var others []BlobRef
	for _, b := range refs {
		if _, ok := blobs[b.Digest]; !ok && b.Digest != EmptyBlob.Digest && !s.journalHasBlob(b.Digest) {
			others = append(others, b)
		}
	}
	if len(others) > 0 {
		err := s.withDB(func(db *badger.DB) error { return s.requireBlobs(db, others) })
		if err != nil {
			return err
		}
	}
	line := journalLineFor(a.Key, rec, blobs)
	s.jnMu.Lock()
	if err := s.appendJournal(line); err != nil {
		s.jnMu.Unlock()
		return err
	}
	if s.jn == nil {
		s.jn = parseJournal(nil)
	}
	off := s.jn.size + 1 // after the leading newline
	s.jn.size += len(line)
	s.jn.index(line[1:len(line)-1:len(line)-1], off)
	for d := range blobs {
		delete(s.pending, d)
	}
	s.jnMu.Unlock()
	a.CreatedAt, a.LastUsed = stored.CreatedAt, now
	return nil
}

// journalAction returns the journal's record for key.
func (s *Store) journalAction(key [32]byte) ([]byte, bool) {
	s.jnMu.Lock()
	defer s.jnMu.Unlock()
	return s.jn.action(key)
}

// journalHasAction reports whether the journal has a line for key.
func (s *Store) journalHasAction(key [32]byte) bool {
	s.jnMu.Lock()
	defer s.jnMu.Unlock()
	return s.jn.hasAction(key)
}

// journalBlob returns the journal's verified content of blob d.
func (s *Store) journalBlob(d [32]byte) ([]byte, bool) {
	s.jnMu.Lock()
	defer s.jnMu.Unlock()
	return s.jn.blob(d)
}

func (s *Store) journalHasBlob(d [32]byte) bool {
	s.jnMu.Lock()
	defer s.jnMu.Unlock()
	return s.jn.hasBlob(d)
}

// journalKeys returns the keys of the journal's actions, sorted.
func (s *Store) journalKeys() [][32]byte {
	s.jnMu.Lock()
	defer s.jnMu.Unlock()
	return s.jn.keys()
}

// scanJournal calls fn, as scanActions does, for each action that only the
// journal holds (a writable store has merged its journal: none).
func (s *Store) scanJournal(ctx context.Context, fn func([32]byte, *ActionResult, error) error) error {
	for _, key := range s.journalKeys() {
		if err := ctx.Err(); err != nil {
			return err
		}
		inIndex := false
		err := s.withDB(func(db *badger.DB) error {
			return db.View(func(txn *badger.Txn) error {
				_, err := txn.Get(actionKey(key))
				if err == nil {
					inIndex = true
				} else if errors.Is(err, badger.ErrKeyNotFound) {
					err = nil
				}
				return err
			})
		})
		if err != nil {
			return err
		}
		if inIndex {
			continue
		}
		rec, ok := s.journalAction(key)
		if !ok {
			continue
		}
		a, derr := decodeAction(key, rec, nil)
		if err := fn(key, a, derr); err != nil {
			return err
		}
	}
	return nil
}
