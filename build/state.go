package build

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/rustypipe/rustypipe/hashing"
)

// workspaceState remembers, per task, the key whose outputs the workspace
// holds now (like ninja's log), so that an unchanged task is up to date
// without opening the store. It lives in .rustypipe/state.json.
type workspaceState struct {
	path    string
	mu      sync.Mutex
	entries map[string]*stateEntry
	dirty   map[string]bool
}

type stateEntry struct {
	Key      hashing.Key         `json:"key"`
	Manifest hashing.Digest      `json:"manifest"`
	Files    []hashing.FileEntry `json:"files"`
	Stdout   []byte              `json:"stdout"` // nil when too large to keep here
}

// stateVersion changes when the file's meaning changes; another version is
// ignored (everything is then checked against the store).
const stateVersion = 1

type stateFile struct {
	Version int                    `json:"version"`
	Tasks   map[string]*stateEntry `json:"tasks"`
}

func loadState(workspace string) *workspaceState {
	s := &workspaceState{path: filepath.Join(workspace, ".rustypipe", "state.json"), entries: map[string]*stateEntry{}, dirty: map[string]bool{}}
	var f stateFile
	if data, err := os.ReadFile(s.path); err == nil && json.Unmarshal(data, &f) == nil && f.Version == stateVersion && f.Tasks != nil {
		s.entries = f.Tasks
	}
	return s
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
	if data, err := os.ReadFile(s.path); err != nil || json.Unmarshal(data, &f) != nil || f.Version != stateVersion || f.Tasks == nil {
		f = stateFile{Tasks: map[string]*stateEntry{}}
	}
	f.Version = stateVersion
	for task := range s.dirty {
		if e, ok := s.entries[task]; ok {
			f.Tasks[task] = e
		} else {
			delete(f.Tasks, task)
		}
	}
	data, err := json.Marshal(&f)
	if err != nil {
		return fmt.Errorf("build: workspace state: %w", err)
	}
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
