package cmd

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/rustypipe/rustypipe/build"
)

func (a *app) validateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate",
		Short: "Check the pipeline file and print nothing else; exit 2 when it is invalid",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			p, _, err := a.loadPipeline(c, args)
			if err != nil {
				return err
			}
			if _, err := build.NewPlan(p, nil); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s: ok (%d tasks)\n", p.File, len(p.Tasks))
			return nil
		},
	}
}

func (a *app) graphCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "graph [TASK...]",
		Short: "Print the task graph as dot, mermaid or json",
		RunE: func(c *cobra.Command, args []string) error {
			p, targets, err := a.loadPipeline(c, args)
			if err != nil {
				return err
			}
			plan, err := build.NewPlan(p, targets)
			if err != nil {
				return err
			}
			format, _ := c.Flags().GetString("format")
			return writeGraph(a.stdout, plan, format)
		},
	}
	c.Flags().String("format", "dot", "dot, mermaid or json")
	return c
}

func writeGraph(w io.Writer, plan *build.Plan, format string) error {
	g := plan.Graph
	switch format {
	case "dot":
		fmt.Fprintf(w, "digraph %q {\n  rankdir=LR;\n", plan.Pipeline.Name)
		for id := 0; id < g.Len(); id++ {
			fmt.Fprintf(w, "  %q;\n", g.Name(id))
			for _, d := range g.Deps(id) {
				fmt.Fprintf(w, "  %q -> %q;\n", g.Name(d), g.Name(id))
			}
		}
		fmt.Fprintln(w, "}")
	case "mermaid":
		fmt.Fprintln(w, "graph LR")
		for id := 0; id < g.Len(); id++ {
			fmt.Fprintf(w, "  n%d[%q]\n", id, g.Name(id))
		}
		for id := 0; id < g.Len(); id++ {
			for _, d := range g.Deps(id) {
				fmt.Fprintf(w, "  n%d --> n%d\n", d, id)
			}
		}
	case "json":
		type node struct {
			Name        string   `json:"name"`
			DependsOn   []string `json:"depends_on"`
			Backend     string   `json:"backend,omitempty"`
			Description string   `json:"description,omitempty"`
		}
		out := struct {
			Name  string `json:"name"`
			Tasks []node `json:"tasks"`
		}{Name: plan.Pipeline.Name}
		for id := 0; id < g.Len(); id++ {
			n := node{Name: g.Name(id), DependsOn: []string{}, Backend: plan.Tasks[id].Backend, Description: plan.Tasks[id].Description}
			for _, d := range g.Deps(id) {
				n.DependsOn = append(n.DependsOn, g.Name(d))
			}
			out.Tasks = append(out.Tasks, n)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	default:
		return usagef("--format: unknown graph format %q (want dot, mermaid or json)", format)
	}
	return nil
}

// workspace is the directory of the pipeline file, where .rustypipe/ lives.
func (a *app) workspace() string {
	return filepath.Dir(a.v.GetString("file"))
}

func (a *app) runsCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "runs",
		Short: "List recent runs recorded under .rustypipe/runs",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			runs, err := build.ListRuns(a.workspace())
			if err != nil {
				return err
			}
			limit, _ := c.Flags().GetInt("limit")
			if len(runs) == 0 {
				fmt.Fprintln(a.stdout, "no runs recorded")
				return nil
			}
			for i, r := range runs {
				if i == limit {
					break
				}
				d := (time.Duration(r.DurationMS) * time.Millisecond).Round(time.Millisecond)
				counts := ""
				if len(r.Counts) > 0 {
					counts = build.CountsText(r.Counts)
				}
				fmt.Fprintf(a.stdout, "%s  %-10s %8s  %s\n", r.RunID, r.Status, d, counts)
			}
			return nil
		},
	}
	c.Flags().Int("limit", 20, "how many runs to list")
	return c
}

func (a *app) logsCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "logs TASK",
		Short: "Print a task's log (all attempts) from the newest run, or from --run ID",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			run, _ := c.Flags().GetString("run")
			text, err := build.LogText(a.workspace(), run, args[0])
			if err != nil {
				return err
			}
			_, err = io.WriteString(a.stdout, text)
			return err
		},
	}
	c.Flags().String("run", "", "run id (default: the newest run with a log for TASK)")
	return c
}
