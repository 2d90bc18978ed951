package build

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/rustypipe/rustypipe/hashing"
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
const stateVersion = 1

type stateFile struct {
	Version   int
	Tasks     map[string]*stateEntry
	Durations map[string]int64 // milliseconds of the last run of each task
}

// StatePath is the workspace state file.
func StatePath(workspace string) string { return filepath.Join(workspace, ".rustypipe", "state") }

func readStateFile(path string) (stateFile, bool) {
	f, _, ok := readStateFileInfo(path)
	return f, ok
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

// The state file is a small binary format, because a no-op build of a large
// pipeline reads it first thing (gob or JSON took several milliseconds for
// 1,000 tasks): the magic line, then uvarint-framed records. A file that
// does not decode completely is ignored.
const stateMagic = "rustypipe state 1\n"

func encodeState(f *stateFile) []byte {
	b := make([]byte, 0, 64+len(f.Tasks)*(100+2*hashing.Size)+len(f.Durations)*24)
	b = append(b, stateMagic...)
	str := func(s string) { b = binary.AppendUvarint(b, uint64(len(s))); b = append(b, s...) }
	b = binary.AppendUvarint(b, uint64(len(f.Tasks)))
	for name, e := range f.Tasks {
		str(name)
		b = append(b, e.Key[:]...)
		b = append(b, e.Manifest[:]...)
		b = binary.AppendUvarint(b, uint64(len(e.Files)))
		for _, fe := range e.Files {
			str(fe.Path)
			b = binary.AppendUvarint(b, uint64(fe.Mode))
			b = append(b, fe.Digest[:]...)
		}
		if e.HasOut {
			b = append(b, 1)
			str(string(e.Stdout))
		} else {
			b = append(b, 0)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(f.Durations)))
	for name, ms := range f.Durations {
		str(name)
		b = binary.AppendUvarint(b, uint64(ms))
	}
	return b
}

func decodeState(data []byte) (f stateFile, ok bool) {
	if !bytes.HasPrefix(data, []byte(stateMagic)) {
		return stateFile{}, false
	}
	rd := newBinReader(data[len(stateMagic):])
	num, str := rd.num, rd.str
	raw := func(n uint64) []byte { return rd.fixed(int(min(n, uint64(len(rd.d)+1)))) }
	// Entries and their file lists are carved out of a few large slices,
	// not allocated one by one.
	n := rd.count()
	f = stateFile{Version: stateVersion, Tasks: make(map[string]*stateEntry, n), Durations: map[string]int64{}}
	ents := make([]stateEntry, n)
	slab := make([]hashing.FileEntry, 0, n+8) // about a file per task
	for i := range ents {
		if rd.bad {
			break
		}
		name := str()
		e := &ents[i]
		copy(e.Key[:], raw(32))
		copy(e.Manifest[:], raw(32))
		nf := rd.count()
		if cap(slab)-len(slab) < nf {
			slab = make([]hashing.FileEntry, 0, max(nf, n-i+8))
		}
		start := len(slab)
		for ; nf > 0 && !rd.bad; nf-- {
			fe := hashing.FileEntry{Path: str(), Mode: uint32(num())}
			copy(fe.Digest[:], raw(32))
			slab = append(slab, fe)
		}
		e.Files = slab[start:len(slab):len(slab)]
		if flag := raw(1); len(flag) == 1 && flag[0] == 1 {
			e.HasOut = true
			e.Stdout = []byte(str())
		}
		f.Tasks[name] = e
	}
	for n := num(); n > 0 && !rd.bad; n-- {
		name := str()
		f.Durations[name] = int64(num())
	}
	if !rd.done() {
		return stateFile{}, false
	}
	return f, true
}

// StateLoad is a workspace state loading in the background, so that the
// caller can load the pipeline meanwhile; pass it in Options.State.
type StateLoad struct {
	workspace string
	done      chan struct{}
	s         *workspaceState
}

// PreloadState starts loading the state of the workspace directory.
func PreloadState(workspace string) *StateLoad {
	l := &StateLoad{workspace: workspace, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		l.s = loadState(workspace)
	}()
	return l
}

// get returns the state of workspace: the preloaded one when it is for
// that workspace, else a fresh load.
func (l *StateLoad) get(workspace string) *workspaceState {
	if l == nil || l.workspace != workspace {
		return loadState(workspace)
	}
	<-l.done
	return l.s
}

func loadState(workspace string) *workspaceState {
	s := &workspaceState{path: StatePath(workspace), entries: map[string]*stateEntry{}, durations: map[string]int64{}, dirty: map[string]bool{}}
	if f, fi, ok := readStateFileInfo(s.path); ok {
		s.loaded = fi
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

// save merges this build's changes into the file as it is now (another
// build may have written it meanwhile) and replaces it atomically.
func (s *workspaceState) save() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.dirty) == 0 {
		return nil
	}
	var f stateFile
	if s.unchangedSinceLoad() {
		// Nobody wrote the file since this build read it: what this build
		// holds is the file with its changes applied.
		f = stateFile{Tasks: s.entries, Durations: s.durations}
	} else {
		f, _ = readStateFile(s.path)
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
	data := encodeState(&f)
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return fmt.Errorf("build: workspace state: %w", err)
	}
	tmp := fmt.Sprintf("%s.%d.tmp", s.path, os.Getpid())
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("build: workspace state: %w", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("build: workspace state: %w", err)
	}
	s.dirty = map[string]bool{}
	return nil
}
