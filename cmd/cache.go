package cmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rustypipe/rustypipe/build"
	"github.com/rustypipe/rustypipe/cas"
	"github.com/rustypipe/rustypipe/hashing"
	"github.com/rustypipe/rustypipe/pipeline"
)

func init() {
	extraCommandFns = append(extraCommandFns, (*app).explainCmd, (*app).cacheCmd)
}

// cacheFlags adds the cache flags of build.
func (a *app) cacheFlags(c *cobra.Command) {
	f := c.Flags()
	f.String("cache", "readwrite", "cache mode: readwrite, read (never write: for untrusted builds), write (never restore) or off")
	f.Bool("no-cache", false, "same as --cache=off")
	f.StringSlice("force", nil, "run these tasks even when the cache has them")
}

// cacheDir resolves --cache-dir / RUSTYPIPE_CACHE_DIR / the config file, and
// defaults to the user cache directory.
func (a *app) cacheDir() (string, error) {
	if d := a.str("cache-dir"); d != "" {
		return filepath.Abs(d)
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", usagef("no cache directory: set --cache-dir or RUSTYPIPE_CACHE_DIR (%v)", err)
	}
	return filepath.Join(base, "rustypipe"), nil
}

func (a *app) cacheOptions(c *cobra.Command) (build.CacheOptions, error) {
	mode := "readwrite"
	if c.Flags().Lookup("cache") != nil {
		mode = a.v.GetString("cache")
		if a.v.GetBool("no-cache") {
			mode = "off"
		}
	}
	switch mode {
	case "readwrite", "read", "write", "off":
	default:
		return build.CacheOptions{}, usagef("--cache: unknown mode %q (want readwrite, read, write or off)", mode)
	}
	dir, err := a.cacheDir()
	if err != nil {
		return build.CacheOptions{}, err
	}
	var force []string
	if c.Flags().Lookup("force") != nil {
		force, _ = c.Flags().GetStringSlice("force")
	}
	o := build.CacheOptions{Mode: mode, Dir: dir, Force: force}
	if debugEnabled(a.env, "keyhash") {
		o.DebugKeys = a.stderr
	}
	return o, nil
}

// debugEnabled reports whether RUSTYPIPE_DEBUG lists what (comma-separated).
func debugEnabled(env []string, what string) bool {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "RUSTYPIPE_DEBUG="); ok {
			for _, w := range strings.Split(v, ",") {
				if strings.TrimSpace(w) == what {
					return true
				}
			}
		}
	}
	return false
}

func (a *app) explainCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "explain TASK",
		Short: "Say whether TASK would hit the cache and, if not, what changed since its last cached run",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			p, _, err := a.loadPipeline(c, nil)
			if err != nil {
				return err
			}
			plan, err := build.NewPlan(p, args)
			if err != nil {
				return err
			}
			co, err := a.cacheOptions(c)
			if err != nil {
				return err
			}
			backends, err := a.backends(plan)
			if err != nil {
				return err
			}
			defer closeAll(backends)
			ex, err := build.Explain(c.Context(), plan, build.Options{Cache: co, Backends: backends, Env: a.env}, args[0])
			if err != nil {
				return err
			}
			if asJSON, _ := c.Flags().GetBool("json"); asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(ex)
			}
			printExplanation(a, ex)
			return nil
		},
	}
	c.Flags().Bool("json", false, "print the explanation as JSON")
	return c
}

func printExplanation(a *app, ex *build.Explanation) {
	w := a.stdout
	for _, u := range ex.Upstream {
		if u.Status != "up-to-date" && u.Status != "hit" {
			fmt.Fprintf(w, "upstream %s: %s %s\n", u.Task, u.Status, u.Reason)
		}
	}
	switch ex.Status {
	case "up-to-date":
		fmt.Fprintf(w, "%s: up to date (key %s): the workspace holds its outputs\n", ex.Task, short(ex.Key))
	case "hit":
		fmt.Fprintf(w, "%s: would hit (key %s): outputs would be restored from the cache\n", ex.Task, short(ex.Key))
	case "unknown":
		fmt.Fprintf(w, "%s: cannot tell yet: %s\n", ex.Task, ex.Reason)
	default:
		fmt.Fprintf(w, "%s: would miss (key %s)\n", ex.Task, short(ex.Key))
		if ex.Previous != "" {
			fmt.Fprintf(w, "changed since the cached run of %s (key %s):\n", ex.PrevWhen.Local().Format(time.DateTime), short(ex.Previous))
			if len(ex.Changes) == 0 {
				fmt.Fprintln(w, "  nothing in the key changed: the result was removed from the cache (gc, clear or corruption)")
			}
			for _, ch := range ex.Changes {
				fmt.Fprintf(w, "  %s\n", ch)
			}
		}
	}
	for _, n := range ex.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func short(k string) string {
	if len(k) > 12 {
		return k[:12]
	}
	return k
}

func (a *app) cacheCmd() *cobra.Command {
	c := &cobra.Command{Use: "cache", Short: "Inspect and maintain the cache directory"}
	open := func(c *cobra.Command, readOnly bool) (*cas.Store, error) {
		dir, err := a.cacheDir()
		if err != nil {
			return nil, err
		}
		return cas.Open(c.Context(), cas.Options{Dir: dir, ReadOnly: readOnly, LockWait: 10 * time.Minute,
			OnWait: func(pid int) { fmt.Fprintf(a.stderr, "rustypipe: waiting for cache lock (pid %d)\n", pid) }})
	}
	stats := &cobra.Command{
		Use:   "stats",
		Short: "Entries, bytes on disk, and the hit rate of recent runs",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var s cas.Stats
			st, err := open(c, true)
			switch {
			case errors.Is(err, cas.ErrNotFound):
			case err != nil:
				return err
			default:
				s, err = st.Stats(c.Context())
				st.Close()
				if err != nil {
					return err
				}
			}
			dir, _ := a.cacheDir()
			fmt.Fprintf(a.stdout, "cache:    %s\nentries:  %d\nblobs:    %d (%s)\non disk:  %s\n", dir, s.Actions, s.InlineBlobs+s.FileBlobs, humanBytes(s.InlineBytes+s.FileBytes), humanBytes(s.DiskBytes))
			runs, _ := build.ListRuns(a.workspace())
			hits, total, n := 0, 0, 0
			for _, r := range runs {
				if n == 10 {
					break
				}
				n++
				for _, t := range r.Tasks {
					if t.Cache == "" || t.Cache == "off" {
						continue
					}
					total++
					if t.Cache == "hit" || t.Cache == "up-to-date" {
						hits++
					}
				}
			}
			if total > 0 {
				fmt.Fprintf(a.stdout, "hit rate: %.0f%% (%d of %d tasks in the last %d runs here)\n", 100*float64(hits)/float64(total), hits, total, n)
			}
			return nil
		},
	}
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List cached task results, newest first",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			st, err := open(c, true)
			if errors.Is(err, cas.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			defer st.Close()
			var all []*cas.ActionResult
			if err := st.List(c.Context(), func(a *cas.ActionResult) error { all = append(all, a); return nil }); err != nil {
				return err
			}
			sort.Slice(all, func(i, j int) bool { return all[i].CreatedAt.After(all[j].CreatedAt) })
			for _, ar := range all {
				size := ar.Stdout.Size + ar.Stderr.Size
				for _, f := range ar.Files {
					size += f.Size
				}
				fmt.Fprintf(a.stdout, "%s  %-24s %9s  %d files  used %s\n", short(hashing.Key(ar.Key).String()), ar.Task, humanBytes(size), len(ar.Files), ar.LastUsed.Local().Format(time.DateTime))
			}
			return nil
		},
	}
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Re-hash every blob; report and drop bad ones and the entries that name them",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			st, err := open(c, false)
			if err != nil {
				return err
			}
			defer st.Close()
			res, err := st.Verify(c.Context(), func(p cas.Problem) { fmt.Fprintf(a.stdout, "bad: %s\n", p) })
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "verified %d entries and %d blobs (%s): %d bad blobs, %d bad entries, %d stray files\n",
				res.Actions, res.Blobs, humanBytes(res.Bytes), res.BadBlobs, res.BadActions, res.StrayFiles)
			if n := res.BadBlobs + res.BadActions + res.StrayFiles; n > 0 {
				return fmt.Errorf("cache verify: %d defects found and removed", n)
			}
			return nil
		},
	}
	clear := &cobra.Command{
		Use:   "clear",
		Short: "Delete every cached result",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			dir, err := a.cacheDir()
			if err != nil {
				return err
			}
			if err := cas.Clear(dir); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "cleared %s\n", dir)
			return nil
		},
	}
	gc := &cobra.Command{
		Use:   "gc",
		Short: "Trim the cache by age and size; entries used by the most recent runs here survive",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var o cas.GCOptions
			if s, _ := c.Flags().GetString("max-age"); s != "" {
				d, err := pipeline.ParseDuration(s)
				if err != nil {
					return usagef("--max-age: %v", err)
				}
				o.MaxAge = max(d, time.Nanosecond) // an explicit 0 means "everything is too old"

			}
			if s, _ := c.Flags().GetString("max-size"); s != "" {
				n, err := pipeline.ParseSize(s)
				if err != nil {
					return usagef("--max-size: %v", err)
				}
				o.MaxSize = n
			}
			keepRuns, _ := c.Flags().GetInt("keep-runs")
			keep := recentKeys(a.workspace(), keepRuns)
			o.Keep = func(k [32]byte) bool { return keep[hashing.Key(k).String()] }
			st, err := open(c, false)
			if err != nil {
				return err
			}
			defer st.Close()
			res, err := st.GC(c.Context(), o)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "removed %d of %d entries (%d by age, %d by size, %d corrupt) and %d blobs; %s on disk now (was %s)\n",
				res.RemovedByAge+res.RemovedBySize+res.Corrupt, res.Actions, res.RemovedByAge, res.RemovedBySize, res.Corrupt,
				res.BlobsRemoved, humanBytes(res.BytesAfter), humanBytes(res.BytesBefore))
			return nil
		},
	}
	gc.Flags().String("max-age", "", "remove entries not used for this long (e.g. 7d, 12h)")
	gc.Flags().String("max-size", "", "remove least recently used entries until the directory is below this size (e.g. 500MB, 2GiB)")
	gc.Flags().Int("keep-runs", 3, "entries used by this many most recent runs of the pipeline here survive")
	c.AddCommand(stats, ls, verify, clear, gc)
	return c
}

// recentKeys are the keys used by the newest n runs recorded in workspace.
func recentKeys(workspace string, n int) map[string]bool {
	keep := map[string]bool{}
	runs, _ := build.ListRuns(workspace)
	for i, r := range runs {
		if i == n {
			break
		}
		for _, t := range r.Tasks {
			if t.Key != "" {
				keep[t.Key] = true
			}
		}
	}
	return keep
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
