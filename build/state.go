package build

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/rustypipe/rustypipe/hashing"
	"github.com/rustypipe/rustypipe/internal/atomicfile"
	"github.com/rustypipe/rustypipe/internal/binread"
)

// workspaceState remembers, per task, the key whose outputs the workspace
// holds now (like ninja's log), so that an unchanged task is up to date
// without opening the store, and how long each task last ran, for the
// scheduler. It lives in .rustypipe/state.
type workspaceState struct {
	path      string
	mu        sync.Mutex
	entries   map[string]*stateEntry
	durations map[string]int64
	dirty     map[string]bool
	loaded    os.FileInfo // the file as loaded; nil when there was none
	records   int         // records in the file as loaded
	intact    bool        // the file as loaded was read to its end
}

type stateEntry struct {
	Key      hashing.Key
	Manifest hashing.Digest
	Files    []hashing.FileEntry
	Stdout   []byte // nil when too large to keep here
	HasOut   bool   // Stdout is the whole stdout (gob cannot tell empty from nil)
}

// stateVersion changes when the file's meaning changes; another version is
// ignored (everything is then checked against the store).
const stateVersion = 2

type stateFile struct {
	Version   int
	Tasks     map[string]*stateEntry
	Durations map[string]int64 // milliseconds of the last run of each task

	records int  // records read, superseded ones included
	intact  bool // every byte of the file was read
}

// StatePath is the workspace state file.
func StatePath(workspace string) string { return filepath.Join(workspace, ".rustypipe", "state") }

func readStateFile(path string) (stateFile, bool) {
	f, _, ok := readStateFileInfo(path)
	return f, ok && f.intact
}

// readStateFileInfo also returns the stat of the file it read.
func readStateFileInfo(path string) (stateFile, os.FileInfo, bool) {
	file, err := os.Open(path)
	if err != nil {
		return stateFile{}, nil, false
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return stateFile{}, nil, false
	}
	data := make([]byte, fi.Size())
	if _, err := io.ReadFull(file, data); err != nil {
		return stateFile{}, nil, false
	}
	f, ok := decodeState(data)
	return f, fi, ok
}

// The state file is a log, like ninja's: a build appends a record for each
// task whose entry or duration it changed, and a reader applies them in
// order, so that a build that ran one task of a thousand writes a few
// hundred bytes instead of the whole file. The file is rewritten whole
// (compacted) when most of its records are superseded, or when it is
// damaged. It is binary, because a build of a large pipeline reads it
// first thing (gob or JSON took several milliseconds for 1,000 tasks).
//
// After the magic line, each record is a uvarint length, the payload and
// the payload's CRC-32C (little-endian). A payload is a kind byte and
// uvarint-framed fields:
//
//	'E' name key manifest nfiles (path mode digest)* hasout [stdout]  an entry
//	'F' name                                                         forget the entry
//	'D' name milliseconds                                             a duration
//
// A record cut short or failing its checksum ends the log there: what
// precedes it stands (a build killed while appending loses only its own
// records), and the next save rewrites the file.
const stateMagic = "rustypipe state 2\n"

const (
	stateEntryRec    = 'E'
	stateForgetRec   = 'F'
	stateDurationRec = 'D'
)

var stateCRC = crc32.MakeTable(crc32.Castagnoli)

// appendStateRecord appends payload to b as a record: its length, the
// payload, its checksum.
func appendStateRecord(b []byte, payload []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(payload)))
	b = append(b, payload...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(payload, stateCRC))
}

func appendEntryPayload(p []byte, name string, e *stateEntry) []byte {
	str := func(s string) { p = binary.AppendUvarint(p, uint64(len(s))); p = append(p, s...) }
	p = append(p, stateEntryRec)
	str(name)
	p = append(p, e.Key[:]...)
	p = append(p, e.Manifest[:]...)
	p = binary.AppendUvarint(p, uint64(len(e.Files)))
	for _, fe := range e.Files {
		str(fe.Path)
		p = binary.AppendUvarint(p, uint64(fe.Mode))
		p = append(p, fe.Digest[:]...)
	}
	if e.HasOut {
		p = append(p, 1)
		str(string(e.Stdout))
	} else {
		p = append(p, 0)
	}
	return p
}

func appendForgetPayload(p []byte, name string) []byte {
	p = append(p, stateForgetRec)
	p = binary.AppendUvarint(p, uint64(len(name)))
	return append(p, name...)
}

func appendDurationPayload(p []byte, name string, ms int64) []byte {
	p = append(p, stateDurationRec)
	p = binary.AppendUvarint(p, uint64(len(name)))
	p = append(p, name...)
	return binary.AppendUvarint(p, uint64(ms))
}

// encodeState writes f whole: the magic line and one record per entry and
// duration.
func encodeState(f *stateFile) []byte {
	b := make([]byte, 0, 64+len(f.Tasks)*(120+2*hashing.Size)+len(f.Durations)*32)
	b = append(b, stateMagic...)
	var p []byte
	for name, e := range f.Tasks {
		p = appendEntryPayload(p[:0], name, e)
		b = appendStateRecord(b, p)
	}
	for name, ms := range f.Durations {
		p = appendDurationPayload(p[:0], name, ms)
		b = appendStateRecord(b, p)
	}
	return b
}

// decodeState reads a state file. ok is false when it is not one (another
// format or version); a damaged or cut record ends the log, and f.intact
// tells whether the whole file was read.
func decodeState(data []byte) (f stateFile, ok bool) {
	if !bytes.HasPrefix(data, []byte(stateMagic)) {
		return stateFile{}, false
	}
	data = data[len(stateMagic):]
	// Entries and their file lists are carved out of a few large slices,
	// not allocated one by one; a record takes 100 bytes or more.
	n := len(data)/100 + 1
	f = stateFile{Version: stateVersion, Tasks: make(map[string]*stateEntry, n), Durations: map[string]int64{}}
	ents := make([]stateEntry, 0, n)
	slab := make([]hashing.FileEntry, 0, n+8) // about a file per task
	all := binread.New(data)
	for all.Len() > 0 {
		size := all.Uvarint()
		if all.Bad() || size > uint64(all.Len()) || all.Len()-int(size) < 4 {
			return f, true // cut short
		}
		// The payload is read through a reader of its own over the same
		// memory, so that its strings share it too.
		rd := all.Sub(int(size))
		sum := binary.LittleEndian.Uint32(all.Bytes(4))
		if crc32.Checksum(rd.Peek(), stateCRC) != sum {
			return f, true // damaged
		}
		f.records++
		kind := rd.Byte()
		name := rd.Str()
		switch kind {
		case stateEntryRec:
			if len(ents) == cap(ents) {
				ents = make([]stateEntry, 0, n)
			}
			ents = append(ents, stateEntry{})
			e := &ents[len(ents)-1]
			copy(e.Key[:], rd.Bytes(32))
			copy(e.Manifest[:], rd.Bytes(32))
			nf := rd.Count()
			if cap(slab)-len(slab) < nf {
				slab = make([]hashing.FileEntry, 0, max(nf, n))
			}
			start := len(slab)
			for ; nf > 0 && !rd.Bad(); nf-- {
				fe := hashing.FileEntry{Path: rd.Str(), Mode: uint32(rd.Uvarint())}
				copy(fe.Digest[:], rd.Bytes(32))
				slab = append(slab, fe)
			}
			e.Files = slab[start:len(slab):len(slab)]
			if rd.Byte() == 1 {
				e.HasOut = true
				e.Stdout = []byte(rd.Str())
			}
			if rd.Done() {
				f.Tasks[name] = e
			}
		case stateForgetRec:
			if rd.Done() {
				delete(f.Tasks, name)
			}
		case stateDurationRec:
			if ms := rd.Uvarint(); rd.Done() {
				f.Durations[name] = int64(ms)
			}
		}
		if !rd.Done() {
			return f, true // a record this version cannot read
		}
	}
	f.intact = true
	return f, true
}

// StateLoad is a workspace state loading in the background, so that the
// caller can load the pipeline meanwhile; pass it in Options.State.
type StateLoad struct {
	workspace string
	p         *preload[*workspaceState]
}

// PreloadState starts loading the state of the workspace directory.
func PreloadState(workspace string) *StateLoad {
	return &StateLoad{workspace: workspace, p: startPreload(func() *workspaceState { return loadState(workspace) })}
}

// get returns the state of workspace: the preloaded one when it is for
// that workspace, else a fresh load.
func (l *StateLoad) get(workspace string) *workspaceState {
	if l == nil || l.workspace != workspace {
		return loadState(workspace)
	}
	return l.p.get()
}

func loadState(workspace string) *workspaceState {
	s := &workspaceState{path: StatePath(workspace), entries: map[string]*stateEntry{}, durations: map[string]int64{}, dirty: map[string]bool{}}
	if f, fi, ok := readStateFileInfo(s.path); ok {
		s.loaded, s.records, s.intact = fi, f.records, f.intact
		if f.Tasks != nil {
			s.entries = f.Tasks
		}
		if f.Durations != nil {
			s.durations = f.Durations
		}
	}
	return s
}

// duration is how long a task took the last time it ran, in ms (0: never).
func (s *workspaceState) duration(task string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.durations[task]
}

func (s *workspaceState) setDuration(task string, ms int64) {
	s.mu.Lock()
	s.durations[task] = max(ms, 1)
	s.dirty["\x00d"+task] = true
	s.mu.Unlock()
}

func (s *workspaceState) get(task string) *stateEntry {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entries[task]
}

func (s *workspaceState) put(task string, e *stateEntry) {
	s.mu.Lock()
	s.entries[task] = e
	s.dirty[task] = true
	s.mu.Unlock()
}

// forget drops a task's entry: its outputs in the workspace are no longer
// known to match any key (it is running, or failed).
func (s *workspaceState) forget(task string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	if _, ok := s.entries[task]; ok {
		delete(s.entries, task)
		s.dirty[task] = true
	}
	s.mu.Unlock()
}

// unchangedSinceLoad reports whether the state file is the one loadState
// read (same file, size and modification time).
func (s *workspaceState) unchangedSinceLoad() bool {
	if s.loaded == nil {
		return false
	}
	fi, err := os.Stat(s.path)
	return err == nil && os.SameFile(fi, s.loaded) && fi.Size() == s.loaded.Size() && fi.ModTime().Equal(s.loaded.ModTime())
}

// save records this build's changes. Usually it appends them to the file,
// whatever other builds wrote meanwhile: records apply in order, so the
// file with them appended is the file as it is now with this build's
// changes. It rewrites the file whole (atomically, merging it as it is
// now) when there is none yet, when it was damaged, or when superseded
// records would make up most of it.
func (s *workspaceState) save() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.dirty) == 0 {
		return nil
	}
	if s.loaded != nil && s.intact && s.records+len(s.dirty) <= 2*len(s.entries)+64 && s.appendDirty() == nil {
		s.dirty = map[string]bool{}
		return nil
	}
	var f stateFile
	if s.unchangedSinceLoad() && s.intact {
		// Nobody wrote the file since this build read it: what this build
		// holds is the file with its changes applied.
		f = stateFile{Tasks: s.entries, Durations: s.durations}
	} else {
		f, _, _ = readStateFileInfo(s.path) // what a damaged file still holds, too
	}
	if f.Tasks == nil {
		f.Tasks = map[string]*stateEntry{}
	}
	if f.Durations == nil {
		f.Durations = map[string]int64{}
	}
	f.Version = stateVersion
	for key := range s.dirty {
		if task, ok := strings.CutPrefix(key, "\x00d"); ok {
			f.Durations[task] = s.durations[task]
		} else if e, ok := s.entries[key]; ok {
			f.Tasks[key] = e
		} else {
			delete(f.Tasks, key)
		}
	}
	if err := atomicfile.Write(s.path, encodeState(&f), 0o644); err != nil {
		return fmt.Errorf("build: workspace state: %w", err)
	}
	s.dirty = map[string]bool{}
	return nil
}

// appendDirty appends a record for every change to the file, in one write
// (so that records of builds appending at once do not interleave). It
// fails, and save rewrites the file, when the file is gone or is not one
// this build can append to.
func (s *workspaceState) appendDirty() error {
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	magic := make([]byte, len(stateMagic))
	if _, err := f.ReadAt(magic, 0); err != nil || string(magic) != stateMagic {
		return errors.New("not a state file of this version")
	}
	var b, p []byte
	for key := range s.dirty {
		if task, ok := strings.CutPrefix(key, "\x00d"); ok {
			p = appendDurationPayload(p[:0], task, s.durations[task])
		} else if e, ok := s.entries[key]; ok {
			p = appendEntryPayload(p[:0], key, e)
		} else {
			p = appendForgetPayload(p[:0], key)
		}
		b = appendStateRecord(b, p)
	}
	_, err = f.Write(b)
	return err
}
