package exec

import (
	"context"
	"errors"
	"io"
	"time"
)

// Backend runs one attempt of one task somewhere: the local machine, a host
// over SSH, a container or a pod.
//
// Run blocks until the task's process has exited and its streams are drained.
// It returns a non-nil *Result whenever the process was started, even when it
// exited non-zero: a non-zero exit is not an error. Run returns an error when
// the process could not be started (wrapping ErrStart) or when ctx was done
// before the process exited; in that case the backend has first stopped the
// work (SIGTERM to the whole process group, then SIGKILL after Spec.Grace, or
// at once when Spec.Kill is closed) and the error wraps context.Cause(ctx).
// Run is safe for concurrent use. Close releases the backend's resources; Run
// must not be called after Close.
type Backend interface {
	Run(ctx context.Context, s *Spec) (*Result, error)
	Close() error
}

// Spec is one attempt of one task, as plain data.
type Spec struct {
	Task  string // task name, for labels and messages
	RunID string // the run this attempt belongs to

	Script string   // the command after interpolation
	Shell  string   // "", "sh", "bash", "pwsh", "powershell" or "cmd"; "" is the platform default
	Env    []string // the task's complete environment as KEY=VALUE; nothing else is inherited

	Workspace string   // absolute path of the project root
	Dir       string   // working directory relative to Workspace, "/"-separated; "" is the root
	Inputs    []string // workspace-relative input files, for backends that ship them
	Outputs   []string // declared output globs, workspace-relative, for backends that bring them back
	Image     string   // the task's `image`, for container backends; "" means the backend's default
	OutputDir string   // absolute directory where a remote backend restores declared outputs; "" means Workspace

	Stdout io.Writer // the task's standard output; never nil
	Stderr io.Writer // the task's standard error; never nil

	Grace time.Duration   // time between SIGTERM and SIGKILL when ctx is done
	Kill  <-chan struct{} // closed to skip the rest of the grace period; may be nil
}

// Result describes how an attempt ended.
type Result struct {
	ExitCode int       // the process's exit status; -1 when it was killed by a signal
	Signal   string    // the signal that ended it, if any ("terminated", "killed")
	Started  time.Time // when the process started
	Finished time.Time // when it had exited and its streams were drained
}

// OutputRoot is where declared outputs are to be restored: OutputDir, or
// the workspace when it is empty.
func (s *Spec) OutputRoot() string {
	if s.OutputDir != "" {
		return s.OutputDir
	}
	return s.Workspace
}

// Duration is how long the attempt ran.
func (r *Result) Duration() time.Duration { return r.Finished.Sub(r.Started) }

// ErrUnavailable is wrapped by Run's error when the backend itself failed
// (a host that cannot be reached, a connection lost mid-task, an engine
// that does not answer), as opposed to the task failing. Such an attempt is
// retried by the build even when the task asks for no retries.
var ErrUnavailable = errors.New("backend unavailable")

// ErrStart is wrapped by Run's error when the process could not be started
// (missing shell, bad working directory). Such an attempt never ran.
var ErrStart = errors.New("exec: could not start task")

// Identifier is an optional ability of a backend: the identity of the
// environment a task runs in, which goes into the task's key (for example
// "local linux/amd64", or an image digest). Two backends that return the same
// identity share cache entries. Backends without it are identified by the
// operating system and architecture of this machine.
type Identifier interface {
	Identity(ctx context.Context, s *Spec) (string, error)
}
