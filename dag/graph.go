package dag

import (
	"fmt"
	"slices"
	"strings"
)

// Graph is an immutable directed acyclic graph of named nodes identified by
// dense ints 0..Len()-1, in the order the names were given to Build.
//
// A Graph is safe for concurrent use: no method modifies it. Slices returned
// by Deps and Dependents are views of the graph's storage and must not be
// modified.
type Graph struct {
	names []string
	index map[string]int

	// Compressed adjacency: the deps of node i are deps[depOff[i]:depOff[i+1]]
	// in declaration order (duplicates removed); the dependents of node i are
	// rdeps[rdepOff[i]:rdepOff[i+1]] in increasing id order.
	depOff, deps   []int
	rdepOff, rdeps []int

	// topo is a topological order (every node after its dependencies).
	topo []int32
}

// UnknownError reports that Node depends on Dep, which is not a node name.
type UnknownError struct {
	Node string // the node whose dependency list names Dep
	Dep  string // the missing name
}

func (e *UnknownError) Error() string {
	return fmt.Sprintf("dag: build: %q depends on unknown node %q", e.Node, e.Dep)
}

// CycleError reports a dependency cycle. Path lists the cycle in dependency
// order and repeats its first node at the end: [a b c a] means a depends on
// b, b on c and c on a. A self-loop is [a a].
type CycleError struct {
	Path []string
}

func (e *CycleError) Error() string {
	return "dag: build: dependency cycle " + strings.Join(e.Path, " -> ")
}

// DuplicateError reports a node name given more than once to Build.
type DuplicateError struct {
	Name string
}

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("dag: build: duplicate node name %q", e.Name)
}

// UnknownTargetError reports target names given to Select that are not nodes
// of the graph. Targets is in the order the names were given, without
// repeats.
type UnknownTargetError struct {
	Targets []string
}

func (e *UnknownTargetError) Error() string {
	q := make([]string, len(e.Targets))
	for i, t := range e.Targets {
		q[i] = fmt.Sprintf("%q", t)
	}
	noun := "target"
	if len(q) > 1 {
		noun = "targets"
	}
	return fmt.Sprintf("dag: select: unknown %s %s", noun, strings.Join(q, ", "))
}

// Build makes a graph from node names and, for each node, the names of the
// nodes it depends on: deps[i] lists the dependencies of names[i]. deps may be
// shorter than names (missing entries mean no dependencies) but not longer.
// A dependency named twice in one list counts once.
//
// Errors are checked in this order, and the first found is returned:
// *DuplicateError for a repeated name, *UnknownError for a dependency that is
// not a name (the first by node, then by position in its list), *CycleError
// for a cycle (deterministic for given inputs).
// Build keeps no reference to names or deps.
func Build(names []string, deps [][]string) (*Graph, error) {
	n := len(names)
	if len(deps) > n {
		return nil, fmt.Errorf("dag: build: %d dependency lists for %d nodes", len(deps), n)
	}
	g := &Graph{
		names:   slices.Clone(names),
		index:   make(map[string]int, n),
		depOff:  make([]int, n+1),
		rdepOff: make([]int, n+2),
	}
	for i, name := range g.names {
		if _, dup := g.index[name]; dup {
			return nil, &DuplicateError{Name: name}
		}
		g.index[name] = i
	}

	total := 0
	for _, ds := range deps {
		total += len(ds)
	}
	g.deps = make([]int, 0, total)
	// seen[d] == i+1 when d is already a dependency of node i (dedup without
	// a per-node set).
	seen := make([]int32, n)
	for i := range n {
		if i < len(deps) {
			for _, dn := range deps[i] {
				d, ok := g.index[dn]
				if !ok {
					return nil, &UnknownError{Node: names[i], Dep: dn}
				}
				if seen[d] == int32(i+1) {
					continue
				}
				seen[d] = int32(i + 1)
				g.deps = append(g.deps, d)
				// Count dependents of d, shifted by two so the prefix sum
				// below leaves rdepOff[d+1] at the start of d's run.
				g.rdepOff[d+2]++
			}
		}
		g.depOff[i+1] = len(g.deps)
	}

	// Reverse adjacency by counting sort: dependents come out in id order.
	for i := 2; i < n+2; i++ {
		g.rdepOff[i] += g.rdepOff[i-1]
	}
	g.rdeps = make([]int, len(g.deps))
	for i := range n {
		for _, d := range g.deps[g.depOff[i]:g.depOff[i+1]] {
			g.rdeps[g.rdepOff[d+1]] = i
			g.rdepOff[d+1]++
		}
	}
	g.rdepOff = g.rdepOff[:n+1]

	// Kahn's algorithm; seen is reused as the pending-dependency count.
	pending := seen
	g.topo = make([]int32, 0, n)
	for i := range n {
		pending[i] = int32(g.depOff[i+1] - g.depOff[i])
		if pending[i] == 0 {
			g.topo = append(g.topo, int32(i))
		}
	}
	for k := 0; k < len(g.topo); k++ {
		for _, r := range g.Dependents(int(g.topo[k])) {
			pending[r]--
			if pending[r] == 0 {
				g.topo = append(g.topo, int32(r))
			}
		}
	}
	if len(g.topo) < n {
		return nil, &CycleError{Path: g.findCycle(pending)}
	}
	return g, nil
}

// findCycle returns a cycle among the nodes Kahn's algorithm could not order
// (pending[i] > 0). Each such node has at least one dependency that is also
// unordered, so following the first unordered dependency from the lowest such
// id must revisit a node; the revisited stretch is the cycle.
func (g *Graph) findCycle(pending []int32) []string {
	start := slices.IndexFunc(pending, func(p int32) bool { return p > 0 })
	onPath := make(map[int]int)
	var path []int
	for cur := start; ; {
		if at, ok := onPath[cur]; ok {
			cyc := make([]string, 0, len(path)-at+1)
			for _, id := range path[at:] {
				cyc = append(cyc, g.names[id])
			}
			return append(cyc, g.names[cur])
		}
		onPath[cur] = len(path)
		path = append(path, cur)
		next := -1
		for _, d := range g.Deps(cur) {
			if pending[d] > 0 {
				next = d
				break
			}
		}
		cur = next // never -1: an unordered node has an unordered dependency
	}
}

// Len returns the number of nodes.
func (g *Graph) Len() int { return len(g.names) }

// Name returns the name of node id. It panics if id is out of range.
func (g *Graph) Name(id int) string { return g.names[id] }

// ID returns the id of the node called name, and whether there is one.
func (g *Graph) ID(name string) (int, bool) {
	id, ok := g.index[name]
	return id, ok
}

// Deps returns the direct dependencies of node id, in the order they were
// declared. The slice must not be modified. It panics if id is out of range.
func (g *Graph) Deps(id int) []int {
	lo, hi := g.depOff[id], g.depOff[id+1]
	return g.deps[lo:hi:hi]
}

// Dependents returns the nodes that depend directly on node id, in increasing
// id order. The slice must not be modified. It panics if id is out of range.
func (g *Graph) Dependents(id int) []int {
	lo, hi := g.rdepOff[id], g.rdepOff[id+1]
	return g.rdeps[lo:hi:hi]
}

// Select returns the subgraph made of the targets and every node upstream of
// them (their transitive dependencies), and old, where old[newID] is the id of
// the same node in g. Nodes keep their relative order, so old is increasing.
// Empty targets select an empty graph. Unknown names give an
// *UnknownTargetError naming all of them.
func (g *Graph) Select(targets []string) (*Graph, []int, error) {
	keep := make([]bool, g.Len())
	stack := make([]int, 0, len(targets))
	var unknown []string
	for _, t := range targets {
		id, ok := g.index[t]
		if !ok {
			if !slices.Contains(unknown, t) {
				unknown = append(unknown, t)
			}
			continue
		}
		if !keep[id] {
			keep[id] = true
			stack = append(stack, id)
		}
	}
	if len(unknown) > 0 {
		return nil, nil, &UnknownTargetError{Targets: unknown}
	}
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, d := range g.Deps(id) {
			if !keep[d] {
				keep[d] = true
				stack = append(stack, d)
			}
		}
	}

	newID := make([]int, g.Len())
	var old []int
	for id, k := range keep {
		if k {
			newID[id] = len(old)
			old = append(old, id)
		}
	}
	m := len(old)
	s := &Graph{
		names:   make([]string, m),
		index:   make(map[string]int, m),
		depOff:  make([]int, m+1),
		rdepOff: make([]int, m+1),
		topo:    make([]int32, 0, m),
	}
	for i, o := range old {
		s.names[i] = g.names[o]
		s.index[s.names[i]] = i
		for _, d := range g.Deps(o) {
			s.deps = append(s.deps, newID[d]) // every dep of a kept node is kept
		}
		s.depOff[i+1] = len(s.deps)
		for _, r := range g.Dependents(o) {
			if keep[r] {
				s.rdeps = append(s.rdeps, newID[r])
			}
		}
		s.rdepOff[i+1] = len(s.rdeps)
	}
	for _, o := range g.topo {
		if keep[o] {
			s.topo = append(s.topo, int32(newID[o]))
		}
	}
	return s, old, nil
}
