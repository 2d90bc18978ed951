package build

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rustypipe/rustypipe/hashing"
	"github.com/rustypipe/rustypipe/internal/atomicfile"
	"github.com/rustypipe/rustypipe/internal/jsonenc"
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
	MaxAttempts int        `json:"max_attempts,omitempty"`
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
		Status: r.Status, Reason: r.Reason, ExitCode: r.ExitCode, Attempts: append([]*Attempt(nil), r.Attempts...), MaxAttempts: r.MaxAttempts,
		Started: r.Started, Finished: r.Finished, DurationMS: r.DurationMS, Key: r.Key, Cache: r.Cache,
		BytesRestored: r.BytesRestored, HashMS: r.HashMS, CacheWarning: r.CacheWarning, file: r.file,
	}
	return c
}

// appendJSON appends r as json.Marshal(r) writes it, without reflection:
// a build writes one record per task to tasks.jsonl as the task finishes.
// TestTaskRecordJSON holds the two equal. Times json.Marshal refuses (a
// year outside 0-9999, an offset with seconds) go through json.Marshal.
func (r *TaskRecord) appendJSON(b []byte) ([]byte, error) {
	if !jsonTime(r.Started) || !jsonTime(r.Finished) || slices.ContainsFunc(r.Attempts, func(a *Attempt) bool {
		return a != nil && (!jsonTime(a.Started) || !jsonTime(a.Finished))
	}) {
		data, err := json.Marshal(r)
		return append(b, data...), err
	}
	if b == nil {
		b = make([]byte, 0, 384+len(r.Command)+len(r.Reason)+len(r.CacheWarning)+len(r.Attempts)*160)
	}
	str := func(name, v string, omitEmpty bool) {
		if omitEmpty && v == "" {
			return
		}
		b = append(b, name...)
		b = jsonenc.String(b, v)
	}
	num := func(name string, v int64, omitEmpty bool) {
		if omitEmpty && v == 0 {
			return
		}
		b = append(b, name...)
		b = jsonenc.Int(b, v)
	}
	tm := func(name string, t time.Time, omitZero bool) {
		if omitZero && t.IsZero() {
			return
		}
		b = append(b, name...)
		b = append(b, '"')
		b = t.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	str(`{"name":`, r.Name, false)
	str(`,"description":`, r.Description, true)
	str(`,"backend":`, r.Backend, false)
	str(`,"command":`, r.Command, true)
	str(`,"status":`, string(r.Status), false)
	str(`,"reason":`, r.Reason, true)
	num(`,"exit_code":`, int64(r.ExitCode), false)
	b = append(b, `,"attempts":`...)
	if r.Attempts == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, a := range r.Attempts {
			if i > 0 {
				b = append(b, ',')
			}
			if a == nil {
				b = append(b, "null"...)
				continue
			}
			num(`{"attempt":`, int64(a.Number), false)
			tm(`,"started":`, a.Started, false)
			tm(`,"finished":`, a.Finished, false)
			num(`,"duration_ms":`, a.DurationMS, false)
			num(`,"exit_code":`, int64(a.ExitCode), false)
			str(`,"signal":`, a.Signal, true)
			str(`,"status":`, string(a.Status), false)
			str(`,"error":`, a.Error, true)
			num(`,"retry_delay_ms":`, a.RetryDelayMS, true)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	num(`,"max_attempts":`, int64(r.MaxAttempts), true)
	tm(`,"started":`, r.Started, true)
	tm(`,"finished":`, r.Finished, true)
	num(`,"duration_ms":`, r.DurationMS, false)
	str(`,"key":`, r.Key, true)
	str(`,"cache":`, r.Cache, true)
	num(`,"bytes_restored":`, r.BytesRestored, true)
	num(`,"hash_ms":`, r.HashMS, true)
	str(`,"cache_warning":`, r.CacheWarning, true)
	return append(b, '}'), nil
}

// jsonTime reports whether json.Marshal writes t as RFC 3339 with
// nanoseconds, as AppendFormat does: a year of four digits and an offset
// of whole minutes.
func jsonTime(t time.Time) bool {
	_, off := t.Zone()
	return t.Year() >= 0 && t.Year() <= 9999 && off%60 == 0
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

// PipelinesDir is where a workspace keeps the copies of pipeline files its
// runs share (savePipelineCopy) and their parsed forms (the caller's
// memos): prunePipelineCopies tells the two apart by name.
func PipelinesDir(workspace string) string {
	return filepath.Join(workspace, ".rustypipe", "pipelines")
}

// runDir writes one run's records.
type runDir struct {
	dir string
	mu  sync.Mutex

	tasksMu sync.Mutex
	tasks   *os.File // tasks.jsonl, opened at the first record

	bg sync.WaitGroup // makeRunDir's background work

	// srcDigest is the digest of the pipeline file's content, as the run
	// read it; set by the background work (read it after bg.Wait).
	srcDigest hashing.Digest
}

// makeRunDir creates the run's record directory, reusing the oldest run's
// when the workspace keeps keepRuns runs already (recycleRunDir). The copy
// of the pipeline file (savePipelineCopy) and the removal of old runs go
// on in the background, while tasks start; writeRun waits for them.
// srcDigest is the digest of pipelineSrc when the caller knows it, else
// zero: it is then computed in the background, once for the copy and the
// no-op record.
func makeRunDir(workspace string, pipelineSrc []byte, srcDigest hashing.Digest, runID string) (*runDir, error) {
	dir := filepath.Join(RunsDir(workspace), runID)
	old := runDirs(workspace)
	if recycleRunDir(old, dir) {
		old = old[1:]
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("build: run records: %w", err)
	}
	d := &runDir{dir: dir}
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		if pipelineSrc != nil {
			if srcDigest.IsZero() {
				srcDigest = hashing.DigestBytes(pipelineSrc)
			}
			d.srcDigest = srcDigest
			savePipelineCopy(workspace, filepath.Join(dir, pipelineCopyName), pipelineSrc, srcDigest)
		}
		pruneRuns(old)
		prunePipelineCopies(workspace)
	}()
	return d, nil
}

// runDirs returns the paths of the workspace's run directories, oldest
// first (run ids sort by time).
func runDirs(workspace string) []string {
	runs := RunsDir(workspace)
	ents, err := os.ReadDir(runs) // sorted by name
	if err != nil {
		return nil
	}
	var dirs []string
	for _, e := range ents {
		if e.IsDir() {
			dirs = append(dirs, filepath.Join(runs, e.Name()))
		}
	}
	return dirs
}

// recycleRunDir turns the oldest of the runs old (runDirs) into dir, the
// new run's directory, when there are keepRuns of them already and that
// run finished, and reports whether it did. The old run's run.json and
// task records are emptied, not removed, for the new run to write again;
// its other files are removed. A build that reports only up-to-date tasks
// so makes no new file or directory: on ext4, a new inode where many were
// removed in the last minute (a build removed the oldest run each time, a
// clean build removes its outputs) costs a scan of the inode table, 0.4 ms
// each measured, twice per no-op build.
func recycleRunDir(old []string, dir string) bool {
	if len(old) < keepRuns {
		return false
	}
	// Only a finished run's: a run without run.json may still be going on,
	// and its open task records must not become the new run's.
	oldest := old[0]
	if fi, err := os.Stat(filepath.Join(oldest, runJSONName)); err != nil || fi.Size() == 0 {
		return false
	}
	if os.Rename(oldest, dir) != nil {
		return false // another build may have taken it: make a new one
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return true
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		switch e.Name() {
		case runJSONName, tasksName:
			if os.Truncate(p, 0) != nil {
				os.Remove(p)
			}
		case pipelineCopyName: // savePipelineCopy replaces it
		default:
			os.RemoveAll(p)
		}
	}
	return true
}

// Names of a run's own files.
const (
	runJSONName      = "run.json"
	pipelineCopyName = "pipeline.yaml"
)

// taskLog is a task's log file, <task>.log. It is created at the first byte
// of task output, with the headers written so far: a task that prints
// nothing costs no file (creating files is a large part of a cold build's
// time), and its attempts are in its JSON record, from which LogText
// renders the same headers. Safe for concurrent use by a task's two
// streams.
type taskLog struct {
	mu      sync.Mutex
	path    string
	f       *os.File
	pending []func([]byte) []byte // headers not yet formatted: no file yet
	err     error
}

func (d *runDir) openLog(r *TaskRecord) *taskLog {
	return &taskLog{path: filepath.Join(d.dir, r.file+".log")}
}

// header adds lines of rustypipe's own to the log: what line appends. A
// log is created only when its task prints something, and most tasks
// print nothing, so line runs only then. It must append what the values
// are at the call (copy them into the closure first).
func (l *taskLog) header(line func([]byte) []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		l.pending = append(l.pending, line)
		return
	}
	l.f.Write(line(nil))
}

// Write adds task output, creating the file on first use.
func (l *taskLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return len(p), nil // a broken log must not fail the task
	}
	if l.f == nil {
		f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			l.err = err
			return len(p), nil
		}
		l.f = f
		var head []byte
		for _, line := range l.pending {
			head = line(head)
		}
		f.Write(head)
		l.pending = nil
	}
	l.f.Write(p)
	return len(p), nil
}

func (l *taskLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	return l.f.Close()
}

func (d *runDir) stdoutPath(r *TaskRecord) string { return filepath.Join(d.dir, r.file+".stdout") }

func (d *runDir) stderrPath(r *TaskRecord) string { return filepath.Join(d.dir, r.file+".stderr") }

// tasksName is the run's task records, one JSON object per line, in the
// order tasks finished.
const tasksName = "tasks.jsonl"

// writeTask appends r's record to tasks.jsonl with one write: a file per
// task (creating 1,000 files) was a fifth of a cold build's CPU time in
// rustypipe itself. A record cut short by a killed build is skipped when
// read.
func (d *runDir) writeTask(r *TaskRecord) {
	data, err := r.Snapshot().appendJSON(nil)
	if err != nil {
		return
	}
	d.tasksMu.Lock()
	defer d.tasksMu.Unlock()
	if d.tasks == nil {
		f, err := os.OpenFile(filepath.Join(d.dir, tasksName), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return
		}
		d.tasks = f
	}
	d.tasks.Write(append(data, '\n'))
}

// close closes the task records.
func (d *runDir) close() {
	d.tasksMu.Lock()
	defer d.tasksMu.Unlock()
	if d.tasks != nil {
		d.tasks.Close()
		d.tasks = nil
	}
}

// taskRecord returns the last record of task in a run's tasks.jsonl.
func taskRecord(dir, task string) (*TaskRecord, error) {
	data, err := os.ReadFile(filepath.Join(dir, tasksName))
	if err != nil {
		return nil, err
	}
	name, _ := json.Marshal(task)
	needle := append([]byte(`"name":`), name...)
	var found *TaskRecord
	for _, line := range bytes.Split(data, []byte("\n")) {
		if !bytes.Contains(line, needle) {
			continue
		}
		var rec TaskRecord
		if json.Unmarshal(line, &rec) == nil && rec.Name == task {
			found = &rec
		}
	}
	if found == nil {
		return nil, os.ErrNotExist
	}
	return found, nil
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
	d.bg.Wait()
	rec := RunRecord{RunID: s.RunID, Status: s.Status, Counts: s.Counts, Started: s.Started, Finished: s.Finished,
		DurationMS: s.Finished.Sub(s.Started).Milliseconds()}
	// The record is written without reflection, as encoding/json would
	// write it: for the tasks, most of its bytes, that halved the cost of
	// a no-op build's run.json (a thousand up-to-date tasks); for the rest,
	// it saves encoding/json's first use of the type in the process.
	buf := make([]byte, 0, 256+len(s.Tasks)*(140+2*hashing.Size))
	if b, ok := rec.appendHead(buf); ok {
		buf = b
	} else {
		data, err := json.Marshal(&rec)
		if err != nil {
			return fmt.Errorf("build: encode run.json: %w", err)
		}
		head, ok := bytes.CutSuffix(data, []byte(`"tasks":null}`))
		if !ok {
			return fmt.Errorf("build: encode run.json: tasks is not the last field")
		}
		buf = append(buf, head...)
	}
	buf = append(buf, `"tasks":[`...)
	for i, t := range s.Tasks {
		if i > 0 {
			buf = append(buf, ',')
		}
		t.mu.Lock()
		ts := TaskSummary{Name: t.Name, Status: t.Status, DurationMS: t.DurationMS, Cache: t.Cache, Key: t.Key, File: t.file}
		t.mu.Unlock()
		buf = ts.appendJSON(buf)
	}
	buf = append(buf, "]}\n"...)
	// Written in place, not renamed into place: a recycled run directory's
	// run.json keeps its inode (see recycleRunDir). A reader that comes
	// while it is written, or after a crash meanwhile, finds it incomplete
	// or unreadable, as ListRuns reports it.
	if err := os.WriteFile(filepath.Join(d.dir, runJSONName), buf, 0o644); err != nil {
		return fmt.Errorf("build: write %s: %w", runJSONName, err)
	}
	return nil
}

// appendHead appends the record up to its tasks, from its opening brace to
// the comma before "tasks", as encoding/json would write them. It reports
// false, appending nothing, for times that json.Marshal writes otherwise
// (see jsonTime).
func (r *RunRecord) appendHead(b []byte) ([]byte, bool) {
	if !jsonTime(r.Started) || !jsonTime(r.Finished) {
		return b, false
	}
	b = append(b, `{"run_id":`...)
	b = jsonenc.String(b, r.RunID)
	b = append(b, `,"pipeline":`...)
	b = jsonenc.String(b, r.Pipeline)
	b = append(b, `,"status":`...)
	b = jsonenc.String(b, r.Status)
	b = append(b, `,"counts":`...)
	if r.Counts == nil {
		b = append(b, "null"...)
	} else {
		keys := make([]string, 0, len(r.Counts))
		for k := range r.Counts {
			keys = append(keys, string(k))
		}
		slices.Sort(keys) // encoding/json sorts map keys
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonenc.String(b, k)
			b = append(b, ':')
			b = strconv.AppendInt(b, int64(r.Counts[Status(k)]), 10)
		}
		b = append(b, '}')
	}
	b = append(b, `,"started":"`...)
	b = r.Started.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","finished":"`...)
	b = r.Finished.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","duration_ms":`...)
	b = strconv.AppendInt(b, r.DurationMS, 10)
	return append(b, ','), true
}

// appendJSON appends t as encoding/json would encode it.
func (t *TaskSummary) appendJSON(b []byte) []byte {
	b = append(b, `{"name":`...)
	b = jsonenc.String(b, t.Name)
	b = append(b, `,"status":`...)
	b = jsonenc.String(b, string(t.Status))
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendInt(b, t.DurationMS, 10)
	if t.Cache != "" {
		b = append(b, `,"cache":`...)
		b = jsonenc.String(b, t.Cache)
	}
	if t.Key != "" {
		b = append(b, `,"key":`...)
		b = jsonenc.String(b, t.Key)
	}
	b = append(b, `,"file":`...)
	b = jsonenc.String(b, t.File)
	return append(b, '}')
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

// weights is the scheduling weight of each task: its last duration, except
// with a partial no-op record, where tasks the record may show up to date
// weigh nothing, and tasks whose files were seen changed, or that it does
// not vouch for, keep theirs. So the changed tasks start first, while the
// other worker settles the rest.
func (b *builder) weights() []int64 {
	w := weights(b.plan, b.opts.state)
	if b.partial == nil {
		return w
	}
	changed := make([]bool, len(w))
	for _, id := range b.partial.changedTasks(b.plan) {
		changed[id] = true
	}
	for id, t := range b.plan.Tasks {
		if ct := b.partial.task(id, t.Name); !changed[id] && ct != nil && ct.vouched {
			w[id] = 0
		}
	}
	return w
}

// keepRuns is how many run record directories a workspace keeps, counting
// the new one; older ones are removed when a build starts.
const keepRuns = 30

// pruneRuns removes the oldest of the runs old (runDirs, without the new
// run's directory) until, with the new run, keepRuns are left.
func pruneRuns(old []string) {
	for i := 0; i+keepRuns-1 < len(old); i++ {
		os.RemoveAll(old[i])
	}
}

// savePipelineCopy writes dst, a run's copy of the pipeline file. Runs of
// the same content share one file: dst is a hard link to
// .rustypipe/pipelines/<digest>.yaml, written by the first of them, so a
// build does not write the whole pipeline again (for a pipeline of 1,000
// tasks that was a tenth of a no-op build's time). Where hard links or
// their counts are not available, or linking fails, dst is a copy of its
// own. d is the digest of src.
func savePipelineCopy(workspace, dst string, src []byte, d hashing.Digest) {
	if linksCounted {
		shared := sharedPipelinePath(workspace, d)
		if a, err := os.Stat(dst); err == nil { // a recycled run directory's
			if b, err := os.Stat(shared); err == nil && os.SameFile(a, b) {
				return
			}
			os.Remove(dst)
		}
		if os.Link(shared, dst) == nil {
			return
		}
		// Written whole under a temporary name: builds running at once may
		// write the same copy, and none may link to a file another is
		// still writing.
		if atomicfile.Write(shared, src, 0o644) == nil && os.Link(shared, dst) == nil {
			return
		}
	}
	os.WriteFile(dst, src, 0o644)
}

// sharedPipelinePath is where runs' shared copy of pipeline content d is.
func sharedPipelinePath(workspace string, d hashing.Digest) string {
	return filepath.Join(PipelinesDir(workspace), d.String()+".yaml")
}

// prunePipelineCopies removes the shared pipeline copies that no run
// links to any more (savePipelineCopy). A copy that a build links again
// while it is removed stays that run's own file.
func prunePipelineCopies(workspace string) {
	if !linksCounted {
		return
	}
	dir := PipelinesDir(workspace)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		name := e.Name()
		if stem, ok := strings.CutSuffix(name, ".yaml"); !ok || len(stem) != 2*len(hashing.Digest{}) {
			continue
		}
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() && linkCount(fi) == 1 {
			os.Remove(filepath.Join(dir, name))
		}
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
		// An empty run.json is a recycled directory's, not written yet.
		if data, err := os.ReadFile(filepath.Join(RunsDir(workspace), e.Name(), runJSONName)); err == nil && len(data) > 0 {
			if json.Unmarshal(data, rec) != nil {
				rec.Status = "unreadable"
			}
		}
		runs = append(runs, rec)
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].RunID > runs[j].RunID })
	return runs, nil
}

// LogText returns the log of task in the given run ("" for the newest run
// that ran it): its log file, or, for a task that printed nothing, the
// attempt headers rendered from its JSON record.
func LogText(workspace, runID, task string) (string, error) {
	runs, err := ListRuns(workspace)
	if err != nil {
		return "", err
	}
	stem := safeName(task)
	for _, run := range runs {
		if runID != "" && run.RunID != runID {
			continue
		}
		dir := filepath.Join(RunsDir(workspace), run.RunID)
		if data, err := os.ReadFile(filepath.Join(dir, stem+".log")); err == nil {
			return string(data), nil
		}
		if rec, err := taskRecord(dir, task); err == nil {
			return renderLog(rec), nil
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

// renderLog writes the headers a silent task's log would have held.
func renderLog(r *TaskRecord) string {
	var b strings.Builder
	if r.Cache == "hit" {
		fmt.Fprintf(&b, "=== %q restored from the cache (key %s)\n", r.Name, r.Key)
	}
	for _, a := range r.Attempts {
		fmt.Fprintf(&b, "=== attempt %d/%d of %q at %s on %s\n$ %s\n", a.Number, max(r.MaxAttempts, a.Number), r.Name, a.Started.UTC().Format(time.RFC3339), r.Backend, r.Command)
		fmt.Fprintf(&b, "=== attempt %d %s (exit code %d) after %s\n", a.Number, a.Status, a.ExitCode, (time.Duration(a.DurationMS) * time.Millisecond).Round(time.Millisecond))
	}
	if len(r.Attempts) == 0 && r.Cache != "hit" {
		fmt.Fprintf(&b, "=== %q %s: %s\n", r.Name, r.Status, r.Reason)
	}
	fmt.Fprintf(&b, "(the task printed nothing)\n")
	return b.String()
}

// reservedNames are Windows' device names, which no file may take.
var reservedNames = []string{"CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9",
	"LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9"}

// reservedName reports whether base is a device name in any case, without
// the upper-cased copy that a switch on strings.ToUpper allocates for every
// task name of three or four characters.
func reservedName(base string) bool {
	switch base[0] | 0x20 { // lower case, for letters
	case 'c', 'p', 'a', 'n', 'l':
		return slices.ContainsFunc(reservedNames, func(r string) bool { return strings.EqualFold(base, r) })
	}
	return false
}

// safeName turns a task name into a file name stem that is valid on Windows
// too: unsafe characters become '_', reserved device names get a prefix, and
// a changed name gets a short hash suffix so two tasks never share a file.
func safeName(name string) string {
	s := name
	if strings.IndexFunc(name, unsafeRune) >= 0 {
		var b strings.Builder
		for _, r := range name {
			if unsafeRune(r) {
				b.WriteByte('_')
			} else {
				b.WriteRune(r)
			}
		}
		s = b.String()
	}
	s = strings.TrimRight(s, ". ")
	base := s
	if i := strings.IndexByte(base, '.'); i >= 0 {
		base = base[:i]
	}
	if (len(base) == 3 || len(base) == 4) && reservedName(base) {
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

// unsafeRune reports whether r may not appear in a safeName.
func unsafeRune(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		return false
	}
	return true
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
