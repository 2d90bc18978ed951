package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/rustypipe/rustypipe/exec"
	"github.com/rustypipe/rustypipe/pipeline"
)

// maxOutputRef bounds a {{ task.output }} value: it travels in an
// environment variable, and Linux limits one to 128 KiB (MAX_ARG_STRLEN).
const maxOutputRef = 128 << 10

// unavailableAttempts is how many attempts a task gets, whatever its retry
// policy, when its backend is unavailable (exec.ErrUnavailable): a lost
// connection is not the task's failure.
const unavailableAttempts = 3

// timeoutError is the cause of a context that hit a task's timeout.
type timeoutError struct {
	task string
	d    time.Duration
}

func (e *timeoutError) Error() string { return fmt.Sprintf("task %q timed out after %s", e.task, e.d) }

// finishDone records a task that needs no run: up to date, or restored from
// the cache.
func (b *builder) finishDone(id int, st *lookupResult) error {
	r := b.records[id]
	b.setOutput(id, st.output)
	r.finish(b.opts.Now(), st.status, 0, "")
	b.opts.Reporter.TaskFinished(r)
	// An up-to-date task did nothing: run.json lists it, and no per-task
	// record is written, which keeps a no-op build cheap.
	if st.status != StatusUpToDate {
		b.dir.writeTask(r)
	}
	return nil
}

// acquireSlot waits for one of the -j slots for running a command, and
// reports false when ctx ended first. The walk has more workers than
// slots, so that one task's bookkeeping (looking up, storing, recording)
// never keeps a slot from running the next command.
func (b *builder) acquireSlot(ctx context.Context) bool {
	select {
	case b.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// runInSlot runs spec on backend and gives back the slot taken for it,
// even if the backend panics (the walk turns a panic into a failed task
// and goes on).
func (b *builder) runInSlot(ctx context.Context, backend exec.Backend, spec *exec.Spec) (*exec.Result, error) {
	defer func() { <-b.slots }()
	return backend.Run(ctx, spec)
}

// visit runs one task: render, look up, dispatch with retries, record.
func (b *builder) visit(ctx context.Context, id int) error {
	t := b.plan.Tasks[id]
	r := b.records[id]
	o := b.opts
	r.setStart(o.Now())
	if st := b.upToDateByRecord(id); st != nil {
		return b.finishDone(id, st)
	}
	script, refEnv, err := b.render(id)
	if err != nil {
		return b.finishEarly(r, StatusFailed, err)
	}
	r.mu.Lock()
	r.Command = script
	r.mu.Unlock()

	st, err := b.cache.lookup(ctx, b, id, script, refEnv)
	if err != nil {
		return b.finishEarly(r, StatusFailed, err)
	}
	if st != nil && st.done {
		return b.finishDone(id, st)
	}
	b.cache.state.forget(t.Name)
	env := b.taskEnv(t, refEnv)

	backend := o.Backends[backendName(t)]
	pol := retryPolicyOf(t)
	r.mu.Lock()
	r.MaxAttempts = pol.attempts
	r.mu.Unlock()
	log := b.dir.openLog(r)
	defer log.Close()
	stdout, stderr := newCapture(b.dir.stdoutPath(r)), newCapture(b.dir.stderrPath(r))

	var (
		status   Status
		exitCode int
		reason   string
	)
	for attempt := 1; ; attempt++ {
		if !b.acquireSlot(ctx) {
			status, exitCode, reason = StatusCancelled, -1, "build interrupted before the task started"
			break
		}
		stdout.reset()
		stderr.reset()
		a := &Attempt{Number: attempt, Started: o.Now()}
		started, attempts := a.Started, pol.attempts
		log.header(func(b []byte) []byte {
			return fmt.Appendf(b, "=== attempt %d/%d of %q at %s on %s\n$ %s\n", attempt, attempts, t.Name,
				started.UTC().Format(time.RFC3339), backendName(t), script)
		})
		o.Reporter.TaskStarted(r, attempt)
		cout, cerr := o.Reporter.TaskWriters(r)
		spec := &exec.Spec{
			Task: t.Name, RunID: o.RunID,
			Script: script, Shell: shellOf(b.plan.Pipeline, t), Env: env,
			Workspace: b.plan.Workspace, Dir: dirOf(b.plan.Pipeline, t),
			Inputs: b.cache.inputFiles(id), Outputs: t.Outputs, Image: t.Image,
			Stdout: io.MultiWriter(cout, log, stdout), Stderr: io.MultiWriter(cerr, log, stderr),
			Grace: o.Grace, Kill: o.Kill,
		}
		actx, cancel := ctx, context.CancelFunc(func() {})
		if t.Timeout > 0 {
			actx, cancel = context.WithTimeoutCause(ctx, t.Timeout, &timeoutError{t.Name, t.Timeout})
		}
		res, runErr := b.runInSlot(actx, backend, spec)
		cause := context.Cause(actx)
		cancel()
		cout.Close()
		cerr.Close()
		stdout.close()
		stderr.close()
		a.Finished = o.Now()
		if res != nil {
			a.ExitCode, a.Signal = res.ExitCode, res.Signal
		} else {
			a.ExitCode = -1
		}
		var te *timeoutError
		switch {
		case runErr == nil && res.ExitCode == 0:
			a.Status = StatusSucceeded
		case ctx.Err() != nil:
			a.Status, a.Error = StatusCancelled, "interrupted"
		case runErr != nil && errors.As(cause, &te):
			a.Status, a.Error = StatusTimedOut, te.Error()
		case runErr != nil:
			a.Status, a.Error = StatusFailed, runErr.Error()
		default:
			a.Status = StatusFailed
		}
		st, code, took := a.Status, a.ExitCode, a.Finished.Sub(a.Started).Round(time.Millisecond)
		log.header(func(b []byte) []byte {
			return fmt.Appendf(b, "=== attempt %d %s (exit code %d) after %s\n", attempt, st, code, took)
		})
		status, exitCode, reason = a.Status, a.ExitCode, a.Error
		if status == StatusFailed && reason == "" {
			reason = fmt.Sprintf("exit code %d", exitCode)
		}
		unavailable := errors.Is(runErr, exec.ErrUnavailable) && attempt < unavailableAttempts
		if status == StatusSucceeded || status == StatusCancelled || (!unavailable && (attempt >= pol.attempts || !pol.retryable(a))) {
			r.addAttempt(a)
			break
		}
		a.RetryDelay = pol.delay(attempt)
		if unavailable {
			a.RetryDelay = max(a.RetryDelay, time.Second)
		}
		a.RetryDelayMS = a.RetryDelay.Milliseconds()
		r.addAttempt(a)
		delay := a.RetryDelay.Round(time.Millisecond)
		log.header(func(b []byte) []byte { return fmt.Appendf(b, "=== retrying in %s\n", delay) })
		o.Reporter.TaskRetrying(r, a)
		if !sleepCtx(ctx, a.RetryDelay) {
			status, reason = StatusCancelled, "interrupted while waiting to retry"
			break
		}
	}

	if n := len(r.Attempts); n > 0 && status != StatusCancelled {
		last := r.Attempts[n-1]
		o.state.setDuration(t.Name, last.Finished.Sub(last.Started).Milliseconds())
	}
	if status == StatusSucceeded {
		output, err := b.cache.store(ctx, b, id, stdout, stderr)
		if err != nil {
			status, reason = StatusFailed, err.Error()
		} else {
			b.setOutput(id, output)
		}
	}
	r.finish(o.Now(), status, exitCode, reason)
	o.Reporter.TaskFinished(r)
	b.dir.writeTask(r)
	switch status {
	case StatusSucceeded:
		return nil
	case StatusCancelled:
		return context.Canceled
	}
	return errors.New(reason)
}

// finishEarly records a task that ended before any attempt ran.
func (b *builder) finishEarly(r *TaskRecord, s Status, err error) error {
	r.finish(b.opts.Now(), s, -1, err.Error())
	b.opts.Reporter.TaskFinished(r)
	b.dir.writeTask(r)
	return err
}

// render interpolates the task's command. Upstream outputs are read from the
// finished dependencies; Load has already checked every reference.
func (b *builder) render(id int) (string, []string, error) {
	t := b.plan.Tasks[id]
	tpl, err := pipeline.ParseTemplate(t.Run)
	if err != nil {
		return "", nil, fmt.Errorf("task %q: %w", t.Name, err)
	}
	p := b.plan.Pipeline
	return tpl.Render(shellOf(p, t), func(ref pipeline.Ref) (string, error) {
		switch ref.Kind {
		case "task":
			up, ok := b.plan.Graph.ID(ref.Name)
			if !ok {
				return "", fmt.Errorf("task %q: {{ %s.output }}: task is not part of this build", t.Name, ref.Name)
			}
			return b.outputText(up)
		case "vars":
			if v, ok := t.Vars[ref.Name]; ok {
				return v, nil
			}
			if v, ok := p.Vars[ref.Name]; ok {
				return v, nil
			}
			return "", fmt.Errorf("task %q: unknown var %q", t.Name, ref.Name)
		case "env":
			if v, ok := t.Env[ref.Name]; ok {
				return v, nil
			}
			if v, ok := p.Env[ref.Name]; ok {
				return v, nil
			}
			v, _ := lookupEnv(b.opts.Env, ref.Name)
			return v, nil
		}
		return "", fmt.Errorf("task %q: unknown reference kind %q", t.Name, ref.Kind)
	})
}

// taskEnv is the complete environment of a task: the inherited process
// environment, then the pipeline's env, then the task's, then rustypipe's own
// variables and the template values; sorted.
//
// The part that is the same for every task is built once (baseEnv); a task
// adds only its own variables to it.
func (b *builder) taskEnv(t *pipeline.Task, refEnv []string) []string {
	base := b.baseEnv()
	own := make([]string, 0, len(t.Env)+1+len(refEnv))
	set := make(map[string]int, cap(own)) // name → index in own, until sorted
	add := func(k, v string) {
		kv := k + "=" + v
		if i, ok := set[k]; ok {
			own[i] = kv
			return
		}
		set[k] = len(own)
		own = append(own, kv)
	}
	for k, v := range t.Env {
		if k != "RUSTYPIPE_RUN_ID" && k != "RUSTYPIPE_WORKSPACE" { // rustypipe's win, as in baseEnv
			add(k, v)
		}
	}
	add("RUSTYPIPE_TASK", t.Name)
	for _, kv := range refEnv {
		if k, v, ok := strings.Cut(kv, "="); ok {
			add(k, v)
		}
	}
	sort.Strings(own)
	// Merge the two sorted lists, leaving out base entries the task sets.
	env := make([]string, 0, len(base)+len(own))
	i := 0
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if _, theirs := set[k]; theirs {
			continue
		}
		for i < len(own) && own[i] < kv {
			env = append(env, own[i])
			i++
		}
		env = append(env, kv)
	}
	return append(env, own[i:]...)
}

// baseEnv returns, sorted, the environment every task starts from: the
// inherited one without RUSTYPIPE_REF_ variables, the pipeline's env, and
// rustypipe's variables that are the same for every task of the build.
func (b *builder) baseEnv() []string {
	b.envOnce.Do(func() {
		m := map[string]string{}
		for _, kv := range b.opts.Env {
			if k, v, ok := strings.Cut(kv, "="); ok && !strings.HasPrefix(k, "RUSTYPIPE_REF_") {
				m[k] = v
			}
		}
		for k, v := range b.plan.Pipeline.Env {
			m[k] = v
		}
		m["RUSTYPIPE_RUN_ID"] = b.opts.RunID
		m["RUSTYPIPE_WORKSPACE"] = b.plan.Workspace
		delete(m, "RUSTYPIPE_TASK")
		env := make([]string, 0, len(m))
		for k, v := range m {
			env = append(env, k+"="+v)
		}
		sort.Strings(env)
		b.env = env
	})
	return b.env
}

func lookupEnv(env []string, name string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == name {
			return v, true
		}
	}
	return "", false
}

func shellOf(p *pipeline.Pipeline, t *pipeline.Task) string {
	if t.Shell != "" {
		return t.Shell
	}
	if p.Shell != "" {
		return p.Shell
	}
	if runtime.GOOS == "windows" {
		return "powershell"
	}
	return "sh"
}

func dirOf(p *pipeline.Pipeline, t *pipeline.Task) string {
	d := t.Dir
	if d == "" {
		d = p.Dir
	}
	d = strings.ReplaceAll(d, "\\", "/")
	d = strings.TrimPrefix(d, "./")
	if d == "." {
		d = ""
	}
	return d
}

// taskOutput is what a finished task hands to its dependents.
type taskOutput struct {
	stdout *capture // the final attempt's stdout
	text   string   // trimmed stdout, read on first use
	read   bool
	meta   any // the cache layer's output manifest, when caching is on
}

func (b *builder) setOutput(id int, out *taskOutput) {
	b.outMu.Lock()
	b.outputs[id] = out
	b.outMu.Unlock()
}

func (b *builder) output(id int) *taskOutput {
	b.outMu.Lock()
	defer b.outMu.Unlock()
	return b.outputs[id]
}

// outputMeta is a finished task's output manifest for its dependents'
// keys; nil when it did not finish or was not keyed (caching off).
func (b *builder) outputMeta(id int) *outputMeta {
	if out := b.output(id); out != nil {
		m, _ := out.meta.(*outputMeta)
		return m
	}
	return nil
}

// outputText is the trimmed stdout of a finished task.
func (b *builder) outputText(id int) (string, error) {
	b.outMu.Lock()
	defer b.outMu.Unlock()
	out := b.outputs[id]
	name := b.plan.Tasks[id].Name
	if out == nil {
		return "", fmt.Errorf("the output of task %q is not available (it did not succeed)", name)
	}
	if !out.read {
		f, err := out.stdout.open()
		if err != nil {
			return "", fmt.Errorf("output of task %q: %w", name, err)
		}
		data, err := io.ReadAll(io.LimitReader(f, maxOutputRef+1))
		f.Close()
		if err != nil {
			return "", fmt.Errorf("output of task %q: %w", name, err)
		}
		if len(data) > maxOutputRef {
			return "", fmt.Errorf("output of task %q is larger than %d KiB; write it to a file and declare it in outputs instead", name, maxOutputRef>>10)
		}
		out.text, out.read = strings.TrimSpace(string(data)), true
	}
	return out.text, nil
}

// retryPolicy is a task's retry block with its defaults applied.
type retryPolicy struct {
	attempts int
	delay0   time.Duration
	backoff  float64
	max      time.Duration
	codes    []int
	jitter   func() float64 // in [0,1)
}

func retryPolicyOf(t *pipeline.Task) retryPolicy {
	p := retryPolicy{attempts: t.Retries + 1, delay0: time.Second, backoff: 2, jitter: rand.Float64}
	if r := t.Retry; r != nil {
		p.attempts = max(r.Attempts, 1)
		p.delay0 = r.Delay
		if r.Backoff >= 1 {
			p.backoff = r.Backoff
		}
		p.max = r.MaxDelay
		p.codes = r.OnExitCodes
	}
	return p
}

func (p retryPolicy) retryable(a *Attempt) bool {
	if len(p.codes) == 0 {
		return true
	}
	return a.Status == StatusFailed && slices.Contains(p.codes, a.ExitCode)
}

// delay is the wait after the given failed attempt: exponential backoff with
// "equal jitter" (half fixed, half random), so waits never shrink from one
// attempt to the next when the backoff factor is at least 2.
func (p retryPolicy) delay(attempt int) time.Duration {
	d := float64(p.delay0) * math.Pow(p.backoff, float64(attempt-1))
	if p.max > 0 && d > float64(p.max) {
		d = float64(p.max)
	}
	return time.Duration(d/2 + d/2*p.jitter())
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
