package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/rustypipe/rustypipe/dag"
	"github.com/rustypipe/rustypipe/exec"
	"github.com/rustypipe/rustypipe/hashing"
	"github.com/rustypipe/rustypipe/pipeline"
)

// Options are the resolved settings of one build. cmd fills them from flags,
// environment and config file; nothing here reads those sources itself.
type Options struct {
	Targets  []string      // task names to build with their upstream tasks; empty means all
	Jobs     int           // commands run at once; 0 means the pipeline's concurrency, else NumCPU
	FailFast bool          // stop starting tasks and cancel running ones on the first failure
	Grace    time.Duration // SIGTERM → SIGKILL grace period for cancelled tasks
	DryRun   bool          // print the plan, run nothing

	// Backends maps backend names used by tasks to implementations; "local"
	// must be present. Build does not close them.
	Backends map[string]exec.Backend

	Cache CacheOptions // the task cache; the zero value turns it off

	Reporter Reporter        // events; never nil
	Stdout   io.Writer       // console for task output
	Kill     <-chan struct{} // closed on a second interrupt: kill without grace
	Env      []string        // the process environment tasks inherit (os.Environ())
	RunID    string          // "" makes a new one
	Now      func() time.Time
	// NoopStamp identifies the rustypipe binary for the no-op record
	// (noop.go); "" neither writes nor removes the record.
	NoopStamp string
	// Noop is what TryNoop found when some recorded files had changed:
	// tasks it shows unchanged are up to date without computing keys.
	Noop *NoopPartial
	// Debug, if set, is told how the no-op record was used
	// (RUSTYPIPE_DEBUG=noop).
	Debug func(msg string)
	// State, if set, is the workspace state already loading (PreloadState).
	State *StateLoad

	state *workspaceState // loaded by Run
}

// Summary is what a build did.
type Summary struct {
	RunID    string
	Dir      string // the run's record directory
	Status   string // succeeded, failed, cancelled
	Counts   map[Status]int
	Started  time.Time
	Finished time.Time
	Tasks    []*TaskRecord
}

// Failed reports whether any task failed or timed out (not counting
// continue_on_fail tasks).
func (s *Summary) Failed() bool { return s.Status == "failed" }

// ErrInterrupted is returned by Run when ctx was cancelled before all tasks
// finished.
var ErrInterrupted = errors.New("build: interrupted")

// TaskError reports a task that failed the build.
type TaskError struct {
	Task     string
	ExitCode int // -1 when no process exited (it could not start, or was killed)
	Status   Status
	Reason   string // why, when it is not an exit code
}

func (e *TaskError) Error() string {
	switch {
	case e.Status == StatusTimedOut:
		return fmt.Sprintf("task %q timed out", e.Task)
	case e.ExitCode < 0 && e.Reason != "":
		return fmt.Sprintf("task %q failed: %s", e.Task, e.Reason)
	}
	return fmt.Sprintf("task %q failed with exit code %d", e.Task, e.ExitCode)
}

// FailedError lists every task that failed the build.
type FailedError struct{ Tasks []*TaskError }

func (e *FailedError) Error() string {
	if len(e.Tasks) == 1 {
		return e.Tasks[0].Error()
	}
	return fmt.Sprintf("%d tasks failed; first: %v", len(e.Tasks), e.Tasks[0])
}

func (e *FailedError) Unwrap() []error {
	errs := make([]error, len(e.Tasks))
	for i, t := range e.Tasks {
		errs[i] = t
	}
	return errs
}

// Plan is a validated pipeline with its graph, restricted to the targets.
type Plan struct {
	Pipeline  *pipeline.Pipeline
	Graph     *dag.Graph
	Tasks     []*pipeline.Task // Tasks[id] is the task of graph node id
	Workspace string           // absolute directory of the pipeline file
}

// NewPlan builds the task graph of p and selects targets (all when empty).
// A cycle or unknown target is reported with the file position of the task.
func NewPlan(p *pipeline.Pipeline, targets []string) (*Plan, error) {
	names := make([]string, len(p.Tasks))
	deps := make([][]string, len(p.Tasks))
	for i, t := range p.Tasks {
		names[i] = t.Name
		deps[i] = t.DependsOn
	}
	g, err := dag.Build(names, deps)
	if err != nil {
		var ce *dag.CycleError
		if errors.As(err, &ce) && len(ce.Path) > 0 {
			t := p.Task(ce.Path[0])
			return nil, &pipeline.DecodeError{File: t.Pos.File, Line: t.Pos.Line, Col: t.Pos.Col, Task: t.Name, Key: "depends_on",
				Msg: "dependency cycle: " + joinArrow(ce.Path)}
		}
		return nil, fmt.Errorf("%s: %w", p.File, err)
	}
	if len(targets) > 0 {
		var idx []int
		g, idx, err = g.Select(targets)
		if err != nil {
			return nil, &UsageError{Err: err}
		}
		_ = idx
	}
	abs, err := filepath.Abs(filepath.Dir(p.File))
	if err != nil {
		return nil, fmt.Errorf("build: workspace of %s: %w", p.File, err)
	}
	pl := &Plan{Pipeline: p, Graph: g, Workspace: abs, Tasks: make([]*pipeline.Task, g.Len())}
	for id := range pl.Tasks {
		pl.Tasks[id] = p.Task(g.Name(id))
	}
	return pl, nil
}

// UsageError is a mistake on the command line, such as an unknown target.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

func joinArrow(path []string) string {
	s := ""
	for i, n := range path {
		if i > 0 {
			s += " -> "
		}
		s += n
	}
	return s
}

// Run executes the plan. It returns the summary and, when the build did not
// succeed, a *FailedError or an error wrapping ErrInterrupted.
func Run(ctx context.Context, pl *Plan, o Options) (*Summary, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RunID == "" {
		o.RunID = NewRunID(o.Now())
	}
	if o.Jobs <= 0 {
		o.Jobs = pl.Pipeline.Concurrency
	}
	if o.Jobs <= 0 {
		o.Jobs = runtime.NumCPU()
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Grace <= 0 {
		o.Grace = 10 * time.Second
	}
	for _, t := range pl.Tasks {
		if _, ok := o.Backends[backendName(t)]; !ok {
			return nil, fmt.Errorf("build: task %q: backend %q is not available", t.Name, backendName(t))
		}
	}

	// The run's directory is made while the rest is prepared: the
	// workspace state may still be loading (Options.State).
	var (
		src       []byte
		srcDigest hashing.Digest // zero: makeRunDir computes it
		partial   bool
		made      chan error
		recs      *runDir
	)
	if !o.DryRun {
		src = pl.Pipeline.Source() // a copy for the run record, and the no-op record's digest
		if src == nil {
			src, _ = os.ReadFile(pl.Pipeline.File)
		}
		if o.NoopStamp != "" && o.Cache.reads() && len(o.Cache.Force) == 0 && o.Cache.DebugKeys == nil && o.Noop.usable(pl, o, src) {
			partial = true
			srcDigest = o.Noop.rec.pipeline // usable checked src against it
		}
		made = make(chan error, 1)
		go func(runID string) {
			var err error
			recs, err = makeRunDir(pl.Workspace, src, srcDigest, runID)
			made <- err
		}(o.RunID)
	}

	cache := newCacheLayer(pl, o) // starts loading the stat memo, which the state load overlaps
	o.state = o.State.get(pl.Workspace)
	if cache.opts.on() {
		cache.state = o.state
	}
	b := &builder{plan: pl, opts: o, records: make([]*TaskRecord, len(pl.Tasks)), outputs: make([]*taskOutput, len(pl.Tasks)), cache: cache,
		slots: make(chan struct{}, o.Jobs)}
	slab := make([]TaskRecord, len(pl.Tasks)) // one allocation for all records
	for id, t := range pl.Tasks {
		r := &slab[id]
		r.Name, r.Description, r.Backend, r.Status = t.Name, t.Description, backendName(t), StatusPending
		r.file = safeName(t.Name)
		b.records[id] = r
	}
	if o.DryRun {
		return b.dryRun(ctx)
	}
	if partial {
		b.partial = o.Noop
		b.clean = make([]*noopTask, len(pl.Tasks))
	}
	if err := <-made; err != nil {
		return nil, err
	}
	b.dir = recs
	sum := &Summary{RunID: o.RunID, Dir: recs.dir, Started: o.Now(), Tasks: b.records}
	o.Reporter.RunStarted(sum, len(pl.Tasks))

	stopOnFail := o.FailFast || pl.Pipeline.StopOnFail
	outcomes := pl.Graph.Walk(ctx, dag.WalkOptions{
		Workers:        2 * o.Jobs, // commands are limited to o.Jobs by b.slots
		FailFast:       stopOnFail,
		Weights:        b.weights(),
		ContinueOnFail: func(id int) bool { return pl.Tasks[id].ContinueOnFail },
		OnSkip: func(id, cause int) {
			r := b.records[id]
			r.mu.Lock()
			r.Status = StatusSkipped
			r.Reason = fmt.Sprintf("dependency %q failed", pl.Tasks[cause].Name)
			r.mu.Unlock()
			o.Reporter.TaskSkipped(r)
			recs.writeTask(r)
		},
	}, b.visit)
	if o.Debug != nil && b.partial != nil {
		n := 0
		for _, ct := range b.clean {
			if ct != nil {
				n++
			}
		}
		o.Debug(fmt.Sprintf("no-op record: %d of %d tasks up to date by their unchanged files", n, len(pl.Tasks)))
	}

	var failed []*TaskError
	for id, oc := range outcomes {
		r := b.records[id]
		r.mu.Lock()
		switch {
		case oc.Status == dag.Cancelled && r.Status == StatusPending:
			r.Status = StatusCancelled
			r.Reason = "build interrupted before the task started"
			r.mu.Unlock()
			recs.writeTask(r)
			r.mu.Lock()
		case oc.Status == dag.Skipped && r.Status == StatusPending:
			r.Status = StatusSkipped
		case oc.Status == dag.Failed && r.Status == StatusPending:
			// The visit panicked (a bug, in rustypipe or a backend): the
			// walk recovered it; the record says so.
			r.Status, r.ExitCode, r.Reason = StatusFailed, -1, fmt.Sprintf("internal error: %v", oc.Err)
			r.mu.Unlock()
			o.Reporter.TaskFinished(r)
			recs.writeTask(r)
			r.mu.Lock()
		}
		if (r.Status == StatusFailed || r.Status == StatusTimedOut) && !pl.Tasks[id].ContinueOnFail {
			failed = append(failed, &TaskError{Task: r.Name, ExitCode: r.ExitCode, Status: r.Status, Reason: r.Reason})
		}
		r.mu.Unlock()
	}
	sum.Finished = o.Now()
	sum.Counts = map[Status]int{}
	for _, r := range b.records {
		sum.Counts[r.Status]++
	}
	switch {
	case ctx.Err() != nil:
		sum.Status = "cancelled"
	case len(failed) > 0:
		sum.Status = "failed"
	default:
		sum.Status = "succeeded"
	}
	// The stat memo, the workspace state and run.json are separate files:
	// they are written at once.
	var (
		wg                         sync.WaitGroup
		cacheErr, stateErr, runErr error
	)
	wg.Add(2)
	go func() { defer wg.Done(); cacheErr = b.cache.finish() }()
	go func() { defer wg.Done(); stateErr = o.state.save() }()
	recs.close()
	runErr = recs.writeRun(sum)
	wg.Wait()
	for _, e := range []error{cacheErr, stateErr, runErr} {
		if e != nil {
			o.Reporter.Warn(e.Error())
		}
	}
	b.writeNoop(sum, src)
	o.Reporter.RunFinished(sum)
	switch {
	case ctx.Err() != nil:
		return sum, fmt.Errorf("%w: %v", ErrInterrupted, context.Cause(ctx))
	case len(failed) > 0:
		return sum, &FailedError{Tasks: failed}
	}
	return sum, nil
}

func backendName(t *pipeline.Task) string {
	if t.Backend == "" {
		return "local"
	}
	return t.Backend
}

type builder struct {
	plan    *Plan
	opts    Options
	dir     *runDir
	records []*TaskRecord
	cache   *cacheLayer
	slots   chan struct{} // a token per command running (acquireSlot)
	partial *NoopPartial  // the no-op record's partial result, when it applies (noop.go)
	clean   []*noopTask   // per task id: up to date by the no-op record

	envOnce sync.Once
	env     []string // baseEnv

	outMu   sync.Mutex
	outputs []*taskOutput // per task id: finished tasks' outputs, for templates and keys
}
