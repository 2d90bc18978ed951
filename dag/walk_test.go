package dag

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

var errBoom = errors.New("boom")

func TestStatusString(t *testing.T) {
	tests := []struct {
		s    Status
		want string
	}{
		{Pending, "pending"},
		{Succeeded, "succeeded"},
		{Failed, "failed"},
		{Skipped, "skipped"},
		{Cancelled, "cancelled"},
		{Status(42), "Status(42)"},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("Status(%d).String() = %q, want %q", uint8(tt.s), got, tt.want)
		}
	}
}

// recorder collects the order in which visits start.
type recorder struct {
	mu      sync.Mutex
	started []int
}

func (r *recorder) add(id int) {
	r.mu.Lock()
	r.started = append(r.started, id)
	r.mu.Unlock()
}

func (r *recorder) names(g *Graph) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []string
	for _, id := range r.started {
		s = append(s, g.Name(id))
	}
	return s
}

// failing returns a visit that records its calls and fails the named nodes.
func failing(g *Graph, rec *recorder, fail ...string) func(context.Context, int) error {
	return func(_ context.Context, id int) error {
		rec.add(id)
		if slices.Contains(fail, g.Name(id)) {
			return fmt.Errorf("%s: %w", g.Name(id), errBoom)
		}
		return nil
	}
}

// statuses renders outcomes as "name=status" or "name=skipped<cause" in id
// order, for compact comparisons.
func statuses(g *Graph, out []Outcome) string {
	var b strings.Builder
	for id, o := range out {
		if id > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%s", g.Name(id), o.Status)
		if o.Cause >= 0 {
			fmt.Fprintf(&b, "<%s", g.Name(o.Cause))
		}
	}
	return b.String()
}

func TestWalkEmpty(t *testing.T) {
	g := mustBuild(t)
	out := g.Walk(context.Background(), WalkOptions{}, func(context.Context, int) error {
		t.Error("visit called on an empty graph")
		return nil
	})
	if len(out) != 0 {
		t.Errorf("len(out) = %d", len(out))
	}
}

func TestWalkCriticalPathFirst(t *testing.T) {
	// Roots in id order: short (weight 5, alone), then the head of a long
	// chain of unit weights whose remaining path is 6.
	g := mustBuild(t, "short", "c1", "c2:c1", "c3:c2", "c4:c3", "c5:c4", "c6:c5", "tail:short")
	weights := []int64{5, 1, 1, 1, 1, 1, 1, 0}
	var rec recorder
	out := g.Walk(context.Background(), WalkOptions{Workers: 1, Weights: weights}, failing(g, &rec))
	for id, o := range out {
		if o.Status != Succeeded || o.Err != nil || o.Cause != -1 {
			t.Errorf("%s: %+v", g.Name(id), o)
		}
	}
	got := rec.names(g)
	want := []string{"c1", "short", "c2", "c3", "c4", "c5", "c6", "tail"}
	// c1: 6 beats short: 5 despite short's lower id; then c2: 5 ties short: 5,
	// which wins by lower id; tail: 0 comes last.
	if !slices.Equal(got, want) {
		t.Errorf("start order = %v, want %v", got, want)
	}
	var order []string
	for _, id := range g.Order(weights) {
		order = append(order, g.Name(id))
	}
	if !slices.Equal(order, got) {
		t.Errorf("Order = %v, but one-worker Walk started %v", order, got)
	}
}

func TestWalkConcurrencyLimit(t *testing.T) {
	for _, workers := range []int{1, 2, 3, 5} {
		t.Run(fmt.Sprint(workers), func(t *testing.T) {
			// root fans out to 40 nodes that fan in to join: while root
			// runs, the other workers go idle and must be woken.
			nodes := []string{"root"}
			var mid []string
			for i := range 40 {
				nodes = append(nodes, fmt.Sprintf("n%d:root", i))
				mid = append(mid, fmt.Sprintf("n%d", i))
			}
			nodes = append(nodes, "join:"+strings.Join(mid, ","))
			g := mustBuild(t, nodes...)

			var cur, peak, arrived atomic.Int32
			full := make(chan struct{}) // closed once `workers` fan-out visits run at once
			out := g.Walk(context.Background(), WalkOptions{Workers: workers}, func(ctx context.Context, id int) error {
				c := cur.Add(1)
				defer cur.Add(-1)
				for p := peak.Load(); c > p && !peak.CompareAndSwap(p, c); p = peak.Load() {
				}
				switch g.Name(id) {
				case "root":
					// Yield so the other workers get to wait for work.
					for range 200 {
						runtime.Gosched()
					}
					return nil
				case "join":
					return nil
				}
				// The first `workers` fan-out visits wait for each other, so
				// the limit is reached (this hangs if idle workers are never
				// woken); then they yield for a while, giving any visit
				// beyond the limit the chance to start and raise peak.
				if a := arrived.Add(1); a <= int32(workers) {
					if a == int32(workers) {
						close(full)
					}
					<-full
					for range 200 {
						runtime.Gosched()
					}
				}
				return nil
			})
			if p := peak.Load(); p != int32(workers) {
				t.Errorf("peak concurrent visits = %d, want %d", p, workers)
			}
			for id, o := range out {
				if o.Status != Succeeded {
					t.Errorf("%s: %v", g.Name(id), o.Status)
				}
			}
		})
	}
}

func TestWalkSkipPropagation(t *testing.T) {
	//   a (fails) <- b <- c <- d -> e (ok)
	//   f (ok) <- g      \
	//   h (fails) <- i    `-- also j <- c
	g := mustBuild(t, "a", "b:a", "c:b", "e", "d:c,e", "f", "g:f", "j:c,h", "h", "i:h")
	var rec recorder
	var mu sync.Mutex
	skips := map[string]string{}
	out := g.Walk(context.Background(), WalkOptions{
		Workers: 1, // a, then ... deterministic cause for j
		OnSkip: func(id, cause int) {
			mu.Lock()
			defer mu.Unlock()
			if _, dup := skips[g.Name(id)]; dup {
				t.Errorf("OnSkip called twice for %s", g.Name(id))
			}
			skips[g.Name(id)] = g.Name(cause)
		},
	}, failing(g, &rec, "a", "h"))

	want := "a=failed b=skipped<a c=skipped<a e=succeeded d=skipped<a f=succeeded g=succeeded j=skipped<a h=failed i=skipped<h"
	if got := statuses(g, out); got != want {
		t.Errorf("outcomes:\n got %s\nwant %s", got, want)
	}
	wantSkips := map[string]string{"b": "a", "c": "a", "d": "a", "j": "a", "i": "h"}
	if fmt.Sprint(skips) != fmt.Sprint(wantSkips) {
		t.Errorf("OnSkip calls = %v, want %v", skips, wantSkips)
	}
	for _, name := range rec.names(g) {
		if strings.Contains(want, name+"=skipped") {
			t.Errorf("skipped node %s was visited", name)
		}
	}
	if a, _ := g.ID("a"); !errors.Is(out[a].Err, errBoom) {
		t.Errorf("a: Err = %v", out[a].Err)
	}
	if b, _ := g.ID("b"); out[b].Err != nil {
		t.Errorf("b: skipped with Err = %v", out[b].Err)
	}
}

func TestWalkContinueOnFail(t *testing.T) {
	// a fails but may be continued; b fails and may not.
	g := mustBuild(t, "a", "x:a", "y:x", "b", "z:b", "w:y,b")
	var rec recorder
	var asked []string
	out := g.Walk(context.Background(), WalkOptions{
		Workers: 1,
		ContinueOnFail: func(id int) bool {
			asked = append(asked, g.Name(id))
			return g.Name(id) == "a"
		},
	}, failing(g, &rec, "a", "b"))
	want := "a=failed x=succeeded y=succeeded b=failed z=skipped<b w=skipped<b"
	if got := statuses(g, out); got != want {
		t.Errorf("outcomes:\n got %s\nwant %s", got, want)
	}
	slices.Sort(asked)
	if !slices.Equal(asked, []string{"a", "b"}) {
		t.Errorf("ContinueOnFail asked for %v, want only the failed nodes [a b]", asked)
	}
}

func TestWalkFailFastIgnoresContinuedFailure(t *testing.T) {
	g := mustBuild(t, "a", "x:a", "b")
	var rec recorder
	out := g.Walk(context.Background(), WalkOptions{
		Workers:        1,
		FailFast:       true,
		ContinueOnFail: func(id int) bool { return g.Name(id) == "a" },
	}, failing(g, &rec, "a"))
	if got, want := statuses(g, out), "a=failed x=succeeded b=succeeded"; got != want {
		t.Errorf("outcomes = %s, want %s", got, want)
	}
}

func TestWalkFailFast(t *testing.T) {
	// a and b run together (highest priorities); a fails once b is running;
	// b blocks until its ctx is cancelled. c is downstream of a, d of b, e
	// and f are unrelated and never start.
	g := mustBuild(t, "a", "b", "c:a", "d:b", "e", "f:e")
	bStarted := make(chan struct{})
	var bCause error
	var rec recorder
	out := g.Walk(context.Background(), WalkOptions{Workers: 2, FailFast: true}, func(ctx context.Context, id int) error {
		rec.add(id)
		switch g.Name(id) {
		case "a":
			<-bStarted
			return errBoom
		case "b":
			close(bStarted)
			<-ctx.Done()
			bCause = context.Cause(ctx)
			return fmt.Errorf("b interrupted: %w", ctx.Err())
		}
		t.Errorf("%s started after fail-fast", g.Name(id))
		return nil
	})
	want := "a=failed b=cancelled c=skipped<a d=cancelled e=cancelled f=cancelled"
	if got := statuses(g, out); got != want {
		t.Errorf("outcomes:\n got %s\nwant %s", got, want)
	}
	if !errors.Is(bCause, ErrFailFast) || !strings.Contains(bCause.Error(), `"a" failed`) {
		t.Errorf("cause seen by b = %v, want ErrFailFast naming a", bCause)
	}
	if b, _ := g.ID("b"); !errors.Is(out[b].Err, context.Canceled) {
		t.Errorf("b: Err = %v, want its own error", out[b].Err)
	}
	if e, _ := g.ID("e"); !errors.Is(out[e].Err, ErrFailFast) {
		t.Errorf("e: Err = %v, want the fail-fast cause", out[e].Err)
	}
}

func TestWalkFailFastOffRunsEverythingElse(t *testing.T) {
	g := mustBuild(t, "a", "b", "c:a", "d:b")
	var rec recorder
	out := g.Walk(context.Background(), WalkOptions{Workers: 2}, failing(g, &rec, "a"))
	want := "a=failed b=succeeded c=skipped<a d=succeeded"
	if got := statuses(g, out); got != want {
		t.Errorf("outcomes:\n got %s\nwant %s", got, want)
	}
}

func TestWalkCancelMidWalk(t *testing.T) {
	// A chain with one worker: b cancels the walk. b itself returns nil
	// (Succeeded); in the second case it returns the ctx error (Cancelled).
	for _, tt := range []struct {
		name  string
		bErr  bool
		wantB Status
	}{
		{"visit returns nil", false, Succeeded},
		{"visit returns ctx error", true, Cancelled},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := mustBuild(t, "a", "b:a", "c:b", "d:c", "x")
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			stop := errors.New("user pressed ctrl-c")
			var rec recorder
			out := g.Walk(ctx, WalkOptions{Workers: 1}, func(vctx context.Context, id int) error {
				rec.add(id)
				if g.Name(id) == "b" {
					cancel(stop)
					if tt.bErr {
						<-vctx.Done() // the visit's ctx derives from ctx
						return vctx.Err()
					}
				}
				return nil
			})
			if got := rec.names(g); !slices.Equal(got, []string{"a", "b"}) {
				t.Errorf("visited %v, want [a b]", got)
			}
			want := fmt.Sprintf("a=succeeded b=%s c=cancelled d=cancelled x=cancelled", tt.wantB)
			if got := statuses(g, out); got != want {
				t.Errorf("outcomes:\n got %s\nwant %s", got, want)
			}
			if c, _ := g.ID("c"); !errors.Is(out[c].Err, stop) {
				t.Errorf("c: Err = %v, want the caller's cause", out[c].Err)
			}
		})
	}
}

func TestWalkCancelledBeforeStart(t *testing.T) {
	g := mustBuild(t, "a", "b:a")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := g.Walk(ctx, WalkOptions{Workers: 4}, func(context.Context, int) error {
		t.Error("visit called with a cancelled ctx")
		return nil
	})
	if got, want := statuses(g, out), "a=cancelled b=cancelled"; got != want {
		t.Errorf("outcomes = %s, want %s", got, want)
	}
	if !errors.Is(out[0].Err, context.Canceled) {
		t.Errorf("Err = %v", out[0].Err)
	}
}

func TestWalkCancelWhileWorkersIdle(t *testing.T) {
	// One long root, many workers idle waiting for it: cancelling must wake
	// them and Walk must return.
	g := mustBuild(t, "root", "a:root", "b:root", "c:root")
	ctx, cancel := context.WithCancel(context.Background())
	out := g.Walk(ctx, WalkOptions{Workers: 4}, func(vctx context.Context, id int) error {
		cancel()
		<-vctx.Done()
		return vctx.Err()
	})
	if got, want := statuses(g, out), "root=cancelled a=cancelled b=cancelled c=cancelled"; got != want {
		t.Errorf("outcomes = %s, want %s", got, want)
	}
}

func TestWalkPanic(t *testing.T) {
	for _, workers := range []int{1, 3} {
		t.Run(fmt.Sprint(workers), func(t *testing.T) {
			g := mustBuild(t, "a", "b:a", "c", "d:c")
			out := g.Walk(context.Background(), WalkOptions{Workers: workers}, func(_ context.Context, id int) error {
				switch g.Name(id) {
				case "a":
					panic("kaboom")
				case "c":
					panic(errBoom)
				}
				return nil
			})
			want := "a=failed b=skipped<a c=failed d=skipped<c"
			if got := statuses(g, out); got != want {
				t.Errorf("outcomes:\n got %s\nwant %s", got, want)
			}
			var pe *PanicError
			if !errors.As(out[0].Err, &pe) || pe.Value != "kaboom" || len(pe.Stack) == 0 {
				t.Fatalf("a: Err = %#v, want *PanicError with stack", out[0].Err)
			}
			if !strings.Contains(out[0].Err.Error(), "kaboom") {
				t.Errorf("message %q lacks the panic value", out[0].Err)
			}
			if !errors.Is(out[2].Err, errBoom) {
				t.Errorf("c: Err = %v, want to unwrap to the panicked error", out[2].Err)
			}
		})
	}
}

func TestWalkPanicAfterCancelIsFailed(t *testing.T) {
	g := mustBuild(t, "a")
	ctx, cancel := context.WithCancel(context.Background())
	out := g.Walk(ctx, WalkOptions{}, func(context.Context, int) error {
		cancel()
		panic("late")
	})
	if out[0].Status != Failed {
		t.Errorf("status = %v, want failed: a panic is a bug, not a cancellation", out[0].Status)
	}
}

// randomDAG makes a graph of n nodes whose ids are not in topological order.
func randomDAG(r *rand.Rand, n int) (*Graph, error) {
	perm := r.Perm(n) // node at rank k gets name/id perm[k]
	names := make([]string, n)
	deps := make([][]string, n)
	for k := range n {
		names[perm[k]] = fmt.Sprintf("t%d", perm[k])
	}
	density := r.Float64() * 0.3
	for k := range n {
		for j := range k {
			if r.Float64() < density {
				deps[perm[k]] = append(deps[perm[k]], names[perm[j]])
			}
		}
	}
	return Build(names, deps)
}

func TestWalkRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := range 300 {
		n := r.IntN(60)
		g, err := randomDAG(r, n)
		if err != nil {
			t.Fatal(err)
		}
		workers := 1 + r.IntN(8)
		fail := make([]bool, n)
		cont := make([]bool, n)
		for i := range n {
			fail[i] = r.IntN(8) == 0
			cont[i] = r.IntN(2) == 0
		}
		weights := make([]int64, n)
		for i := range weights {
			weights[i] = r.Int64N(100)
		}

		visits := make([]atomic.Int32, n)
		finished := make([]atomic.Bool, n)
		var cur, peak atomic.Int32
		out := g.Walk(context.Background(), WalkOptions{
			Workers:        workers,
			Weights:        weights,
			ContinueOnFail: func(id int) bool { return cont[id] },
		}, func(_ context.Context, id int) error {
			c := cur.Add(1)
			defer cur.Add(-1)
			for p := peak.Load(); c > p && !peak.CompareAndSwap(p, c); p = peak.Load() {
			}
			visits[id].Add(1)
			for _, d := range g.Deps(id) {
				if !finished[d].Load() {
					t.Errorf("iter %d: %s started before its dependency %s finished", iter, g.Name(id), g.Name(d))
				}
			}
			finished[id].Store(true)
			if fail[id] {
				return errBoom
			}
			return nil
		})
		if p := peak.Load(); p > int32(workers) {
			t.Errorf("iter %d: %d visits at once, limit %d", iter, p, workers)
		}

		// The expected outcome, computed sequentially in topological order.
		want := make([]Status, n)
		for _, id := range g.Order(nil) {
			want[id] = Succeeded
			for _, d := range g.Deps(id) {
				if want[d] == Skipped || want[d] == Failed && !cont[d] {
					want[id] = Skipped
				}
			}
			if want[id] == Succeeded && fail[id] {
				want[id] = Failed
			}
		}
		for id := range n {
			o := out[id]
			if o.Status != want[id] {
				t.Errorf("iter %d: %s: status %v, want %v", iter, g.Name(id), o.Status, want[id])
			}
			wantVisits := int32(1)
			if want[id] == Skipped {
				wantVisits = 0
			}
			if v := visits[id].Load(); v != wantVisits {
				t.Errorf("iter %d: %s visited %d times, want %d", iter, g.Name(id), v, wantVisits)
			}
			if o.Status == Skipped {
				if o.Cause < 0 || out[o.Cause].Status != Failed || cont[o.Cause] || !upstream(g, o.Cause, id) {
					t.Errorf("iter %d: %s skipped with cause %d, not a failed upstream node", iter, g.Name(id), o.Cause)
				}
			} else if o.Cause != -1 {
				t.Errorf("iter %d: %s: Cause = %d for %v", iter, g.Name(id), o.Cause, o.Status)
			}
		}
		assertTopological(t, g, g.Order(weights))
		if t.Failed() {
			return
		}
	}
}

// upstream reports whether a is a transitive dependency of b.
func upstream(g *Graph, a, b int) bool {
	seen := make([]bool, g.Len())
	stack := []int{b}
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, d := range g.Deps(id) {
			if d == a {
				return true
			}
			if !seen[d] {
				seen[d] = true
				stack = append(stack, d)
			}
		}
	}
	return false
}

func TestWalkRandomFailFast(t *testing.T) {
	// With fail-fast and one failing node, every node ends in a final state,
	// nothing runs twice, the failed node's dependents are skipped and, with
	// one worker, nothing starts after the failure.
	r := rand.New(rand.NewPCG(3, 4))
	for iter := range 100 {
		n := 1 + r.IntN(50)
		g, err := randomDAG(r, n)
		if err != nil {
			t.Fatal(err)
		}
		failAt := r.IntN(n)
		workers := 1 + r.IntN(4)
		var failedDone atomic.Bool
		visits := make([]atomic.Int32, n)
		out := g.Walk(context.Background(), WalkOptions{Workers: workers, FailFast: true}, func(ctx context.Context, id int) error {
			if failedDone.Load() {
				t.Errorf("iter %d: %s started after the fail-fast failure", iter, g.Name(id))
			}
			visits[id].Add(1)
			if id == failAt {
				// With one worker nothing may start after this; with more,
				// others may start before the failure is recorded.
				failedDone.Store(workers == 1)
				return errBoom
			}
			return nil
		})
		for id, o := range out {
			if o.Status == Pending {
				t.Errorf("iter %d: %s left pending", iter, g.Name(id))
			}
			if visits[id].Load() > 1 {
				t.Errorf("iter %d: %s visited twice", iter, g.Name(id))
			}
			if (o.Status == Succeeded || o.Status == Failed) != (visits[id].Load() == 1) {
				t.Errorf("iter %d: %s %v but visited %d times", iter, g.Name(id), o.Status, visits[id].Load())
			}
		}
		if out[failAt].Status != Failed {
			t.Errorf("iter %d: failing node %v", iter, out[failAt].Status)
		}
		for _, r := range g.Dependents(failAt) {
			if out[r].Status != Skipped || out[r].Cause != failAt {
				t.Errorf("iter %d: dependent %s of the failed node: %+v", iter, g.Name(r), out[r])
			}
		}
	}
}
