package build

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Status is the state of a task in a run.
type Status string

// Task statuses, as written to the run records and JSON events.
const (
	StatusPending   Status = "pending"
	StatusSucceeded Status = "succeeded"
	StatusCached    Status = "cached"     // restored from the cache
	StatusUpToDate  Status = "up-to-date" // outputs already in the workspace under the same key
	StatusFailed    Status = "failed"
	StatusTimedOut  Status = "timed-out"
	StatusSkipped   Status = "skipped"
	StatusCancelled Status = "cancelled"
)

// OK reports whether the status counts as success for dependents.
func (s Status) OK() bool {
	return s == StatusSucceeded || s == StatusCached || s == StatusUpToDate
}

// Attempt is one try of a task.
type Attempt struct {
	Number       int           `json:"attempt"`
	Started      time.Time     `json:"started"`
	Finished     time.Time     `json:"finished"`
	DurationMS   int64         `json:"duration_ms"`
	ExitCode     int           `json:"exit_code"`
	Signal       string        `json:"signal,omitempty"`
	Status       Status        `json:"status"`
	Error        string        `json:"error,omitempty"`
	RetryDelay   time.Duration `json:"-"`
	RetryDelayMS int64         `json:"retry_delay_ms,omitempty"` // wait before the next attempt
}

// TaskRecord is a task's entry in the run records (<task>.json).
type TaskRecord struct {
	mu sync.Mutex

	Name        string     `json:"name"`
	Description string     `json:"description,omitempty"`
	Backend     string     `json:"backend"`
	Command     string     `json:"command,omitempty"`
	Status      Status     `json:"status"`
	Reason      string     `json:"reason,omitempty"`
	ExitCode    int        `json:"exit_code"`
	Attempts    []*Attempt `json:"attempts"`
	Started     time.Time  `json:"started,omitzero"`
	Finished    time.Time  `json:"finished,omitzero"`
	DurationMS  int64      `json:"duration_ms"`

	Key           string `json:"key,omitempty"`
	Cache         string `json:"cache,omitempty"` // hit, miss, up-to-date, off
	BytesRestored int64  `json:"bytes_restored,omitempty"`
	HashMS        int64  `json:"hash_ms,omitempty"`
	CacheWarning  string `json:"cache_warning,omitempty"`

	file string // safe file name stem
}

func (r *TaskRecord) setStart(t time.Time) {
	r.mu.Lock()
	r.Started = t
	r.mu.Unlock()
}

func (r *TaskRecord) addAttempt(a *Attempt) {
	a.DurationMS = a.Finished.Sub(a.Started).Milliseconds()
	r.mu.Lock()
	r.Attempts = append(r.Attempts, a)
	r.mu.Unlock()
}

func (r *TaskRecord) finish(t time.Time, s Status, code int, reason string) {
	r.mu.Lock()
	r.Finished, r.Status, r.ExitCode, r.Reason = t, s, code, reason
	if !r.Started.IsZero() {
		r.DurationMS = t.Sub(r.Started).Milliseconds()
	}
	r.mu.Unlock()
}

// Snapshot returns a copy safe to read while the build goes on.
func (r *TaskRecord) Snapshot() *TaskRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := &TaskRecord{
		Name: r.Name, Description: r.Description, Backend: r.Backend, Command: r.Command,
		Status: r.Status, Reason: r.Reason, ExitCode: r.ExitCode, Attempts: append([]*Attempt(nil), r.Attempts...),
		Started: r.Started, Finished: r.Finished, DurationMS: r.DurationMS, Key: r.Key, Cache: r.Cache,
		BytesRestored: r.BytesRestored, HashMS: r.HashMS, CacheWarning: r.CacheWarning, file: r.file,
	}
	return c
}

// NewRunID makes a sortable, unique run id such as
// 20261128T153000.123Z-3fa2: newer runs sort later, to the millisecond.
func NewRunID(t time.Time) string {
	var b [2]byte
	rand.Read(b[:])
	return t.UTC().Format("20060102T150405.000Z") + "-" + hex.EncodeToString(b[:])
}

// RunsDir is where run records live inside a workspace.
func RunsDir(workspace string) string { return filepath.Join(workspace, ".rustypipe", "runs") }

// runDir writes one run's records.
type runDir struct {
	dir string
	mu  sync.Mutex
}

func newRunDir(pl *Plan, runID string) (*runDir, error) {
	pruneRuns(pl.Workspace)
	dir := filepath.Join(RunsDir(pl.Workspace), runID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("build: run records: %w", err)
	}
	if data, err := os.ReadFile(pl.Pipeline.File); err == nil {
		os.WriteFile(filepath.Join(dir, "pipeline.yaml"), data, 0o644)
	}
	return &runDir{dir: dir}, nil
}

func (d *runDir) openLog(r *TaskRecord) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(d.dir, r.file+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("build: task log: %w", err)
	}
	return f, nil
}

func (d *runDir) stdoutPath(r *TaskRecord) string { return filepath.Join(d.dir, r.file+".stdout") }

func (d *runDir) stderrPath(r *TaskRecord) string { return filepath.Join(d.dir, r.file+".stderr") }

func (d *runDir) writeTask(r *TaskRecord) {
	writeJSON(filepath.Join(d.dir, r.file+".json"), r.Snapshot())
}

// RunRecord is run.json.
type RunRecord struct {
	RunID      string         `json:"run_id"`
	Pipeline   string         `json:"pipeline"`
	Status     string         `json:"status"`
	Counts     map[Status]int `json:"counts"`
	Started    time.Time      `json:"started"`
	Finished   time.Time      `json:"finished"`
	DurationMS int64          `json:"duration_ms"`
	Tasks      []TaskSummary  `json:"tasks"`
}

// TaskSummary is a task's line in run.json.
type TaskSummary struct {
	Name       string `json:"name"`
	Status     Status `json:"status"`
	DurationMS int64  `json:"duration_ms"`
	Cache      string `json:"cache,omitempty"`
	Key        string `json:"key,omitempty"`
	File       string `json:"file"`
}

func (d *runDir) writeRun(s *Summary) error {
	rec := RunRecord{RunID: s.RunID, Status: s.Status, Counts: s.Counts, Started: s.Started, Finished: s.Finished,
		DurationMS: s.Finished.Sub(s.Started).Milliseconds()}
	for _, t := range s.Tasks {
		snap := t.Snapshot()
		rec.Tasks = append(rec.Tasks, TaskSummary{Name: snap.Name, Status: snap.Status, DurationMS: snap.DurationMS,
			Cache: snap.Cache, Key: snap.Key, File: snap.file})
	}
	return writeJSONCompact(filepath.Join(d.dir, "run.json"), &rec)
}

// weights are the scheduler's per-task costs: each task's duration when it
// last ran (from the workspace state), so the longest remaining chain starts
// first. Tasks never run weigh one millisecond.
func weights(pl *Plan, st *workspaceState) []int64 {
	w := make([]int64, len(pl.Tasks))
	for i, t := range pl.Tasks {
		w[i] = max(st.duration(t.Name), 1)
	}
	return w
}

// keepRuns is how many run record directories a workspace keeps; older
// ones are removed when a build starts.
const keepRuns = 30

// pruneRuns removes all but the newest keepRuns run directories.
func pruneRuns(workspace string) {
	ents, err := os.ReadDir(RunsDir(workspace))
	if err != nil {
		return
	}
	var dirs []string
	for _, e := range ents {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	for i := 0; i+keepRuns < len(dirs); i++ {
		os.RemoveAll(filepath.Join(RunsDir(workspace), dirs[i]))
	}
}

// ListRuns reads the run.json of every recorded run, newest first. Runs
// without a readable run.json (interrupted hard) are listed with status
// "incomplete".
func ListRuns(workspace string) ([]*RunRecord, error) {
	ents, err := os.ReadDir(RunsDir(workspace))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("build: list runs: %w", err)
	}
	var runs []*RunRecord
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		rec := &RunRecord{RunID: e.Name(), Status: "incomplete"}
		if data, err := os.ReadFile(filepath.Join(RunsDir(workspace), e.Name(), "run.json")); err == nil {
			if json.Unmarshal(data, rec) != nil {
				rec.Status = "unreadable"
			}
		}
		runs = append(runs, rec)
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].RunID > runs[j].RunID })
	return runs, nil
}

// LogPath finds the log of task in the given run ("" for the newest run that
// has one).
func LogPath(workspace, runID, task string) (string, error) {
	runs, err := ListRuns(workspace)
	if err != nil {
		return "", err
	}
	name := safeName(task) + ".log"
	for _, r := range runs {
		if runID != "" && r.RunID != runID {
			continue
		}
		p := filepath.Join(RunsDir(workspace), r.RunID, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		if runID != "" {
			return "", fmt.Errorf("run %s has no log for task %q", runID, task)
		}
	}
	if runID != "" {
		return "", fmt.Errorf("no run %q under %s", runID, RunsDir(workspace))
	}
	return "", fmt.Errorf("no recorded run has a log for task %q", task)
}

// writeJSON writes v indented, through a temporary file.
func writeJSON(path string, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("build: encode %s: %w", filepath.Base(path), err)
	}
	return writeFileAtomic(path, buf.Bytes())
}

// writeJSONCompact is writeJSON without indentation, for run.json, which
// lists every task and is written by every build, no-op builds included.
func writeJSONCompact(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("build: encode %s: %w", filepath.Base(path), err)
	}
	return writeFileAtomic(path, append(data, '\n'))
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("build: write %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("build: write %s: %w", filepath.Base(path), err)
	}
	return nil
}

// safeName turns a task name into a file name stem that is valid on Windows
// too: unsafe characters become '_', reserved device names get a prefix, and
// a changed name gets a short hash suffix so two tasks never share a file.
func safeName(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := strings.TrimRight(b.String(), ". ")
	base := strings.ToUpper(s)
	if i := strings.IndexByte(base, '.'); i >= 0 {
		base = base[:i]
	}
	switch base {
	case "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9",
		"LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9":
		s = "_" + s
	}
	if s == "" || s[0] == '.' || strings.EqualFold(s, "run") {
		s = "_" + s
	}
	if s != name {
		s += "-" + shortHash(name)
	}
	return s
}

func shortHash(s string) string {
	// FNV-1a, 32 bits: enough to tell apart names that map to the same stem.
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return fmt.Sprintf("%08x", h)
}
