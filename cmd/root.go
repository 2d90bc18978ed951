package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/rustypipe/rustypipe/build"
	"github.com/rustypipe/rustypipe/pipeline"
)

// Exit codes, documented in the README.
const (
	ExitOK          = 0   // everything succeeded
	ExitFailed      = 1   // a task failed, or rustypipe hit a runtime error
	ExitUsage       = 2   // invalid pipeline, configuration or command line
	ExitInterrupted = 130 // stopped by SIGINT/SIGTERM (128 + SIGINT)
)

// version is set at link time (-ldflags "-X .../cmd.version=v1.2.3"); when
// empty, the module version from the build info is used.
var version string

// app carries what every command shares: viper (flags > RUSTYPIPE_* env >
// config file > defaults), the streams and the process environment.
type app struct {
	v      *viper.Viper
	stdout io.Writer
	stderr io.Writer
	env    []string
}

// Main runs the CLI with args (without the program name) and returns the
// process exit code.
func Main(args []string) int {
	a := &app{v: viper.New(), stdout: os.Stdout, stderr: os.Stderr, env: os.Environ()}
	if path := os.Getenv("RUSTYPIPE_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			pprof.StartCPUProfile(f)
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}
	ctx, kill, stop := interrupts()
	defer stop()
	ctx = withKill(ctx, kill)
	err := a.root().ExecuteContext(withKill(ctx, kill))
	return a.exitCode(ctx, err)
}

// exitCode is the one place that maps errors to exit codes and prints them
// with a single "rustypipe:" prefix.
func (a *app) exitCode(ctx context.Context, err error) int {
	if err == nil {
		return ExitOK
	}
	code := ExitFailed
	var (
		de  *pipeline.DecodeError
		pe  pipeline.Errors
		ue  *build.UsageError
		fe  *build.FailedError
		use *usageError
	)
	switch {
	case errors.Is(err, build.ErrInterrupted) || ctx.Err() != nil:
		code = ExitInterrupted
	case errors.As(err, &fe):
		code = ExitFailed
	case errors.As(err, &de), errors.As(err, &pe), errors.As(err, &ue), errors.As(err, &use),
		strings.HasPrefix(err.Error(), "unknown command "), strings.Contains(err.Error(), " arg(s), received "):
		code = ExitUsage // cobra's own usage errors carry no type
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		msg = "\n" + msg
	}
	fmt.Fprintf(a.stderr, "rustypipe: %s\n", msg)
	return code
}

// usageError marks a bad flag or argument.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return &usageError{fmt.Errorf(format, args...)} }

func (a *app) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "rustypipe",
		Short: "Run YAML pipelines of shell tasks, never running the same work twice",
		Long: `rustypipe runs a pipeline — a DAG of shell tasks written in YAML — on the
local machine or remote backends, and caches every task by a hash of what it
reads, so that unchanged work is restored instead of run again.`,
		Version:           versionString(),
		SilenceUsage:      true,
		SilenceErrors:     true,
		PersistentPreRunE: func(c *cobra.Command, _ []string) error { return a.loadConfig(c) },
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return &usageError{err} })
	pf := root.PersistentFlags()
	pf.StringP("file", "f", "rustypipe.yaml", "pipeline file")
	pf.String("config", "", "config file (default .rustypipe.yaml in the current directory, if present)")
	pf.String("cache-dir", "", "cache directory (default: the user cache dir + /rustypipe)")
	pf.StringP("output", "o", "auto", "output format: auto, plain, tty or json")

	root.AddCommand(a.buildCmd(), a.validateCmd(), a.graphCmd(), a.runsCmd(), a.logsCmd())
	for _, c := range a.extraCommands() {
		root.AddCommand(c)
	}
	return root
}

// extraCommands are commands added by other files of this package (cache,
// explain), so the root stays the single list of global flags.
var extraCommandFns []func(a *app) *cobra.Command

func (a *app) extraCommands() []*cobra.Command {
	var cs []*cobra.Command
	for _, f := range extraCommandFns {
		cs = append(cs, f(a))
	}
	return cs
}

// loadConfig binds every flag of c to viper and reads the config file, so
// that a value comes from the flag, else RUSTYPIPE_<FLAG> (dashes as
// underscores), else the config file, else the flag's default.
func (a *app) loadConfig(c *cobra.Command) error {
	v := a.v
	v.SetEnvPrefix("RUSTYPIPE")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	var bindErr error
	c.Flags().VisitAll(func(f *pflag.Flag) {
		if err := v.BindPFlag(f.Name, f); err != nil && bindErr == nil {
			bindErr = err
		}
	})
	if bindErr != nil {
		return bindErr
	}
	cfg := v.GetString("config")
	if cfg == "" {
		if _, err := os.Stat(".rustypipe.yaml"); err != nil {
			return nil
		}
		cfg = ".rustypipe.yaml"
	}
	v.SetConfigFile(cfg)
	v.SetConfigType("yaml")
	if err := v.ReadInConfig(); err != nil {
		return usagef("config file %s: %v", cfg, err)
	}
	known := map[string]bool{}
	c.Root().PersistentFlags().VisitAll(func(f *pflag.Flag) { known[f.Name] = true })
	for _, sub := range c.Root().Commands() {
		sub.Flags().VisitAll(func(f *pflag.Flag) { known[f.Name] = true })
	}
	for _, k := range v.AllKeys() {
		top := strings.SplitN(k, ".", 2)[0]
		if !known[top] && !known[strings.ReplaceAll(top, "_", "-")] {
			return usagef("config file %s: unknown setting %q", cfg, k)
		}
	}
	return nil
}

// str reads a setting, accepting the config file's snake_case spelling of a
// dashed flag name too.
func (a *app) str(name string) string {
	if a.v.IsSet(name) || !strings.Contains(name, "-") {
		return a.v.GetString(name)
	}
	if alt := strings.ReplaceAll(name, "-", "_"); a.v.InConfig(alt) {
		return a.v.GetString(alt)
	}
	return a.v.GetString(name)
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "devel"
}

// interrupts turns the first SIGINT/SIGTERM into a cancelled context and the
// second into a closed kill channel (kill running tasks without grace).
func interrupts() (context.Context, <-chan struct{}, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	kill := make(chan struct{})
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		n := 0
		for {
			select {
			case <-done:
				return
			case s := <-ch:
				n++
				if n == 1 {
					cancel(fmt.Errorf("received %v", s))
					fmt.Fprintf(os.Stderr, "\nrustypipe: %v: stopping tasks (again to kill at once)\n", s)
				} else {
					close(kill)
					fmt.Fprintf(os.Stderr, "\nrustypipe: %v: killing tasks\n", s)
					signal.Stop(ch)
					return
				}
			}
		}
	}()
	return ctx, kill, func() { signal.Stop(ch); close(done) }
}

type killKey struct{}

func withKill(ctx context.Context, kill <-chan struct{}) context.Context {
	return context.WithValue(ctx, killKey{}, kill)
}

func killOf(ctx context.Context) <-chan struct{} {
	k, _ := ctx.Value(killKey{}).(<-chan struct{})
	return k
}
