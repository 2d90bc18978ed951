package build

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/rustypipe/rustypipe/pipeline"
)

// referenceTaskEnv is taskEnv's contract written the plain way: layers of
// NAME=value lists applied in order of precedence to one map, then sorted.
func referenceTaskEnv(b *builder, t *pipeline.Task, refEnv []string) []string {
	pairs := func(m map[string]string) (l []string) {
		for k, v := range m {
			l = append(l, k+"="+v)
		}
		return l
	}
	inherited := slices.DeleteFunc(slices.Clone(b.opts.Env), func(kv string) bool {
		return strings.HasPrefix(kv, "RUSTYPIPE_REF_")
	})
	own := []string{"RUSTYPIPE_TASK=" + t.Name, "RUSTYPIPE_RUN_ID=" + b.opts.RunID, "RUSTYPIPE_WORKSPACE=" + b.plan.Workspace}
	m := map[string]string{}
	for _, layer := range [][]string{inherited, pairs(b.plan.Pipeline.Env), pairs(t.Env), own, refEnv} {
		for _, kv := range layer {
			if k, v, ok := strings.Cut(kv, "="); ok {
				m[k] = v
			}
		}
	}
	env := pairs(m)
	sort.Strings(env)
	return env
}

// TestTaskEnv checks the shared-base taskEnv against the plain reference
// on random environments whose names collide across every layer.
func TestTaskEnv(t *testing.T) {
	names := []string{"A", "AB", "A_B", "B", "PATH", "RUSTYPIPE_TASK", "RUSTYPIPE_RUN_ID",
		"RUSTYPIPE_WORKSPACE", "RUSTYPIPE_REF_0", "RUSTYPIPE_REF_1", "Z", "a"}
	r := rand.New(rand.NewPCG(1, 2))
	some := func(tag string) map[string]string {
		m := map[string]string{}
		for _, n := range names {
			if r.IntN(3) == 0 {
				m[n] = fmt.Sprintf("%s%d=x", tag, r.IntN(3)) // values may hold '='
			}
		}
		return m
	}
	list := func(m map[string]string) []string {
		var l []string
		for k, v := range m {
			l = append(l, k+"="+v)
		}
		r.Shuffle(len(l), func(i, j int) { l[i], l[j] = l[j], l[i] })
		return l
	}
	for i := range 300 {
		inherited := list(some("os"))
		if i%5 == 0 { // a name twice: the later one counts
			inherited = append(inherited, "A=first", "A=second")
		}
		b := &builder{
			plan: &Plan{Workspace: "/ws", Pipeline: &pipeline.Pipeline{Env: some("pl")}},
			opts: Options{Env: inherited, RunID: "run1"},
		}
		for j := range 3 {
			task := &pipeline.Task{Name: fmt.Sprintf("t%d", j), Env: some("task")}
			refEnv := list(some("ref"))
			got := b.taskEnv(task, refEnv)
			want := referenceTaskEnv(b, task, refEnv)
			if !slices.Equal(got, want) {
				t.Fatalf("case %d/%d:\n got %q\nwant %q", i, j, got, want)
			}
		}
	}
}
