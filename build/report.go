package build

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// Reporter receives the events of a build. Implementations are safe for
// concurrent use: tasks report from their own goroutines.
type Reporter interface {
	RunStarted(s *Summary, tasks int)
	TaskStarted(r *TaskRecord, attempt int)
	TaskRetrying(r *TaskRecord, a *Attempt)
	TaskFinished(r *TaskRecord)
	TaskSkipped(r *TaskRecord)
	RunFinished(s *Summary)
	Warn(msg string)
	// TaskWriters returns where an attempt's stdout and stderr go on the
	// console. The caller closes both when the attempt ends.
	TaskWriters(r *TaskRecord) (stdout, stderr io.WriteCloser)
}

// ConsoleOptions configure the human-readable reporter.
type ConsoleOptions struct {
	Out    io.Writer // events and task output
	Prefix bool      // prefix task output lines with the task name
	Live   bool      // redraw a progress line at the bottom (terminals only)
	Now    func() time.Time
}

// console prints events as plain lines, and on a terminal keeps a live
// progress line under them.
type console struct {
	o   ConsoleOptions
	mu  sync.Mutex    // guards everything below and every write to out
	out *bufio.Writer // o.Out, flushed within flushDelay of any write
	// flushing is set while a flush is scheduled.
	flushing bool

	total   int
	running map[string]time.Time
	counts  map[Status]int
	drawn   bool
	buf     []byte // lineOf's line
	stop    chan struct{}
	done    chan struct{}
}

// NewConsole returns the reporter for people.
func NewConsole(o ConsoleOptions) Reporter {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &console{o: o, out: bufio.NewWriterSize(o.Out, 64<<10), running: map[string]time.Time{}, counts: map[Status]int{}}
}

// flushDelay bounds how long console output waits in the buffer. Writing
// each status line with its own system call cost a large part of a no-op
// build of 1,000 tasks; people and CI logs do not notice 20 ms.
const flushDelay = 20 * time.Millisecond

// writeLocked buffers p and makes sure a flush is scheduled.
func (c *console) writeLocked(p []byte) {
	c.out.Write(p)
	if !c.flushing {
		c.flushing = true
		time.AfterFunc(flushDelay, func() {
			c.mu.Lock()
			c.flushing = false
			c.out.Flush()
			c.mu.Unlock()
		})
	}
}

func (c *console) flush() {
	c.mu.Lock()
	c.out.Flush()
	c.mu.Unlock()
}

func (c *console) RunStarted(s *Summary, tasks int) {
	c.mu.Lock()
	c.total = tasks
	c.mu.Unlock()
	if c.o.Live {
		c.stop, c.done = make(chan struct{}), make(chan struct{})
		go c.ticker()
	}
}

func (c *console) ticker() {
	defer close(c.done)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.mu.Lock()
			c.redrawLocked()
			c.mu.Unlock()
		}
	}
}

// printLocked writes text above the progress line.
func (c *console) printLocked(p []byte) {
	if c.drawn {
		c.writeLocked([]byte("\r\x1b[K"))
		c.drawn = false
	}
	c.writeLocked(p)
}

func (c *console) redrawLocked() {
	if !c.o.Live {
		return
	}
	done := c.counts[StatusSucceeded] + c.counts[StatusCached] + c.counts[StatusUpToDate]
	failed := c.counts[StatusFailed] + c.counts[StatusTimedOut]
	pending := c.total - done - failed - c.counts[StatusSkipped] - c.counts[StatusCancelled] - len(c.running)
	names := make([]string, 0, len(c.running))
	for n := range c.running {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "[%d/%d] done %d, running %d, failed %d, pending %d", done+failed, c.total, done, len(c.running), failed, max(pending, 0))
	now := c.o.Now()
	for i, n := range names {
		if i == 3 {
			fmt.Fprintf(&b, " +%d", len(names)-3)
			break
		}
		fmt.Fprintf(&b, " | %s %s", n, now.Sub(c.running[n]).Round(time.Second))
	}
	line := b.String()
	if len(line) > 160 {
		line = line[:160]
	}
	c.writeLocked([]byte("\r\x1b[K" + line))
	c.drawn = true
}

// lineOf prints its parts as a line, without fmt: a build prints such a
// line or two for each of its tasks.
func (c *console) lineOf(parts ...string) {
	c.mu.Lock()
	c.buf = c.buf[:0]
	for _, p := range parts {
		c.buf = append(c.buf, p...)
	}
	c.buf = append(c.buf, '\n')
	c.printLocked(c.buf)
	c.redrawLocked()
	c.mu.Unlock()
}

func (c *console) line(format string, args ...any) {
	c.mu.Lock()
	c.printLocked([]byte(fmt.Sprintf(format, args...) + "\n"))
	c.redrawLocked()
	c.mu.Unlock()
}

func (c *console) TaskStarted(r *TaskRecord, attempt int) {
	c.mu.Lock()
	c.running[r.Name] = c.o.Now()
	c.mu.Unlock()
	if attempt > 1 {
		c.line("--> %s (attempt %d)", r.Name, attempt)
		return
	}
	c.lineOf("--> ", r.Name)
}

func (c *console) TaskRetrying(r *TaskRecord, a *Attempt) {
	c.mu.Lock()
	delete(c.running, r.Name)
	c.mu.Unlock()
	why := a.Error
	if why == "" {
		why = fmt.Sprintf("exit code %d", a.ExitCode)
	}
	c.line("    %s: attempt %d %s (%s); retrying in %s", r.Name, a.Number, a.Status, why, a.RetryDelay.Round(time.Millisecond))
}

func (c *console) TaskFinished(r *TaskRecord) {
	r.mu.Lock()
	s := struct {
		Name, Reason, CacheWarning string
		Status                     Status
		DurationMS                 int64
	}{r.Name, r.Reason, r.CacheWarning, r.Status, r.DurationMS}
	r.mu.Unlock()
	c.mu.Lock()
	delete(c.running, s.Name)
	c.counts[s.Status]++
	c.mu.Unlock()
	d := (time.Duration(s.DurationMS) * time.Millisecond).Round(time.Millisecond)
	switch s.Status {
	case StatusSucceeded:
		c.lineOf("ok   ", s.Name, " (", d.String(), ")")
	case StatusCached:
		c.lineOf("ok   ", s.Name, " (cached)")
	case StatusUpToDate:
		c.lineOf("ok   ", s.Name, " (up to date)")
	case StatusCancelled:
		c.line("STOP %s (%s)", s.Name, s.Reason)
	default:
		c.line("FAIL %s: %s (%s)", s.Name, s.Reason, d)
	}
	if s.CacheWarning != "" {
		c.line("warning: %s: %s", s.Name, s.CacheWarning)
	}
}

func (c *console) TaskSkipped(r *TaskRecord) {
	s := r.Snapshot()
	c.mu.Lock()
	c.counts[StatusSkipped]++
	c.mu.Unlock()
	c.line("skip %s: %s", s.Name, s.Reason)
}

func (c *console) RunFinished(s *Summary) {
	if c.stop != nil {
		close(c.stop)
		<-c.done
	}
	c.mu.Lock()
	if c.drawn {
		c.writeLocked([]byte("\r\x1b[K"))
		c.drawn = false
	}
	c.o.Live = false // the summary is the last line; no progress line after it
	c.mu.Unlock()
	c.line("%s: %s in %s (run %s)", s.Status, CountsText(s.Counts), s.Finished.Sub(s.Started).Round(time.Millisecond), s.RunID)
	c.flush()
}

func (c *console) Warn(msg string) {
	c.line("warning: %s", msg)
	c.flush()
}

func (c *console) TaskWriters(r *TaskRecord) (io.WriteCloser, io.WriteCloser) {
	prefix := ""
	if c.o.Prefix {
		prefix = "[" + r.Name + "] "
	}
	return &lineWriter{c: c, prefix: prefix}, &lineWriter{c: c, prefix: prefix}
}

// CountsText renders status counts in a fixed order, such as
// "3 succeeded, 1 failed".
func CountsText(m map[Status]int) string {
	var parts []string
	for _, s := range []Status{StatusSucceeded, StatusCached, StatusUpToDate, StatusFailed, StatusTimedOut, StatusSkipped, StatusCancelled} {
		if m[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", m[s], s))
		}
	}
	if len(parts) == 0 {
		return "nothing to do"
	}
	return strings.Join(parts, ", ")
}

// maxLine bounds how much of an unterminated line a lineWriter holds before
// printing it anyway, so a task that never prints a newline cannot grow
// memory.
const maxLine = 16 << 10

// lineWriter prints whole lines of a task's output through the console, each
// with the task's prefix, so lines of concurrent tasks never interleave.
type lineWriter struct {
	c      *console
	prefix string
	buf    []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	if w.prefix == "" && !w.c.o.Live {
		w.c.mu.Lock()
		w.c.writeLocked(p)
		w.c.mu.Unlock()
		return n, nil
	}
	var out bytes.Buffer
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			if len(w.buf) >= maxLine {
				out.WriteString(w.prefix)
				out.Write(w.buf)
				out.WriteByte('\n')
				w.buf = w.buf[:0]
			}
			break
		}
		out.WriteString(w.prefix)
		out.Write(w.buf)
		out.Write(p[:i+1])
		w.buf = w.buf[:0]
		p = p[i+1:]
	}
	if out.Len() > 0 {
		w.c.mu.Lock()
		w.c.printLocked(out.Bytes())
		w.c.redrawLocked()
		w.c.mu.Unlock()
	}
	return n, nil
}

func (w *lineWriter) Close() error {
	if len(w.buf) > 0 {
		w.Write([]byte{'\n'})
	}
	return nil
}

// jsonReporter prints one JSON object per line for CI tools; task output goes
// to a separate writer (stderr) so that stdout stays parseable.
type jsonReporter struct {
	mu   sync.Mutex
	enc  *json.Encoder
	task *console
	now  func() time.Time
}

// NewJSON returns a reporter that writes JSON events to events and task
// output, prefixed with task names, to taskOut.
func NewJSON(events, taskOut io.Writer) Reporter {
	return &jsonReporter{enc: json.NewEncoder(events), task: NewConsole(ConsoleOptions{Out: taskOut, Prefix: true}).(*console), now: time.Now}
}

// Event is one line of --output json.
type Event struct {
	Event      string         `json:"event"` // run_started, task_started, task_retrying, task_finished, task_skipped, run_finished, warning
	Time       time.Time      `json:"time"`
	RunID      string         `json:"run_id,omitempty"`
	Task       string         `json:"task,omitempty"`
	Attempt    int            `json:"attempt,omitempty"`
	Status     string         `json:"status,omitempty"`
	ExitCode   *int           `json:"exit_code,omitempty"`
	DurationMS *int64         `json:"duration_ms,omitempty"`
	Reason     string         `json:"reason,omitempty"`
	Cache      string         `json:"cache,omitempty"`
	Key        string         `json:"key,omitempty"`
	Tasks      int            `json:"tasks,omitempty"`
	Counts     map[Status]int `json:"counts,omitempty"`
	Message    string         `json:"message,omitempty"`
}

func (j *jsonReporter) emit(e Event) {
	e.Time = j.now().UTC()
	j.mu.Lock()
	j.enc.Encode(e)
	j.mu.Unlock()
}

func (j *jsonReporter) RunStarted(s *Summary, tasks int) {
	j.emit(Event{Event: "run_started", RunID: s.RunID, Tasks: tasks})
}

func (j *jsonReporter) TaskStarted(r *TaskRecord, attempt int) {
	j.emit(Event{Event: "task_started", Task: r.Name, Attempt: attempt})
}

func (j *jsonReporter) TaskRetrying(r *TaskRecord, a *Attempt) {
	code := a.ExitCode
	j.emit(Event{Event: "task_retrying", Task: r.Name, Attempt: a.Number, Status: string(a.Status), ExitCode: &code, Reason: a.Error})
}

func (j *jsonReporter) TaskFinished(r *TaskRecord) {
	s := r.Snapshot()
	e := Event{Event: "task_finished", Task: s.Name, Status: string(s.Status), Reason: s.Reason, Cache: s.Cache, Key: s.Key,
		ExitCode: &s.ExitCode, DurationMS: &s.DurationMS}
	j.emit(e)
}

func (j *jsonReporter) TaskSkipped(r *TaskRecord) {
	s := r.Snapshot()
	j.emit(Event{Event: "task_skipped", Task: s.Name, Status: string(StatusSkipped), Reason: s.Reason})
}

func (j *jsonReporter) RunFinished(s *Summary) {
	j.task.flush()
	d := s.Finished.Sub(s.Started).Milliseconds()
	j.emit(Event{Event: "run_finished", RunID: s.RunID, Status: s.Status, Counts: s.Counts, DurationMS: &d})
}

func (j *jsonReporter) Warn(msg string) { j.emit(Event{Event: "warning", Message: msg}) }

func (j *jsonReporter) TaskWriters(r *TaskRecord) (io.WriteCloser, io.WriteCloser) {
	return j.task.TaskWriters(r)
}
