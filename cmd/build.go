package cmd

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/rustypipe/rustypipe/build"
	"github.com/rustypipe/rustypipe/exec"
	"github.com/rustypipe/rustypipe/exec/external"
	"github.com/rustypipe/rustypipe/exec/local"
	"github.com/rustypipe/rustypipe/pipeline"
	"github.com/rustypipe/rustypipe/remote/docker/dockerconfig"
	"github.com/rustypipe/rustypipe/remote/ssh"
)

func (a *app) buildCmd() *cobra.Command {
	c := &cobra.Command{
		Use:     "build [TASK...]",
		Aliases: []string{"run"},
		Short:   "Run the pipeline (or the given tasks and everything they depend on)",
		Long: `Run the pipeline's tasks in dependency order, up to -j at a time.

With TASK arguments only those tasks and their upstream tasks run. The
original form "rustypipe run PIPELINE.yaml" also works.`,
		RunE: a.runBuild,
	}
	f := c.Flags()
	f.IntP("jobs", "j", 0, "task commands to run at once (default: the pipeline's concurrency, else the number of CPUs)")
	f.Bool("fail-fast", false, "on the first failure start nothing new and stop running tasks (like stop_on_fail)")
	f.String("grace", "10s", "how long cancelled tasks get between SIGTERM and SIGKILL")
	f.Bool("dry-run", false, "print the plan in dispatch order and run nothing")
	a.cacheFlags(c)
	return c
}

// loadPipeline reads and validates the pipeline file named by -f.
func (a *app) loadPipeline(c *cobra.Command, args []string) (*pipeline.Pipeline, []string, error) {
	return a.loadPipelineSource(c, args, nil)
}

// loadPipelineSource is loadPipeline of the file's content when src is not
// nil (already read for the no-op record), else of the file.
func (a *app) loadPipelineSource(c *cobra.Command, args []string, src []byte) (*pipeline.Pipeline, []string, error) {
	file, args := a.pipelineFile(c, args)
	var p *pipeline.Pipeline
	var err error
	switch {
	case c.Name() == "validate":
		p, err = pipeline.Load(file)
	case src != nil:
		p, err = pipeline.LoadCachedSource(file, src, pipelineMemoPath(file), binaryStamp())
	default:
		p, err = pipeline.LoadCached(file, pipelineMemoPath(file), binaryStamp())
	}
	if err != nil {
		return nil, nil, err
	}
	return p, args, nil
}

// pipelineFile returns the pipeline file named by -f and the remaining
// arguments. The original Rustypipe CLI took the pipeline file as an
// argument, "rustypipe run pipeline.yaml": it is accepted when -f was not
// given.
func (a *app) pipelineFile(c *cobra.Command, args []string) (string, []string) {
	file := a.v.GetString("file")
	if !c.Flags().Changed("file") && len(args) > 0 && isYAMLFile(args[0]) {
		file, args = args[0], args[1:]
	}
	return file, args
}

// pipelineMemoPath is where the parsed form of a pipeline file is kept, in
// the .rustypipe directory beside it.
func pipelineMemoPath(file string) string {
	abs, err := filepath.Abs(file)
	if err != nil {
		abs = file
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(build.PipelinesDir(filepath.Dir(abs)), fmt.Sprintf("%s-%x.gob", filepath.Base(abs), sum[:6]))
}

// binaryStamp identifies this rustypipe executable (path, size, mtime), so
// that a parsed pipeline or a no-op record written by another build of
// rustypipe is not trusted. It is taken once per process.
var binaryStamp = sync.OnceValue(func() string {
	exe, err := os.Executable()
	if err != nil {
		return versionString()
	}
	fi, err := os.Stat(exe)
	if err != nil {
		return versionString()
	}
	return fmt.Sprintf("%s %s %d %d", versionString(), exe, fi.Size(), fi.ModTime().UnixNano())
})

func isYAMLFile(s string) bool {
	ext := strings.ToLower(filepath.Ext(s))
	if ext != ".yaml" && ext != ".yml" {
		return false
	}
	st, err := os.Stat(s)
	return err == nil && !st.IsDir()
}

func (a *app) runBuild(c *cobra.Command, args []string) error {
	// Every flag is checked before the no-op record may end the build.
	cache, err := a.cacheOptions(c)
	if err != nil {
		return err
	}
	grace, err := pipeline.ParseDuration(a.str("grace"))
	if err != nil {
		return usagef("--grace: %v", err)
	}
	jobs := a.v.GetInt("jobs")
	if jobs < 0 {
		return usagef("--jobs: must be at least 1, got %d", jobs)
	}
	done, partial, state, err := a.noopOrPreload(c, args, cache)
	if done || err != nil {
		return err
	}
	p, targets, err := a.loadPipelineSource(c, args, partial.Source())
	if err != nil {
		return err
	}
	plan, err := build.NewPlan(p, targets)
	if err != nil {
		return err
	}
	backends, err := a.backends(plan)
	if err != nil {
		return err
	}
	defer closeAll(backends)
	reporter, stdout, err := a.reporter(len(plan.Tasks))
	if err != nil {
		return err
	}
	_, err = build.Run(c.Context(), plan, build.Options{
		Targets:  targets,
		Jobs:     jobs,
		FailFast: a.v.GetBool("fail-fast"),
		Grace:    grace,
		DryRun:   a.v.GetBool("dry-run"),
		Backends: backends,
		Cache:    cache,
		Reporter: reporter,
		Stdout:   stdout,
		Kill:     killOf(c.Context()),
		Env:      a.env,
		Now:      time.Now,
		// The no-op record is written only where tryNoop may use it.
		NoopStamp: noopStamp(cache, a.v.GetBool("dry-run")),
		Noop:      partial,
		Debug:     a.debugf("noop"),
		State:     state,
	})
	return err
}

// noopOrPreload tries the no-op record (tryNoop) and, when it does not end
// the build, starts loading the workspace state, which goes on while the
// pipeline loads.
func (a *app) noopOrPreload(c *cobra.Command, args []string, cache build.CacheOptions) (done bool, partial *build.NoopPartial, state *build.StateLoad, err error) {
	file, targets := a.pipelineFile(c, args)
	abs, err := filepath.Abs(file)
	if err != nil {
		return false, nil, nil, nil // loading the pipeline reports it
	}
	workspace := filepath.Dir(abs)
	done, partial, err = a.tryNoop(file, workspace, targets, cache)
	if done || err != nil {
		return done, nil, nil, err
	}
	return false, partial, build.PreloadState(workspace), nil
}

// tryNoop finishes a build in which nothing changed without loading the
// pipeline (build.TryNoop). It reports done when it did; otherwise partial
// is what it learnt for the build to use.
func (a *app) tryNoop(file, workspace string, targets []string, cache build.CacheOptions) (done bool, partial *build.NoopPartial, err error) {
	stamp := noopStamp(cache, a.v.GetBool("dry-run"))
	if stamp == "" {
		return false, nil, nil
	}
	_, ok, partial, err := build.TryNoop(build.NoopOptions{
		File: file, Workspace: workspace, Targets: targets, Stamp: stamp, Env: a.env, Now: time.Now,
		Reporter: func(tasks int) (build.Reporter, error) {
			rep, _, err := a.reporter(tasks)
			return rep, err
		},
		Debug: a.debugf("noop"),
	})
	return ok, partial, err
}

// debugf returns a printer for RUSTYPIPE_DEBUG=what, or nil when it is off.
func (a *app) debugf(what string) func(string) {
	if !debugEnabled(a.env, what) {
		return nil
	}
	return func(msg string) { fmt.Fprintf(a.stderr, "rustypipe: debug: %s\n", msg) }
}

// noopStamp is the no-op record's stamp, or "" when this build must not use
// or write the record: a dry run, forced tasks, key debugging, or a cache
// mode that does not read.
func noopStamp(cache build.CacheOptions, dryRun bool) string {
	if dryRun || len(cache.Force) > 0 || cache.DebugKeys != nil || (cache.Mode != "readwrite" && cache.Mode != "read") {
		return ""
	}
	return binaryStamp()
}

func closeAll(backends map[string]exec.Backend) {
	seen := map[exec.Backend]bool{}
	for _, b := range backends {
		if !seen[b] {
			seen[b] = true
			b.Close()
		}
	}
}

// backends chooses an implementation for every backend the plan uses. Only
// cmd chooses backends.
func (a *app) backends(plan *build.Plan) (map[string]exec.Backend, error) {
	m := map[string]exec.Backend{"local": local.New()}
	for _, t := range plan.Tasks {
		name := t.Backend
		if name == "" || m[name] != nil {
			continue
		}
		cfg := plan.Pipeline.Backends[name]
		if cfg == nil {
			return nil, usagef("task %q: unknown backend %q", t.Name, name)
		}
		fail := func(err error) error {
			return usagef("%s:%d:%d: backend %q: %v", cfg.Pos.File, cfg.Pos.Line, cfg.Pos.Col, name, err)
		}
		switch cfg.Type {
		case "local":
			m[name] = m["local"]
		case "docker":
			// Served by the rustypipe-docker helper, so that rustypipe does
			// not link the Engine API client. The options are checked here,
			// where an error can name the position in the file, and sent in
			// their parsed form, which the helper decodes to the same Config.
			if _, ok := cfg.Options["command"]; ok {
				return nil, fail(fmt.Errorf("key \"command\": not used by type docker (it runs %s)", dockerHelper))
			}
			dc, err := dockerconfig.Parse(cfg.Options)
			if err != nil {
				return nil, fail(err)
			}
			if err := dc.CheckMounts(dockerconfig.EngineSockets(os.Getenv("DOCKER_HOST"))); err != nil {
				return nil, fail(err)
			}
			m[name] = external.New(external.Options{
				Name: name, Command: []string{dockerHelper}, Config: dc.Options(), Log: a.logf,
				TempDir: filepath.Join(plan.Workspace, ".rustypipe", "tmp"),
			})
		case "ssh":
			sc, err := ssh.ParseConfig(cfg.Options)
			if err != nil {
				return nil, fail(err)
			}
			b, err := ssh.New(sc, a.logf)
			if err != nil {
				return nil, fail(err)
			}
			m[name] = b
		case "external", "kubernetes":
			eo, err := externalOptions(name, cfg, plan.Workspace)
			if err != nil {
				return nil, fail(err)
			}
			eo.Log = a.logf
			m[name] = external.New(eo)
		default:
			return nil, usagef("%s:%d:%d: backend %q: type %q is not supported by this build of rustypipe yet",
				cfg.Pos.File, cfg.Pos.Line, cfg.Pos.Col, name, cfg.Type)
		}
	}
	return m, nil
}

// reporter picks the output format: JSON events, a live terminal display, or
// plain lines (when stdout is not a terminal, or CI / NO_COLOR is set).
func (a *app) reporter(tasks int) (build.Reporter, *os.File, error) {
	format := a.v.GetString("output")
	switch format {
	case "json":
		return build.NewJSON(a.stdout, a.stderr), os.Stderr, nil
	case "auto", "plain", "tty":
	default:
		return nil, nil, usagef("--output: unknown format %q (want auto, plain, tty or json)", format)
	}
	live := format == "tty"
	if format == "auto" {
		live = term.IsTerminal(int(os.Stdout.Fd())) && os.Getenv("CI") == "" && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
	}
	return build.NewConsole(build.ConsoleOptions{Out: a.stdout, Prefix: tasks > 1, Live: live}), os.Stdout, nil
}

// logf prints a backend's notice (an unreachable host, a reaped container).
func (a *app) logf(msg string) { fmt.Fprintf(a.stderr, "rustypipe: %s\n", msg) }

// kubeHelper is the executable that serves `type: kubernetes` backends over
// the external-backend protocol. It links client-go, which rustypipe itself
// does not, so that builds that never use Kubernetes do not pay for it.
const kubeHelper = "rustypipe-kube"

// dockerHelper is the executable that serves `type: docker` backends over
// the external-backend protocol. It links the Docker Engine API client,
// which rustypipe itself does not, so that builds that never use Docker do
// not pay for it.
const dockerHelper = "rustypipe-docker"

// externalOptions turns an `external` or `kubernetes` backend's YAML options
// into the protocol client's options. The helper validates the rest of the
// options itself, in the handshake.
func externalOptions(name string, cfg *pipeline.BackendConfig, workspace string) (external.Options, error) {
	o := external.Options{Name: name, Config: map[string]any{}, TempDir: filepath.Join(workspace, ".rustypipe", "tmp")}
	for k, v := range cfg.Options {
		if k != "type" && k != "command" {
			o.Config[k] = v
		}
	}
	if cfg.Type == "kubernetes" {
		o.Command = []string{kubeHelper}
		if _, ok := cfg.Options["command"]; ok {
			return o, fmt.Errorf("key \"command\": not used by type kubernetes (it runs %s)", kubeHelper)
		}
		return o, nil
	}
	raw, ok := cfg.Options["command"]
	list, isList := raw.([]any)
	if !ok || !isList || len(list) == 0 {
		return o, fmt.Errorf("key \"command\": type external needs a non-empty list, such as [my-backend, --flag]")
	}
	for i, v := range list {
		s, isStr := v.(string)
		if !isStr || s == "" {
			return o, fmt.Errorf("key \"command\": item %d must be a non-empty string", i)
		}
		o.Command = append(o.Command, s)
	}
	return o, nil
}
