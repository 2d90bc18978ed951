package pipeline

import (
	"strconv"
	"time"
)

// Pipeline is a loaded, validated pipeline file.
type Pipeline struct {
	File        string                    // path the pipeline was loaded from, as given
	Name        string                    // `name`
	Description string                    // `description`
	Concurrency int                       // `concurrency`; 0 means "not set"
	StopOnFail  bool                      // `stop_on_fail`
	Env         map[string]string         // `env`, passed to every task
	Vars        map[string]string         // `vars`, for {{ vars.NAME }}
	Shell       string                    // `shell`, default for every task
	Dir         string                    // `dir`, default working dir relative to the pipeline file's directory
	Backends    map[string]*BackendConfig // `backends`, named backend configurations
	Tasks       []*Task                   // `tasks`, in file order

	byName map[string]*Task         // index of Tasks, set by Parse
	keyPos map[*Task]map[string]Pos // position of each key of each task, set by Parse
	source []byte                   // the file's bytes, set by Load and LoadCached
}

// Source returns the pipeline file's bytes as they were read and parsed, so
// that callers need not read the file again (and cannot see a later
// version); nil for a pipeline not loaded from a file.
func (p *Pipeline) Source() []byte { return p.source }

// Task returns the task named name, or nil when there is none.
func (p *Pipeline) Task(name string) *Task {
	if p.byName != nil {
		return p.byName[name]
	}
	for _, t := range p.Tasks {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// KeyPos returns the position of key (such as "depends_on" or "run") in the
// mapping of the task named task, for messages that concern one key. When the
// key is absent, or p was not built by Parse, it returns the task's own
// position and false.
func (p *Pipeline) KeyPos(task, key string) (Pos, bool) {
	t := p.Task(task)
	if t == nil {
		return Pos{File: p.File}, false
	}
	if pos, ok := p.keyPos[t][key]; ok {
		return pos, true
	}
	return t.Pos, false
}

// Task is one entry of `tasks:`.
type Task struct {
	Name           string            // `name`
	Run            string            // `run`, the command template
	DependsOn      []string          // `depends_on`
	Retries        int               // `retries` (original format): extra attempts after the first; Retry.Attempts-1 when `retry` is used
	Timeout        time.Duration     // `timeout`: seconds or a duration string; 0 means none
	Backend        string            // `backend`: "local" or a name from `backends`; "" means local
	CacheKey       string            // `cache_key`: a salt mixed into the task's key
	ContinueOnFail bool              // `continue_on_fail`: dependents run even when this task fails
	Env            map[string]string // `env`, merged over the pipeline's
	Vars           map[string]string // `vars`, merged over the pipeline's
	Shell          string            // `shell`, overrides the pipeline's
	Dir            string            // `dir`, working dir relative to the pipeline file's directory
	Inputs         []string          // `inputs`, glob list
	Outputs        []string          // `outputs`, glob list
	Description    string            // `description`
	Retry          *Retry            // `retry` block, or {Attempts: Retries+1} for `retries`; nil when neither is given
	Image          string            // `image`: overrides the backend's image (container backends)

	Pos Pos // where the task's mapping starts in the file
}

// Retry is the `retry` block of a task.
type Retry struct {
	Attempts    int           // total attempts including the first (>= 1)
	Delay       time.Duration // wait before the second attempt
	Backoff     float64       // factor applied to the delay after each attempt (>= 1; default 2)
	MaxDelay    time.Duration // cap on the delay; 0 means no cap
	OnExitCodes []int         // retry only these exit codes; empty means any failure
}

// BackendConfig is one entry of `backends:`. Type selects the implementation
// ("local", "docker", "ssh", "kubernetes", "external"); the remaining keys are
// kept as decoded YAML values for that implementation to interpret.
type BackendConfig struct {
	Name    string
	Type    string
	Options map[string]any
	Pos     Pos
}

// Pos is a position in a pipeline file. Line and Col are 1-based; a zero
// Line or Col means "unknown".
type Pos struct {
	File string
	Line int
	Col  int
}

// String formats p as file:line:col, leaving out the parts that are unknown.
func (p Pos) String() string {
	s := p.File
	if p.Line > 0 {
		s += ":" + strconv.Itoa(p.Line)
		if p.Col > 0 {
			s += ":" + strconv.Itoa(p.Col)
		}
	}
	return s
}
