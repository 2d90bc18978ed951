package dag

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// spec parses node specs "name:dep1,dep2" (or just "name") into Build's
// arguments.
func spec(nodes ...string) ([]string, [][]string) {
	names := make([]string, len(nodes))
	deps := make([][]string, len(nodes))
	for i, s := range nodes {
		name, ds, _ := strings.Cut(s, ":")
		names[i] = name
		if ds != "" {
			deps[i] = strings.Split(ds, ",")
		}
	}
	return names, deps
}

func mustBuild(t testing.TB, nodes ...string) *Graph {
	t.Helper()
	g, err := Build(spec(nodes...))
	if err != nil {
		t.Fatalf("Build(%q): %v", nodes, err)
	}
	return g
}

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name  string
		nodes []string
		want  error
		msg   string
	}{
		{"self loop", []string{"a:a"}, &CycleError{Path: []string{"a", "a"}}, `dag: build: dependency cycle a -> a`},
		{"two cycle", []string{"a:b", "b:a"}, &CycleError{Path: []string{"a", "b", "a"}}, ""},
		{"three cycle", []string{"a:b", "b:c", "c:a"}, &CycleError{Path: []string{"a", "b", "c", "a"}}, `dag: build: dependency cycle a -> b -> c -> a`},
		{
			// x leads into the cycle but is not on it; z hangs below it.
			"long cycle entered from outside",
			[]string{"x:z,b", "z", "b:c", "c:d", "d:e,z", "e:b", "y:x"},
			&CycleError{Path: []string{"b", "c", "d", "e", "b"}}, "",
		},
		{"cycle beside a valid part", []string{"a", "b:a", "c:d", "d:c"}, &CycleError{Path: []string{"c", "d", "c"}}, ""},
		{"unknown dep", []string{"a", "b:a,nope"}, &UnknownError{Node: "b", Dep: "nope"}, `dag: build: "b" depends on unknown node "nope"`},
		{"first unknown wins", []string{"a:x", "b:y"}, &UnknownError{Node: "a", Dep: "x"}, ""},
		{"unknown before cycle", []string{"a:a", "b:nope"}, &UnknownError{Node: "b", Dep: "nope"}, ""},
		{"duplicate", []string{"a", "b", "a"}, &DuplicateError{Name: "a"}, `dag: build: duplicate node name "a"`},
		{"duplicate before unknown", []string{"a:nope", "a"}, &DuplicateError{Name: "a"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := Build(spec(tt.nodes...))
			if err == nil {
				t.Fatalf("Build succeeded with %d nodes, want %v", g.Len(), tt.want)
			}
			if reflect.TypeOf(err) != reflect.TypeOf(tt.want) || !reflect.DeepEqual(err, tt.want) {
				t.Fatalf("err = %#v, want %#v", err, tt.want)
			}
			if tt.msg != "" && err.Error() != tt.msg {
				t.Errorf("message = %q, want %q", err.Error(), tt.msg)
			}
		})
	}
}

func TestBuildTooManyDepLists(t *testing.T) {
	_, err := Build([]string{"a"}, [][]string{nil, nil})
	if err == nil || !strings.Contains(err.Error(), "2 dependency lists for 1 nodes") {
		t.Fatalf("err = %v", err)
	}
}

func TestBuildAdjacency(t *testing.T) {
	// deps may be shorter than names.
	g, err := Build([]string{"c", "b", "a", "d"}, [][]string{{"a", "b", "a"}, {"a"}})
	if err != nil {
		t.Fatal(err)
	}
	if g.Len() != 4 {
		t.Fatalf("Len = %d", g.Len())
	}
	for id, name := range []string{"c", "b", "a", "d"} {
		if g.Name(id) != name {
			t.Errorf("Name(%d) = %q, want %q", id, g.Name(id), name)
		}
		if got, ok := g.ID(name); !ok || got != id {
			t.Errorf("ID(%q) = %d, %v", name, got, ok)
		}
	}
	if _, ok := g.ID("zz"); ok {
		t.Error("ID of unknown name reported found")
	}
	wantDeps := [][]int{{2, 1}, {2}, {}, {}} // repeated "a" counted once
	wantRdeps := [][]int{{}, {0}, {0, 1}, {}}
	for id := range 4 {
		if got := g.Deps(id); !slices.Equal(got, wantDeps[id]) {
			t.Errorf("Deps(%d) = %v, want %v", id, got, wantDeps[id])
		}
		if got := g.Dependents(id); !slices.Equal(got, wantRdeps[id]) {
			t.Errorf("Dependents(%d) = %v, want %v", id, got, wantRdeps[id])
		}
	}
	// Appending to a returned slice must not clobber the graph.
	_ = append(g.Deps(1), 99)
	_ = append(g.Dependents(1), 99)
	if !slices.Equal(g.Deps(2), []int{}) || !slices.Equal(g.Dependents(2), []int{0, 1}) {
		t.Errorf("append to a returned slice changed the graph: %v %v", g.Deps(2), g.Dependents(2))
	}
}

func TestBuildKeepsNoReference(t *testing.T) {
	names, deps := spec("a", "b:a")
	g, err := Build(names, deps)
	if err != nil {
		t.Fatal(err)
	}
	names[0] = "changed"
	if g.Name(0) != "a" {
		t.Errorf("Name(0) = %q after caller changed its slice", g.Name(0))
	}
}

func TestSelect(t *testing.T) {
	//   a   b
	//   |\ /
	//   c d     e
	//    \|     |
	//     f     g
	g := mustBuild(t, "f", "c:f", "a:c,d", "d:f", "b:d", "e:g", "g", "h:a")
	tests := []struct {
		targets   []string
		wantNames []string
		wantOld   []int
		wantDeps  map[string][]string
	}{
		{[]string{"a"}, []string{"f", "c", "a", "d"}, []int{0, 1, 2, 3}, map[string][]string{"a": {"c", "d"}, "c": {"f"}, "d": {"f"}}},
		{[]string{"b"}, []string{"f", "d", "b"}, []int{0, 3, 4}, map[string][]string{"b": {"d"}, "d": {"f"}}},
		{[]string{"e", "b", "e"}, []string{"f", "d", "b", "e", "g"}, []int{0, 3, 4, 5, 6}, map[string][]string{"b": {"d"}, "d": {"f"}, "e": {"g"}}},
		{[]string{"f"}, []string{"f"}, []int{0}, nil},
		{nil, nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.targets, ","), func(t *testing.T) {
			s, old, err := g.Select(tt.targets)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for id := range s.Len() {
				names = append(names, s.Name(id))
				if id2, ok := s.ID(s.Name(id)); !ok || id2 != id {
					t.Errorf("ID(%q) = %d, %v", s.Name(id), id2, ok)
				}
				var deps []string
				for _, d := range s.Deps(id) {
					deps = append(deps, s.Name(d))
					if !slices.Contains(s.Dependents(d), id) {
						t.Errorf("%s depends on %s but is not among its dependents", s.Name(id), s.Name(d))
					}
				}
				if !slices.Equal(deps, tt.wantDeps[s.Name(id)]) {
					t.Errorf("deps of %s = %v, want %v", s.Name(id), deps, tt.wantDeps[s.Name(id)])
				}
				for _, r := range s.Dependents(id) {
					if !slices.Contains(s.Deps(r), id) {
						t.Errorf("%s listed as dependent of %s without the edge", s.Name(r), s.Name(id))
					}
				}
			}
			if !slices.Equal(names, tt.wantNames) {
				t.Errorf("names = %v, want %v", names, tt.wantNames)
			}
			if !slices.Equal(old, tt.wantOld) {
				t.Errorf("old ids = %v, want %v", old, tt.wantOld)
			}
			for id, o := range old {
				if s.Name(id) != g.Name(o) {
					t.Errorf("old[%d] = %d names %q, want %q", id, o, g.Name(o), s.Name(id))
				}
			}
			assertTopological(t, s, s.Order(nil))
		})
	}
}

func TestSelectUnknown(t *testing.T) {
	g := mustBuild(t, "a", "b:a")
	_, _, err := g.Select([]string{"x", "a", "y", "x"})
	var ute *UnknownTargetError
	if !errors.As(err, &ute) {
		t.Fatalf("err = %v, want *UnknownTargetError", err)
	}
	if !slices.Equal(ute.Targets, []string{"x", "y"}) {
		t.Errorf("Targets = %q", ute.Targets)
	}
	if want := `dag: select: unknown targets "x", "y"`; err.Error() != want {
		t.Errorf("message = %q, want %q", err.Error(), want)
	}
	_, _, err = g.Select([]string{"q"})
	if want := `dag: select: unknown target "q"`; err == nil || err.Error() != want {
		t.Errorf("message = %v, want %q", err, want)
	}
}

// assertTopological checks that order is a permutation of g's nodes with every
// node after its dependencies.
func assertTopological(t *testing.T, g *Graph, order []int) {
	t.Helper()
	if len(order) != g.Len() {
		t.Fatalf("order has %d nodes, graph %d", len(order), g.Len())
	}
	pos := make([]int, g.Len())
	for i := range pos {
		pos[i] = -1
	}
	for i, id := range order {
		if pos[id] >= 0 {
			t.Fatalf("node %d twice in order", id)
		}
		pos[id] = i
	}
	for id := range g.Len() {
		for _, d := range g.Deps(id) {
			if pos[d] > pos[id] {
				t.Errorf("%s ordered before its dependency %s", g.Name(id), g.Name(d))
			}
		}
	}
}

func TestOrder(t *testing.T) {
	// Two independent chains: s1 <- s2 (short) and l1 <- l2 <- l3 (long).
	g := mustBuild(t, "s1", "s2:s1", "l1", "l2:l1", "l3:l2")
	names := func(order []int) []string {
		var s []string
		for _, id := range order {
			s = append(s, g.Name(id))
		}
		return s
	}
	tests := []struct {
		name    string
		weights []int64
		want    []string
	}{
		// Priorities: s1 2, s2 1, l1 3, l2 2, l3 1; ties by lower id.
		{"unit weights", nil, []string{"l1", "s1", "l2", "s2", "l3"}},
		// s1 10+10 beats l1 3: the short but heavy chain is critical.
		{"heavy short chain", []int64{10, 10, 1, 1, 1}, []string{"s1", "s2", "l1", "l2", "l3"}},
		// Missing weights count 1, negatives 0: s 0+0, l 1+1+1.
		{"partial and negative", []int64{-5, -5}, []string{"l1", "l2", "l3", "s1", "s2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := g.Order(tt.weights)
			assertTopological(t, g, got)
			if !slices.Equal(names(got), tt.want) {
				t.Errorf("Order = %v, want %v", names(got), tt.want)
			}
		})
	}
}

func TestOrderSaturates(t *testing.T) {
	g := mustBuild(t, "a", "b:a", "c")
	const big = 1<<63 - 1
	got := g.Order([]int64{big, big, 1})
	if !slices.Equal(got, []int{0, 1, 2}) {
		t.Errorf("Order = %v, want [0 1 2] (a's path saturates instead of overflowing)", got)
	}
}
