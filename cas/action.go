package cas

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/zeebo/blake3"

	"github.com/rustypipe/rustypipe/internal/jsonenc"
)

// ActionResult is the stored result of one task run, found by its key.
// Callers convert hashing.Key to and from the [32]byte Key field.
type ActionResult struct {
	Key      [32]byte
	Stdout   BlobRef // zero: not captured; EmptyBlob: empty
	Stderr   BlobRef
	Files    []OutputFile
	ExitCode int
	// Preimage is opaque to the store: the caller's record of what went
	// into Key (for `rustypipe explain`), stored beside the action.
	Preimage []byte
	// Task is the task's name, for listings.
	Task string
	// CreatedAt is set by PutAction when zero. LastUsed is maintained by
	// the store: PutAction and GetAction set it (see lastUsedInterval).
	CreatedAt, LastUsed time.Time
	// Duration is how long the task ran.
	Duration time.Duration
}

// OutputFile is one declared output of an action.
type OutputFile struct {
	// Path is relative to the workspace, "/"-separated and clean: not
	// absolute, no "..", "." or empty elements.
	Path string
	// Mode holds the type (regular, fs.ModeDir or fs.ModeSymlink) and
	// permission bits.
	Mode fs.FileMode
	// Digest and Size name a regular file's content; zero otherwise.
	Digest [32]byte
	Size   int64
	// LinkTarget is a symlink's target, as read by os.Readlink.
	LinkTarget string
}

// Blob returns the file's content reference (zero unless regular).
func (f OutputFile) Blob() BlobRef {
	if !f.Mode.IsRegular() {
		return BlobRef{}
	}
	return BlobRef{Digest: f.Digest, Size: f.Size}
}

// Blobs returns every blob a names, in order: stdout, stderr, files.
func (a *ActionResult) Blobs() []BlobRef {
	refs := make([]BlobRef, 0, len(a.Files)+2)
	for _, b := range []BlobRef{a.Stdout, a.Stderr} {
		if !b.IsZero() {
			refs = append(refs, b)
		}
	}
	for _, f := range a.Files {
		if f.Mode.IsRegular() {
			refs = append(refs, f.Blob())
		}
	}
	return refs
}

// lastUsedInterval is how stale a recorded last use may get before
// GetAction rewrites it: a hit normally costs no write. Go's build cache
// refreshes entry mtimes on the same one-hour interval; ageing works in
// days, and GCOptions.Keep protects what recent runs used.
const lastUsedInterval = time.Hour

// usedFlushAt bounds the pending last-use updates kept in memory.
const usedFlushAt = 1024

func actionKey(k [32]byte) []byte {
	return append(append(make([]byte, 0, 34), prefixAction...), k[:]...)
}

func usedKey(k [32]byte) []byte {
	return append(append(make([]byte, 0, 34), prefixUsed...), k[:]...)
}

// record is the encoded form of an ActionResult in the index (JSON:
// readable with badger's tools, and decode errors are ordinary errors).
type record struct {
	V        int          `json:"v"`
	Task     string       `json:"task,omitempty"`
	Stdout   *blobRecord  `json:"stdout,omitempty"`
	Stderr   *blobRecord  `json:"stderr,omitempty"`
	Files    []fileRecord `json:"files,omitempty"`
	Exit     int          `json:"exit"`
	Preimage []byte       `json:"preimage,omitempty"`
	Created  int64        `json:"created"`  // unix nanoseconds
	Duration int64        `json:"duration"` // nanoseconds
}

type blobRecord struct {
	D hexDigest `json:"d"`
	S int64     `json:"s"`
}

type fileRecord struct {
	P    string     `json:"p"`
	M    uint32     `json:"m"`
	D    *hexDigest `json:"d,omitempty"`
	S    int64      `json:"s,omitempty"`
	Link string     `json:"l,omitempty"`
}

// recordVersion is the version of record; a different one is corrupt.
const recordVersion = 1

type hexDigest [32]byte

func (h hexDigest) MarshalText() ([]byte, error) {
	return []byte(hex.EncodeToString(h[:])), nil
}

// appendJSON appends h as a JSON string, as MarshalText makes it.
func (h hexDigest) appendJSON(dst []byte) []byte {
	dst = append(dst, '"')
	dst = hex.AppendEncode(dst, h[:])
	return append(dst, '"')
}

func (h *hexDigest) UnmarshalText(b []byte) error {
	if len(b) != 64 {
		return fmt.Errorf("digest %q: want 64 hex digits", b)
	}
	_, err := hex.Decode(h[:], b)
	return err
}

func blobRec(b BlobRef) *blobRecord {
	if b.IsZero() {
		return nil
	}
	return &blobRecord{D: hexDigest(b.Digest), S: b.Size}
}

func (b *blobRecord) ref() BlobRef {
	if b == nil {
		return BlobRef{}
	}
	return BlobRef{Digest: b.D, Size: b.S}
}

func encodeAction(a *ActionResult) []byte { return newRecord(a).appendJSON(nil) }

func newRecord(a *ActionResult) *record {
	r := &record{
		V:        recordVersion,
		Task:     a.Task,
		Stdout:   blobRec(a.Stdout),
		Stderr:   blobRec(a.Stderr),
		Exit:     a.ExitCode,
		Preimage: a.Preimage,
		Created:  a.CreatedAt.UnixNano(),
		Duration: int64(a.Duration),
	}
	for _, f := range a.Files {
		fr := fileRecord{P: f.Path, M: uint32(f.Mode), Link: f.LinkTarget}
		if f.Mode.IsRegular() {
			d := hexDigest(f.Digest)
			fr.D, fr.S = &d, f.Size
		}
		r.Files = append(r.Files, fr)
	}
	return r
}

// appendJSON appends r as json.Marshal(r) writes it, without reflection:
// every task a build runs stores one. TestRecordJSON holds the two equal.
func (r *record) appendJSON(dst []byte) []byte {
	if dst == nil {
		dst = make([]byte, 0, 160+len(r.Task)+base64.StdEncoding.EncodedLen(len(r.Preimage))+len(r.Files)*(110+16))
	}
	dst = append(dst, `{"v":`...)
	dst = jsonenc.Int(dst, int64(r.V))
	if r.Task != "" {
		dst = append(dst, `,"task":`...)
		dst = jsonenc.String(dst, r.Task)
	}
	blob := func(name string, b *blobRecord) {
		if b == nil {
			return
		}
		dst = append(dst, `,"`...)
		dst = append(dst, name...)
		dst = append(dst, `":{"d":`...)
		dst = b.D.appendJSON(dst)
		dst = append(dst, `,"s":`...)
		dst = jsonenc.Int(dst, b.S)
		dst = append(dst, '}')
	}
	blob("stdout", r.Stdout)
	blob("stderr", r.Stderr)
	if len(r.Files) > 0 {
		dst = append(dst, `,"files":[`...)
		for i, f := range r.Files {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"p":`...)
			dst = jsonenc.String(dst, f.P)
			dst = append(dst, `,"m":`...)
			dst = jsonenc.Uint(dst, uint64(f.M))
			if f.D != nil {
				dst = append(dst, `,"d":`...)
				dst = f.D.appendJSON(dst)
			}
			if f.S != 0 {
				dst = append(dst, `,"s":`...)
				dst = jsonenc.Int(dst, f.S)
			}
			if f.Link != "" {
				dst = append(dst, `,"l":`...)
				dst = jsonenc.String(dst, f.Link)
			}
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"exit":`...)
	dst = jsonenc.Int(dst, int64(r.Exit))
	if len(r.Preimage) > 0 {
		dst = append(dst, `,"preimage":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, r.Preimage)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"created":`...)
	dst = jsonenc.Int(dst, r.Created)
	dst = append(dst, `,"duration":`...)
	dst = jsonenc.Int(dst, r.Duration)
	return append(dst, '}')
}

func decodeAction(key [32]byte, val, used []byte) (*ActionResult, error) {
	var r record
	dec := json.NewDecoder(bytes.NewReader(val))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, corruptf("action %s: %v", hexKey(key), err)
	}
	if r.V != recordVersion {
		return nil, corruptf("action %s: record version %d", hexKey(key), r.V)
	}
	a := &ActionResult{
		Key:       key,
		Task:      r.Task,
		Stdout:    r.Stdout.ref(),
		Stderr:    r.Stderr.ref(),
		ExitCode:  r.Exit,
		Preimage:  r.Preimage,
		CreatedAt: time.Unix(0, r.Created),
		Duration:  time.Duration(r.Duration),
	}
	for _, fr := range r.Files {
		f := OutputFile{Path: fr.P, Mode: fs.FileMode(fr.M), Size: fr.S, LinkTarget: fr.Link}
		if fr.D != nil {
			f.Digest = *fr.D
		}
		a.Files = append(a.Files, f)
	}
	if err := validateAction(a); err != nil {
		return nil, corruptf("action %s: %v", hexKey(key), err)
	}
	// The later of the creation and the use record: an action stored
	// again under its key keeps the use record of the one it replaced.
	a.LastUsed = a.CreatedAt
	if len(used) == 8 {
		if t := time.Unix(0, int64(binary.BigEndian.Uint64(used))); t.After(a.LastUsed) {
			a.LastUsed = t
		}
	}
	return a, nil
}

// validateAction checks what PutAction stores and decode reads back.
func validateAction(a *ActionResult) error {
	for _, b := range []BlobRef{a.Stdout, a.Stderr} {
		if b.Size < 0 {
			return fmt.Errorf("negative output size %d", b.Size)
		}
	}
	seen := make(map[string]bool, len(a.Files))
	for _, f := range a.Files {
		if err := validPath(f.Path); err != nil {
			return err
		}
		if seen[f.Path] {
			return fmt.Errorf("output %q listed twice", f.Path)
		}
		seen[f.Path] = true
		switch f.Mode.Type() {
		case 0:
			if f.Size < 0 {
				return fmt.Errorf("output %q: negative size %d", f.Path, f.Size)
			}
			if f.LinkTarget != "" {
				return fmt.Errorf("output %q: regular file with a link target", f.Path)
			}
		case fs.ModeSymlink:
			if f.LinkTarget == "" {
				return fmt.Errorf("output %q: symlink without a target", f.Path)
			}
		case fs.ModeDir:
		default:
			return fmt.Errorf("output %q: unsupported file type %v", f.Path, f.Mode.Type())
		}
	}
	return nil
}

func validPath(p string) error {
	if p == "" || path.IsAbs(p) || len(p) >= 2 && p[1] == ':' {
		return fmt.Errorf("output path %q is not relative", p)
	}
	if strings.Contains(p, `\`) {
		return fmt.Errorf("output path %q is not /-separated", p)
	}
	if path.Clean(p) != p || p == "." || p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Errorf("output path %q is not clean and inside the workspace", p)
	}
	return nil
}

func encodeTime(t time.Time) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(t.UnixNano()))
	return b[:]
}

// GetAction returns the action stored under key. It returns ErrNotFound
// when there is none or when a blob it names is missing (the action is
// then deleted from a writable store), and an error matching ErrCorrupt
// (and ErrNotFound) when the stored record cannot be decoded (it is
// deleted too). A hit records the use for GC, rewriting the stored time
// at most once per lastUsedInterval, and not at all on a read-only store.
// Blob content is verified when read with OpenBlob, not here. The result
// belongs to the caller. Safe for concurrent use.
func (s *Store) GetAction(ctx context.Context, key [32]byte) (*ActionResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("cas: get action %s: %w", hexKey(key), err)
	}
	if !s.journalHasAction(key) && s.filteredOut(key) {
		return nil, &actionMissError{key: key}
	}
	var a *ActionResult
	err := s.withDB(func(db *badger.DB) error {
		if rec, ok := s.journalAction(key); ok {
			var err error
			if a, err = decodeAction(key, rec, nil); err == nil {
				if err = s.checkBlobs(db, a); err == nil {
					return nil
				}
			}
			// Not usable: what the index holds, if anything, may be.
			a = nil
		}
		var val, used []byte
		err := db.View(func(txn *badger.Txn) error {
			item, err := txn.Get(actionKey(key))
			if err != nil {
				return err
			}
			if val, err = item.ValueCopy(nil); err != nil {
				return err
			}
			item, err = txn.Get(usedKey(key))
			if err == nil {
				used, err = item.ValueCopy(nil)
			} else if errors.Is(err, badger.ErrKeyNotFound) {
				err = nil
			}
			return err
		})
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		a, err = decodeAction(key, val, used)
		if err != nil {
			s.dropAction(db, key)
			return err
		}
		if err := s.checkBlobs(db, a); err != nil {
			if errors.Is(err, ErrNotFound) {
				s.dropAction(db, key)
			}
			return err
		}
		return nil
	})
	if err == ErrNotFound {
		return nil, &actionMissError{key: key}
	}
	if err != nil {
		return nil, fmt.Errorf("cas: get action %s: %w", hexKey(key), err)
	}
	s.noteUse(a)
	return a, nil
}

// actionMissError is GetAction's error for a key that is not stored:
// "cas: get action <key>: not found", matching ErrNotFound. It is made for
// every miss, most of which nobody prints, so the text is formatted only
// when asked for.
type actionMissError struct{ key [32]byte }

func (e *actionMissError) Error() string {
	return fmt.Sprintf("cas: get action %s: %v", hexKey(e.key), ErrNotFound)
}

func (e *actionMissError) Unwrap() error { return ErrNotFound }

// checkBlobs returns an error matching ErrNotFound when a blob a names is
// not stored.
func (s *Store) checkBlobs(db *badger.DB, a *ActionResult) error {
	for _, b := range a.Blobs() {
		ok, err := s.hasBlob(db, b.Digest)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("blob %s is gone: %w", hexKey(b.Digest), ErrNotFound)
		}
	}
	return nil
}

// dropAction deletes a dead action from a writable store, best effort.
func (s *Store) dropAction(db *badger.DB, key [32]byte) {
	if s.readOnly || s.checkSpace(minFreeBytes/4) != nil {
		return
	}
	db.Update(func(txn *badger.Txn) error {
		if err := txn.Delete(actionKey(key)); err != nil {
			return err
		}
		return txn.Delete(usedKey(key))
	})
}

// noteUse queues a last-use update when the stored one is stale, and sets
// a.LastUsed to the time of this use.
func (s *Store) noteUse(a *ActionResult) {
	now := s.now()
	stale := now.Sub(a.LastUsed) >= lastUsedInterval
	a.LastUsed = now
	if s.readOnly && !s.lookup || !stale {
		return
	}
	s.usedMu.Lock()
	s.used[a.Key] = now
	n := len(s.used)
	s.usedMu.Unlock()
	if n >= usedFlushAt {
		s.withDB(func(db *badger.DB) error { return s.flushUsed(db) })
	}
}

// flushUsedLocked writes pending last-use times; the caller holds dbMu.
func (s *Store) flushUsedLocked() error {
	if s.db == nil && !s.lookup {
		return nil
	}
	return s.flushUsed(s.db) // a Lookup store's needs no index
}

// flushUsed writes pending last-use times for actions that still exist,
// unless an equal or later time is stored; a Lookup store appends them to
// the use log instead.
func (s *Store) flushUsed(db *badger.DB) error {
	s.usedMu.Lock()
	pending := s.used
	s.used = map[[32]byte]time.Time{}
	s.usedMu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	if s.lookup {
		s.appendUses(pending)
		return nil
	}
	if s.readOnly || s.checkSpace(minFreeBytes/4) != nil {
		return nil // use times are a hint; not worth failing for
	}
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	err := db.View(func(txn *badger.Txn) error {
		for k, t := range pending {
			if _, err := txn.Get(actionKey(k)); err != nil {
				if errors.Is(err, badger.ErrKeyNotFound) {
					continue // deleted meanwhile
				}
				return err
			}
			if item, err := txn.Get(usedKey(k)); err == nil {
				var newer bool
				item.Value(func(v []byte) error {
					newer = len(v) == 8 && int64(binary.BigEndian.Uint64(v)) >= t.UnixNano()
					return nil
				})
				if newer {
					continue
				}
			}
			if err := wb.Set(usedKey(k), encodeTime(t)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record use: %w", err)
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("record use: %w", err)
	}
	return nil
}

// PutAction stores a under a.Key, replacing any action there. Every blob a
// names must be stored already (put blobs first, on the same Store, so GC
// cannot collect them in between); a missing one gives an error matching
// ErrNotFound and nothing is written. (GC in another goroutine can still
// remove a blob put here if another action naming it was stored and then
// removed in between; PutAction then fails this way, and the store stays
// consistent.) Paths must be clean, relative and
// unique. CreatedAt is set when zero; LastUsed is set to now. Returns
// ErrReadOnly on a read-only store. Safe for concurrent use.
func (s *Store) PutAction(ctx context.Context, a *ActionResult) error {
	if err := s.putAction(ctx, a, nil); err != nil {
		return fmt.Errorf("cas: put action %s: %w", hexKey(a.Key), err)
	}
	return nil
}

// PutActionInline is PutAction for an action that comes with the content
// of some of the blobs it names, each at most InlineLimit bytes: those
// blobs and the action are written together, in one index transaction
// (one journal line for a Lookup store), instead of a transaction each.
// Every other blob a names must be stored already, as for PutAction.
// Content that a does not name, or that is longer than InlineLimit, is an
// error, and nothing is written.
func (s *Store) PutActionInline(ctx context.Context, a *ActionResult, contents [][]byte) error {
	named := map[[32]byte]bool{}
	for _, b := range a.Blobs() {
		named[b.Digest] = true
	}
	inline := make(map[[32]byte][]byte, len(contents))
	for _, c := range contents {
		d := blake3.Sum256(c)
		switch {
		case int64(len(c)) > s.inline:
			return fmt.Errorf("cas: put action %s: blob %s is %d bytes, over the inline limit %d", hexKey(a.Key), hexKey(d), len(c), s.inline)
		case !named[d]:
			return fmt.Errorf("cas: put action %s: blob %s is not named by the action", hexKey(a.Key), hexKey(d))
		case d != EmptyBlob.Digest:
			inline[d] = c
		}
	}
	if err := s.putAction(ctx, a, inline); err != nil {
		return fmt.Errorf("cas: put action %s: %w", hexKey(a.Key), err)
	}
	return nil
}

// InlineLimit is the size up to which blobs are kept in the index rather
// than in files of their own (Options.BlobInline).
func (s *Store) InlineLimit() int64 { return s.inline }

// putAction stores a and, with it, the inline blobs given (digest →
// content, each named by a and within the inline limit).
func (s *Store) putAction(ctx context.Context, a *ActionResult, inline map[[32]byte][]byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.canPut(); err != nil {
		return err
	}
	if err := validateAction(a); err != nil {
		return err
	}
	if err := s.checkSpace(minFreeBytes); err != nil {
		return err
	}
	now := s.now()
	stored := *a
	if stored.CreatedAt.IsZero() {
		stored.CreatedAt = now
	}
	val := encodeAction(&stored)
	refs := a.Blobs()
	if s.lookup {
		return s.putJournal(a, &stored, val, refs, inline, now)
	}
	// Pin before checking, so that GC cannot delete a blob between the
	// check and the write.
	s.pinMu.Lock()
	for _, b := range refs {
		s.pins[b.Digest] = struct{}{}
	}
	s.pinMu.Unlock()
	var others []BlobRef // the blobs that must be stored already
	for _, b := range refs {
		if _, ok := inline[b.Digest]; !ok {
			others = append(others, b)
		}
	}
	return s.withDB(func(db *badger.DB) error {
		// Checked in a read transaction of its own: reads in the write
		// transaction would make it conflict with concurrent puts of the
		// same blobs.
		if err := s.requireBlobs(db, others); err != nil {
			return err
		}
		err := db.Update(func(txn *badger.Txn) error {
			for d, data := range inline {
				if err := txn.Set(blobKey(d), data); err != nil {
					return err
				}
			}
			// No use record: an action's last use is its creation until
			// one is recorded (decodeAction).
			return txn.Set(actionKey(a.Key), val)
		})
		if err != nil {
			return err
		}
		s.filterAdd(a.Key)
		s.usedMu.Lock()
		delete(s.used, a.Key)
		s.usedMu.Unlock()
		s.unpin(refs)
		a.CreatedAt, a.LastUsed = stored.CreatedAt, now
		return nil
	})
}

// requireBlobs returns an error matching ErrNotFound unless every blob in
// refs is stored.
func (s *Store) requireBlobs(db *badger.DB, refs []BlobRef) error {
	for _, b := range refs {
		ok, err := s.hasBlob(db, b.Digest)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("blob %s is not stored: %w", b, ErrNotFound)
		}
	}
	return nil
}

// unpin releases pins on blobs that a stored action now names.
func (s *Store) unpin(refs []BlobRef) {
	s.pinMu.Lock()
	defer s.pinMu.Unlock()
	for _, b := range refs {
		if s.gcRunning > 0 {
			s.unpinLater = append(s.unpinLater, b.Digest)
		} else {
			delete(s.pins, b.Digest)
		}
	}
}

// DeleteAction deletes the action stored under key; its blobs stay until
// GC finds them unreferenced. Returns ErrNotFound when there is none and
// ErrReadOnly on a read-only store. Safe for concurrent use.
func (s *Store) DeleteAction(ctx context.Context, key [32]byte) error {
	err := s.deleteAction(ctx, key)
	if err != nil {
		return fmt.Errorf("cas: delete action %s: %w", hexKey(key), err)
	}
	return nil
}

func (s *Store) deleteAction(ctx context.Context, key [32]byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.writable(); err != nil {
		return err
	}
	if err := s.checkSpace(minFreeBytes / 4); err != nil {
		return err
	}
	s.usedMu.Lock()
	delete(s.used, key)
	s.usedMu.Unlock()
	return s.withDB(func(db *badger.DB) error {
		return db.Update(func(txn *badger.Txn) error {
			if _, err := txn.Get(actionKey(key)); err != nil {
				if errors.Is(err, badger.ErrKeyNotFound) {
					return ErrNotFound
				}
				return err
			}
			if err := txn.Delete(actionKey(key)); err != nil {
				return err
			}
			return txn.Delete(usedKey(key))
		})
	})
}

// listChunk is how many actions List reads per index transaction; fn runs
// between transactions, never inside one.
const listChunk = 256

// List calls fn for every stored action (in key order, then those only
// the journal holds, in key order), stopping at the
// first error fn returns (which List returns). Records that cannot be
// decoded are skipped (Verify reports and removes them). Actions put or
// deleted during List may or may not be seen. fn may call other Store
// methods. Safe for concurrent use.
func (s *Store) List(ctx context.Context, fn func(*ActionResult) error) error {
	if err := s.scanActions(ctx, func(_ [32]byte, a *ActionResult, _ error) error {
		if a == nil {
			return nil
		}
		return fn(a)
	}); err != nil {
		return fmt.Errorf("cas: list: %w", err)
	}
	return nil
}

// scanActions reads actions in chunks and calls fn outside the index
// transaction with each key and its decoded action, or a nil action and
// the decode error for a bad record.
func (s *Store) scanActions(ctx context.Context, fn func([32]byte, *ActionResult, error) error) error {
	type raw struct {
		key       [32]byte
		val, used []byte
	}
	seek := append([]byte(nil), prefixAction...)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var chunk []raw
		err := s.withDB(func(db *badger.DB) error {
			return db.View(func(txn *badger.Txn) error {
				opts := badger.DefaultIteratorOptions
				opts.Prefix = prefixAction
				it := txn.NewIterator(opts)
				defer it.Close()
				for it.Seek(seek); it.ValidForPrefix(prefixAction) && len(chunk) < listChunk; it.Next() {
					item := it.Item()
					k := item.Key()
					var r raw
					if len(k) != len(prefixAction)+32 {
						continue // not ours; Verify removes it
					}
					copy(r.key[:], k[len(prefixAction):])
					var err error
					if r.val, err = item.ValueCopy(nil); err != nil {
						return err
					}
					if u, err := txn.Get(usedKey(r.key)); err == nil {
						r.used, _ = u.ValueCopy(nil)
					}
					chunk = append(chunk, r)
				}
				return nil
			})
		})
		if err != nil {
			return err
		}
		if len(chunk) == 0 {
			return s.scanJournal(ctx, fn)
		}
		s.usedMu.Lock()
		pending := make(map[[32]byte]time.Time)
		for _, r := range chunk {
			if t, ok := s.used[r.key]; ok {
				pending[r.key] = t
			}
		}
		s.usedMu.Unlock()
		for _, r := range chunk {
			a, err := decodeAction(r.key, r.val, r.used)
			if a != nil {
				if t, ok := pending[r.key]; ok {
					a.LastUsed = t
				}
			}
			if ferr := fn(r.key, a, err); ferr != nil {
				return ferr
			}
		}
		last := chunk[len(chunk)-1].key
		seek = append(actionKey(last), 0) // the next key after last
	}
}
