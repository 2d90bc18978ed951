package build

import (
	"context"
	"fmt"
	"strings"
)

// dryRun prints the plan in dispatch order without running anything.
func (b *builder) dryRun(ctx context.Context) (*Summary, error) {
	pl := b.plan
	order := pl.Graph.Order(weights(pl, b.opts.state))
	w := b.opts.Stdout
	fmt.Fprintf(w, "plan for %s: %d tasks, %d at a time\n", pl.Pipeline.File, len(order), b.opts.Jobs)
	for i, id := range order {
		t := pl.Tasks[id]
		line := fmt.Sprintf("%3d. %s", i+1, t.Name)
		if bn := backendName(t); bn != "local" {
			line += " [" + bn + "]"
		}
		if len(t.DependsOn) > 0 {
			line += " (after " + strings.Join(t.DependsOn, ", ") + ")"
		}
		if st := b.cache.predict(ctx, b, id); st != "" {
			line += ": " + st
		}
		fmt.Fprintln(w, line)
	}
	return &Summary{RunID: "", Status: "dry-run", Tasks: b.records}, nil
}
