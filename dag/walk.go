package dag

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"sync"
)

// Status is the fate of a node in a walk.
type Status uint8

const (
	// Pending is the zero Status. Walk never returns it.
	Pending Status = iota
	// Succeeded: the visit returned nil.
	Succeeded
	// Failed: the visit returned an error (or panicked) while the walk was
	// not cancelled.
	Failed
	// Skipped: never visited because an upstream node failed; Outcome.Cause
	// names the failed node.
	Skipped
	// Cancelled: never visited because the walk was stopped (context done or
	// fail-fast), or visited and returned an error after the walk's context
	// was cancelled.
	Cancelled
)

var statusNames = [...]string{"pending", "succeeded", "failed", "skipped", "cancelled"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// Outcome is what happened to one node in a walk.
type Outcome struct {
	Status Status
	// Err is the visit's error for Failed and for Cancelled nodes that ran;
	// for Cancelled nodes that never ran it is the cause of the walk's
	// cancellation (context.Cause); for Succeeded and Skipped it is nil.
	Err error
	// Cause is, for Skipped, the id of the failed upstream node that caused
	// the skip; -1 otherwise.
	Cause int
}

// ErrFailFast is wrapped by the cancellation cause of a walk stopped by
// WalkOptions.FailFast: context.Cause of the ctx passed to running visits,
// and the Err of nodes Cancelled before they started.
var ErrFailFast = errors.New("fail-fast")

// PanicError is the Outcome.Err of a visit that panicked. A panic always
// yields Failed, even when the walk was cancelled.
type PanicError struct {
	Value any    // the value passed to panic
	Stack []byte // the visiting goroutine's stack at the panic
}

func (e *PanicError) Error() string { return fmt.Sprintf("dag: visit panicked: %v", e.Value) }

// Unwrap returns the panic value if it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// WalkOptions tune Walk. The zero value runs runtime.NumCPU() visits at once
// with equal weights, and skips the dependents of failed nodes.
type WalkOptions struct {
	// Workers is the maximum number of concurrent visits; <= 0 means
	// runtime.NumCPU().
	Workers int
	// FailFast: on the first Failed node (other than one ContinueOnFail lets
	// through), start nothing new and cancel the ctx passed to running
	// visits (its cause wraps ErrFailFast). The failed node's dependents are
	// still Skipped; other unstarted nodes are Cancelled.
	FailFast bool
	// Weights is an optional per-node cost (for example the last duration);
	// entries missing or nil count 1, negative ones 0. A node's priority is
	// its longest remaining path: the largest sum of weights along a path
	// from the node down to a node with no dependents. Ready nodes start in
	// decreasing priority, ties broken by lower id (critical path first).
	Weights []int64
	// ContinueOnFail, when set and true for a Failed node, lets that node's
	// dependents run as if it had succeeded. It is called from the worker
	// that ran the node, without the scheduler lock, possibly concurrently
	// for different nodes.
	ContinueOnFail func(id int) bool
	// OnSkip, when set, is called once for each Skipped node as soon as it
	// is known to be skipped, with the id of the failed upstream node. Calls
	// are serialized (never concurrent with each other), are made from a
	// worker without the scheduler lock, and all return before Walk does.
	// The calling worker starts no new visit until OnSkip returns.
	OnSkip func(id, cause int)
}

// Walk visits every node after all its dependencies finished, at most
// opts.Workers at a time, and returns one Outcome per node, indexed by id.
// See the package documentation for the invariants.
//
// visit returns nil for success and an error for failure. A Failed node's
// dependents are Skipped, transitively, with Cause set to it, unless
// opts.ContinueOnFail says otherwise. A panic in visit is recovered and
// recorded as Failed with a *PanicError.
//
// Cancellation: when ctx is done (or opts.FailFast fires) Walk starts nothing
// new, the ctx passed to running visits is cancelled, and Walk waits for them
// to return. A visit that returns an error after the walk's ctx was cancelled
// (for any reason) is recorded as Cancelled, not Failed, whatever the error
// is: a task killed because of the cancellation is not a failure of its own.
// A visit that returns nil is Succeeded even after cancellation. Nodes never
// started are Cancelled, except those already Skipped.
func (g *Graph) Walk(ctx context.Context, opts WalkOptions, visit func(ctx context.Context, id int) error) []Outcome {
	n := g.Len()
	out := make([]Outcome, n)
	for i := range out {
		out[i].Cause = -1
	}
	if n == 0 {
		return out
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	workers = min(workers, n)

	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	w := &walker{
		g:      g,
		opts:   &opts,
		visit:  visit,
		ctx:    wctx,
		cancel: cancel,
		done:   wctx.Done(),
		out:    out,
	}
	w.sched.init(g, opts.Weights)
	w.cond.L = &w.mu
	stop := context.AfterFunc(wctx, func() {
		w.mu.Lock()
		w.stopping = true
		w.cond.Broadcast()
		w.mu.Unlock()
	})
	defer stop()

	var wg sync.WaitGroup
	wg.Add(workers)
	for range workers {
		go func() {
			defer wg.Done()
			w.work()
		}()
	}
	wg.Wait()

	var cause error
	for i := range out {
		if out[i].Status == Pending {
			if cause == nil {
				cause = context.Cause(wctx)
			}
			out[i].Status = Cancelled
			out[i].Err = cause
		}
	}
	return out
}

// walker is the shared state of one Walk. The fields above onSkipMu are set
// before the workers start and only read afterwards. onSkipMu serializes
// OnSkip calls and is never held together with mu. mu guards the fields
// below it, and cond waits on mu.
type walker struct {
	g      *Graph
	opts   *WalkOptions
	visit  func(context.Context, int) error
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   <-chan struct{}

	onSkipMu sync.Mutex

	mu       sync.Mutex
	cond     sync.Cond
	sched    sched
	out      []Outcome
	inflight int  // visits running
	idle     int  // workers waiting on cond
	stopping bool // start nothing new
}

// work is one worker's loop: take the best ready node, visit it without the
// lock, record the result and release its dependents.
func (w *walker) work() {
	var skipped []int // reused buffer of nodes skipped by one failure
	w.mu.Lock()
	for {
		id, ok := w.next()
		if !ok {
			break
		}
		w.mu.Unlock()

		err, panicked := w.call(id)
		st := Succeeded
		switch {
		case err == nil:
		case panicked:
			st = Failed
		case w.ctx.Err() != nil:
			st = Cancelled
		default:
			st = Failed
		}
		cont := st == Failed && w.opts.ContinueOnFail != nil && w.opts.ContinueOnFail(id)

		w.mu.Lock()
		w.inflight--
		w.out[id].Status, w.out[id].Err = st, err
		skipped = skipped[:0]
		switch {
		case st == Succeeded || cont:
			w.sched.release(id)
		case st == Failed:
			skipped = w.sched.skip(id, w.out, skipped)
			if w.opts.FailFast && !w.stopping {
				w.stopping = true
				w.cond.Broadcast()
				w.mu.Unlock()
				// Outside mu: cancelling takes the locks of contexts derived
				// by running visits.
				w.cancel(fmt.Errorf("dag: walk: %q failed: %w", w.g.Name(id), ErrFailFast))
				w.mu.Lock()
			}
		}
		if len(skipped) > 0 && w.opts.OnSkip != nil {
			w.mu.Unlock()
			w.onSkipMu.Lock()
			for _, s := range skipped {
				w.opts.OnSkip(s, id)
			}
			w.onSkipMu.Unlock()
			w.mu.Lock()
		}
	}
	w.mu.Unlock()
}

// next waits, with mu held, until a node is ready or the worker should exit.
func (w *walker) next() (int, bool) {
	for {
		if !w.stopping {
			select {
			case <-w.done:
				w.stopping = true
				w.cond.Broadcast()
			default:
			}
		}
		if w.stopping {
			return 0, false
		}
		if id, ok := w.sched.pop(); ok {
			w.inflight++
			if w.idle > 0 && w.sched.ready() > 0 {
				w.cond.Signal() // hand the rest on to an idle worker
			}
			return id, true
		}
		if w.inflight == 0 {
			// Nothing ready and nothing running: every node is settled.
			w.cond.Broadcast()
			return 0, false
		}
		w.idle++
		w.cond.Wait()
		w.idle--
	}
}

// call runs visit for id, turning a panic into a *PanicError.
func (w *walker) call(id int) (err error, panicked bool) {
	defer func() {
		if v := recover(); v != nil {
			err, panicked = &PanicError{Value: v, Stack: debug.Stack()}, true
		}
	}()
	return w.visit(w.ctx, id), false
}

// sched is the scheduling core shared by Walk and Order: pending-dependency
// counters and a ready max-heap by priority. It is not safe for concurrent
// use; Walk guards it with walker.mu.
type sched struct {
	g       *Graph
	pending []int32 // unfinished dependencies per node
	prio    []int64 // longest remaining path per node
	heap    []entry // ready nodes; heap[0] starts next
}

// entry is a ready node with its priority copied in, so that heap
// comparisons touch only the heap's own memory.
type entry struct {
	prio int64
	id   int32
}

func (s *sched) init(g *Graph, weights []int64) {
	n := g.Len()
	s.g = g
	s.pending = make([]int32, n)
	s.prio = make([]int64, n)
	s.heap = make([]entry, 0, n)
	for k := n - 1; k >= 0; k-- {
		id := int(g.topo[k])
		var best int64
		for _, r := range g.Dependents(id) {
			best = max(best, s.prio[r])
		}
		w := int64(1)
		if id < len(weights) {
			w = max(weights[id], 0)
		}
		if best > math.MaxInt64-w {
			s.prio[id] = math.MaxInt64
		} else {
			s.prio[id] = best + w
		}
	}
	for id := range n {
		p := int32(g.depOff[id+1] - g.depOff[id])
		s.pending[id] = p
		if p == 0 {
			s.push(int32(id))
		}
	}
}

func (s *sched) ready() int { return len(s.heap) }

// release records that id finished in a way that lets its dependents run.
func (s *sched) release(id int) {
	for _, r := range s.g.Dependents(id) {
		s.pending[r]--
		if s.pending[r] == 0 {
			s.push(int32(r))
		}
	}
}

// skip marks every Pending node downstream of the failed node id as Skipped
// with Cause id, appending them to buf. None of them can have started: each
// needs id (directly or through another skipped node) to finish first. Nodes
// already Skipped are left alone, with their own cause, and so are their
// descendants, which were skipped with them.
func (s *sched) skip(id int, out []Outcome, buf []int) []int {
	start := len(buf)
	for _, r := range s.g.Dependents(id) {
		if out[r].Status == Pending {
			out[r].Status, out[r].Cause = Skipped, id
			buf = append(buf, r)
		}
	}
	// buf[start:] doubles as the work list: each entry's dependents are
	// examined once.
	for k := start; k < len(buf); k++ {
		for _, r := range s.g.Dependents(buf[k]) {
			if out[r].Status == Pending {
				out[r].Status, out[r].Cause = Skipped, id
				buf = append(buf, r)
			}
		}
	}
	return buf
}

// before reports whether a starts before b: higher priority, then lower id.
func before(a, b entry) bool {
	if a.prio != b.prio {
		return a.prio > b.prio
	}
	return a.id < b.id
}

func (s *sched) push(id int32) {
	e := entry{prio: s.prio[id], id: id}
	h := append(s.heap, e)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !before(e, h[p]) {
			break
		}
		h[i] = h[p]
		i = p
	}
	h[i] = e
	s.heap = h
}

func (s *sched) pop() (int, bool) {
	h := s.heap
	if len(h) == 0 {
		return 0, false
	}
	top := h[0].id
	last := len(h) - 1
	e := h[last]
	h = h[:last]
	i := 0
	for {
		c := 2*i + 1
		if c >= len(h) {
			break
		}
		if r := c + 1; r < len(h) && before(h[r], h[c]) {
			c = r
		}
		if !before(h[c], e) {
			break
		}
		h[i] = h[c]
		i = c
	}
	if last > 0 {
		h[i] = e
	}
	s.heap = h
	return int(top), true
}

// Order returns the order in which Walk, with one worker and these weights,
// would start the nodes if every visit succeeded: a topological order that
// prefers the longest remaining path (see WalkOptions.Weights). It is meant
// for dry runs.
func (g *Graph) Order(weights []int64) []int {
	var s sched
	s.init(g, weights)
	order := make([]int, 0, g.Len())
	for {
		id, ok := s.pop()
		if !ok {
			return order
		}
		order = append(order, id)
		s.release(id)
	}
}
