package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/rustypipe/rustypipe/exec"
	"github.com/rustypipe/rustypipe/exec/backendkit"
	"github.com/rustypipe/rustypipe/remote/docker/dockerconfig"
)

var (
	_ exec.Backend    = (*Backend)(nil)
	_ exec.Identifier = (*Backend)(nil)
)

const (
	// drainTimeout bounds how long Run keeps reading a container's output
	// once the engine has reported its exit. The engine closes the attach
	// stream right after the exit; the bound only matters for an engine that
	// stopped answering.
	drainTimeout = 10 * time.Second

	// apiTimeout bounds the calls Run makes after ctx is done (signals,
	// removal), which must not hang on an engine that stopped answering.
	// Removing a container takes well under a second on a healthy engine.
	apiTimeout = 30 * time.Second
)

// Backend runs tasks in Docker containers, one container per attempt. The
// zero value is not usable; call New. All methods are safe for concurrent
// use.
type Backend struct {
	cfg      Config
	log      func(msg string)
	sockets  dockerconfig.Sockets // the engine's socket paths, never mounted into a task
	sem      *backendkit.Limiter  // nil when Config.Concurrency is 0
	hostname string
	owner    string // LabelOwner's value
	helper   string // LabelHelper's value; "" when the backend runs inside rustypipe

	cliOnce sync.Once
	cli     *client.Client
	cliErr  error

	reapOnce sync.Once

	mu     sync.Mutex             // guards images and shells
	images map[string]*imageEntry // resolved image references, see image
	shells map[string]bool        // image ID, shell and PATH known to hold the shell, see checkShell

	closed atomic.Bool
}

// New returns a Docker backend for cfg. It validates cfg (errors name the
// YAML key) and refuses a mount that would expose the engine's socket, but
// does not contact the engine: the client is created, from DOCKER_HOST,
// DOCKER_TLS_VERIFY, DOCKER_CERT_PATH and DOCKER_API_VERSION or the
// platform's default socket, on first use. log receives progress messages
// (pulls, reaped containers, failed clean-ups); nil discards them.
func New(cfg Config, log func(msg string)) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Pull == "" {
		cfg.Pull = PullMissing
	}
	if cfg.Workdir == "" {
		cfg.Workdir = DefaultWorkdir
	}
	if log == nil {
		log = func(string) {}
	}
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("docker: host name for container labels: %w", err)
	}
	b := &Backend{
		cfg:      cfg,
		log:      log,
		sockets:  dockerconfig.EngineSockets(os.Getenv(client.EnvOverrideHost)),
		hostname: host,
		owner:    backendkit.Owner(host, os.Getpid()),
		images:   make(map[string]*imageEntry),
		shells:   make(map[string]bool),
	}
	if cfg.Concurrency > 0 {
		b.sem = backendkit.NewLimiter(cfg.Concurrency)
	}
	if err := cfg.CheckMounts(b.sockets); err != nil {
		return nil, err // a relative source is checked by Run, against the workspace
	}
	return b, nil
}

// client returns the engine client, creating it on first use. Creating it
// does no I/O; the API version is negotiated on the first request.
func (b *Backend) client() (*client.Client, error) {
	b.cliOnce.Do(func() {
		b.cli, b.cliErr = client.New(client.FromEnv)
		if b.cliErr != nil {
			b.cliErr = fmt.Errorf("docker: create engine client: %w", b.cliErr)
		}
	})
	return b.cli, b.cliErr
}

// Close marks the backend closed, so that a later Run fails with an error
// wrapping exec.ErrStart, and closes the client's idle connections. It does
// not stop running tasks (their contexts do). It is safe for concurrent use
// and returns nil.
func (b *Backend) Close() error {
	b.closed.Store(true)
	// Once a client exists, Do returns at once; otherwise it makes sure
	// none will be created.
	b.cliOnce.Do(func() { b.cliErr = errors.New("docker: backend is closed") })
	if b.cli != nil {
		b.cli.Close()
	}
	return nil
}

// Run runs s in a new container of s.Image (or the backend's image) and
// removes the container before it returns. It implements exec.Backend; see
// the package documentation for the steps. Run is safe for concurrent use;
// it waits for a slot when Config.Concurrency containers already run.
//
// Errors: a task that could not start (no image, image not available, bad
// Spec, engine unreachable, shell not in the image) wraps exec.ErrStart and
// returns a nil Result; a ctx done before the container started wraps
// context.Cause(ctx) and returns a nil Result; a ctx done while it ran wraps
// context.Cause(ctx) and returns the Result; a failing writer or a failed
// copy of the outputs returns the Result and the error.
func (b *Backend) Run(ctx context.Context, s *exec.Spec) (*exec.Result, error) {
	if b.closed.Load() {
		return nil, &exec.StartError{Backend: "docker", Task: s.Task, Msg: "backend is closed"}
	}
	if ctx.Err() != nil {
		return nil, exec.StopError(ctx, "docker", s.Task, "not started")
	}
	if err := b.sem.Acquire(ctx); err != nil {
		return nil, exec.StopError(ctx, "docker", s.Task, "not started")
	}
	defer b.sem.Release()

	opts, err := b.createOptions(s)
	if err != nil {
		return nil, &exec.StartError{Backend: "docker", Task: s.Task, Msg: err.Error()}
	}
	cli, err := b.client()
	if err != nil {
		return nil, &exec.StartError{Backend: "docker", Task: s.Task, Msg: "engine", Err: err}
	}
	b.reapOnce.Do(func() { b.reapAndLog(ctx) })

	ref := b.imageRef(s)
	if ref == "" {
		return nil, &exec.StartError{Backend: "docker", Task: s.Task, Msg: "no image: set `image` on the task or on its docker backend"}
	}
	img, err := b.image(ctx, ref)
	if err != nil {
		return nil, notStarted(ctx, s.Task, "", err)
	}
	opts.Config.Image = img.id

	created, err := cli.ContainerCreate(ctx, opts)
	if err != nil {
		return nil, notStarted(ctx, s.Task, "create container", engineError{err})
	}
	cid := created.ID
	defer b.remove(cli, cid, s.Task)

	if err := b.checkShell(ctx, cli, cid, img, opts.Config.Entrypoint[0]); err != nil {
		return nil, notStarted(ctx, s.Task, "shell", err)
	}
	if !b.cfg.MountWorkspace {
		if err := b.copyInputs(ctx, cli, cid, s); err != nil {
			return nil, notStarted(ctx, s.Task, "copy inputs", err)
		}
	}

	res, stopped, err := b.runContainer(ctx, cli, cid, s)
	if stopped {
		return res, exec.StopError(ctx, "docker", s.Task, "stopped")
	}
	if err != nil {
		return res, err
	}
	if !b.cfg.MountWorkspace && len(s.Outputs) > 0 {
		if err := b.copyOutputs(ctx, cli, cid, s); err != nil {
			if ctx.Err() != nil {
				return res, exec.StopError(ctx, "docker", s.Task, "stopped while copying its outputs")
			}
			return res, fmt.Errorf("docker: task %q: copy outputs: %w", s.Task, err)
		}
	}
	return res, nil
}

// runContainer attaches to the created container cid, starts it, copies
// its output to s's writers and waits for it to exit, stopping it when ctx
// is done. It reports whether it stopped the container. A nil Result means
// the container did not start.
func (b *Backend) runContainer(ctx context.Context, cli *client.Client, cid string, s *exec.Spec) (res *exec.Result, stopped bool, err error) {
	attach, err := cli.ContainerAttach(ctx, cid, client.ContainerAttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		return nil, false, notStarted(ctx, s.Task, "attach", engineError{err})
	}
	defer attach.Close()
	// The wait is registered before the start, as `docker run` does, so that
	// no exit can be missed; it outlives ctx, which only asks for a stop.
	waitCtx, cancelWait := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWait()
	wait := cli.ContainerWait(waitCtx, cid, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	// The client's goroutine delivers exactly one of Result and Error, and
	// blocks until it is received: receive it whatever happens next.
	exited := make(chan exitStatus, 1)
	go func() {
		select {
		case r := <-wait.Result:
			st := exitStatus{code: r.StatusCode}
			if r.Error != nil && r.Error.Message != "" {
				st.err = errors.New(r.Error.Message)
			}
			exited <- st
		case err := <-wait.Error:
			exited <- exitStatus{code: -1, err: err}
		}
	}()
	if _, err := cli.ContainerStart(ctx, cid, client.ContainerStartOptions{}); err != nil {
		return nil, false, notStarted(ctx, s.Task, "start container", engineError{err})
	}
	started := time.Now()

	stdout, stderr := &sink{w: s.Stdout}, &sink{w: s.Stderr}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = stdcopy.StdCopy(stdout, stderr, attach.Reader)
	}()

	var st exitStatus
	select {
	case st = <-exited:
	case <-ctx.Done():
		stopped = true
		st = b.stop(cli, cid, s, exited)
	}
	select {
	case <-copied:
	case <-time.After(drainTimeout):
		attach.Close()
		<-copied
	}
	res = &exec.Result{Started: started, Finished: time.Now()}
	if st.err != nil {
		res.ExitCode = -1
		return res, stopped, fmt.Errorf("docker: task %q: wait for container %.12s: %w", s.Task, cid, st.err)
	}
	res.ExitCode, res.Signal = backendkit.ExitResult(st.code, stopped)
	if !stopped && st.code == 128+9 && b.oomKilled(cli, cid) {
		res.ExitCode, res.Signal = -1, "killed"
		b.log(fmt.Sprintf("docker: task %q was killed for exceeding its memory limit", s.Task))
	}
	if werr := errors.Join(stdout.err, stderr.err); werr != nil {
		return res, stopped, fmt.Errorf("docker: task %q: write output: %w", s.Task, werr)
	}
	return res, stopped, nil
}

// notStarted is the error of a task whose container did not start: a stop
// when ctx is done (the failure is then its consequence), else a start
// error.
func notStarted(ctx context.Context, task, msg string, err error) error {
	if ctx.Err() != nil {
		return exec.StopError(ctx, "docker", task, "not started")
	}
	return &exec.StartError{Backend: "docker", Task: task, Msg: msg, Err: err}
}

// reapAndLog runs Reap and logs what it did; its errors do not stop a task.
func (b *Backend) reapAndLog(ctx context.Context) {
	n, err := b.Reap(ctx)
	if n > 0 {
		b.log(fmt.Sprintf("docker: removed %d container(s) left behind by rustypipe processes that are gone", n))
	}
	if err != nil && ctx.Err() == nil {
		b.log(fmt.Sprintf("docker: could not remove leftover containers: %v", err))
	}
}

// exitStatus is what the engine reported when a container exited.
type exitStatus struct {
	code int64
	err  error // the wait failed; code is meaningless
}

// stop sends SIGTERM to the container's init process, which passes it to
// the shell, then SIGKILL once s.Grace has passed or s.Kill is closed,
// unless the container exited meanwhile. It returns the exit status.
func (b *Backend) stop(cli *client.Client, cid string, s *exec.Spec, exited <-chan exitStatus) exitStatus {
	b.signal(cli, cid, "SIGTERM")
	timer := time.NewTimer(s.Grace)
	defer timer.Stop()
	select {
	case st := <-exited:
		return st
	case <-timer.C:
	case <-s.Kill: // a nil channel never fires
	}
	b.signal(cli, cid, "SIGKILL")
	return <-exited
}

// signal sends sig to the container. It fails only when the container has
// already exited, which the wait reports anyway, so errors are ignored.
func (b *Backend) signal(cli *client.Client, cid, sig string) {
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	_, _ = cli.ContainerKill(ctx, cid, client.ContainerKillOptions{Signal: sig})
}

// remove force-removes the container and its anonymous volumes, whatever
// ctx says; a failure is logged, and Reap removes it on a later run.
func (b *Backend) remove(cli *client.Client, cid, task string) {
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	if _, err := cli.ContainerRemove(ctx, cid, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
		b.log(fmt.Sprintf("docker: remove container %.12s of task %q: %s", cid, task, engineText(err)))
	}
}

// oomKilled reports whether the kernel killed something in the container
// for exceeding its memory limit. The engine learns that from an event of
// its own, which can arrive after the container's exit (with cgroup v2,
// under load), so a container that exited with 128+SIGKILL is asked again
// for a short while before the answer is no.
func (b *Backend) oomKilled(cli *client.Client, cid string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	for wait := 25 * time.Millisecond; ; wait *= 2 {
		r, err := cli.ContainerInspect(ctx, cid, client.ContainerInspectOptions{})
		if err != nil || r.Container.State == nil {
			return false
		}
		if r.Container.State.OOMKilled || wait > oomEventWait {
			return r.Container.State.OOMKilled
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return false
		}
	}
}

// oomEventWait bounds how long oomKilled waits for a late OOM event: about
// twice this in all.
const oomEventWait = 400 * time.Millisecond

// sink passes writes to w until w fails, then records the error and
// discards the rest, so that the container's output keeps draining.
type sink struct {
	w   io.Writer
	err error
}

func (s *sink) Write(p []byte) (int, error) {
	if s.err == nil && s.w != nil {
		if _, err := s.w.Write(p); err != nil {
			s.err = err
		}
	}
	return len(p), nil
}

// imageRef is the image reference s runs in.
func (b *Backend) imageRef(s *exec.Spec) string {
	if s.Image != "" {
		return s.Image
	}
	return b.cfg.Image
}

// createOptions builds the container for s, all but its image.
func (b *Backend) createOptions(s *exec.Spec) (client.ContainerCreateOptions, error) {
	argv, err := shellCommand(s.Shell, s.Script)
	if err != nil {
		return client.ContainerCreateOptions{}, err
	}
	wd := b.cfg.Workdir
	if s.Dir != "" {
		if err := exec.CheckPath(s.Dir); err != nil {
			return client.ContainerCreateOptions{}, fmt.Errorf("working directory: %w", err)
		}
		wd = path.Join(wd, s.Dir)
	}
	mounts, err := b.mounts(s)
	if err != nil {
		return client.ContainerCreateOptions{}, err
	}
	init := true
	return client.ContainerCreateOptions{
		Config: &container.Config{
			User:         b.cfg.User,
			AttachStdout: true,
			AttachStderr: true,
			Env:          containerEnv(s.Env, b.cfg.Env),
			Entrypoint:   argv,
			Cmd:          []string{},
			WorkingDir:   wd,
			Labels:       b.labels(s),
		},
		HostConfig: &container.HostConfig{
			NetworkMode: container.NetworkMode(b.cfg.Network),
			Mounts:      mounts,
			Init:        &init,
			Resources: container.Resources{
				NanoCPUs: int64(b.cfg.CPUs * 1e9),
				Memory:   b.cfg.Memory,
			},
		},
	}, nil
}

// labels are the labels of s's container.
func (b *Backend) labels(s *exec.Spec) map[string]string {
	l := map[string]string{
		LabelRunID: s.RunID,
		LabelTask:  s.Task,
		LabelOwner: b.owner,
	}
	if b.helper != "" {
		l[LabelHelper] = b.helper
	}
	return l
}

// checkShell makes sure that the shell is in a directory of the container's
// PATH before the container starts: the init process would otherwise
// report a missing shell as exit status 127, as if the script had run.
// When the engine cannot tell (an error other than not found), the start
// decides. A shell found once per image and PATH is not looked for again.
func (b *Backend) checkShell(ctx context.Context, cli *client.Client, cid string, img image, shell string) error {
	pathEnv := img.path
	if p, ok := b.cfg.Env["PATH"]; ok {
		pathEnv = p
	}
	key := img.id + "\x00" + shell + "\x00" + pathEnv
	b.mu.Lock()
	known := b.shells[key]
	b.mu.Unlock()
	if known {
		return nil
	}
	looked := false
	for _, dir := range strings.Split(pathEnv, ":") {
		if !path.IsAbs(dir) {
			continue // not a Linux directory: a Windows image's PATH is not checked
		}
		looked = true
		_, err := cli.ContainerStatPath(ctx, cid, client.ContainerStatPathOptions{Path: path.Join(dir, shell)})
		if err != nil && cerrdefs.IsNotFound(err) {
			continue
		}
		if err != nil && isContextErr(err) {
			return err
		}
		if err == nil {
			b.mu.Lock()
			b.shells[key] = true
			b.mu.Unlock()
		}
		return nil
	}
	if !looked {
		return nil
	}
	return fmt.Errorf("%q is not in the image's PATH (%s)", shell, pathEnv)
}

// shellCommand returns the command that runs script with shell, "" being
// sh.
func shellCommand(shell, script string) ([]string, error) {
	if shell == "" {
		shell = "sh"
	}
	argv, ok := exec.ShellArgv(shell, script)
	if !ok {
		return nil, fmt.Errorf("unknown shell %q (want sh, bash, pwsh, powershell or cmd)", shell)
	}
	return argv, nil
}

// mounts returns the bind mounts of s's container: the configured ones,
// relative sources resolved against the workspace, and the workspace
// itself with MountWorkspace. None may expose the engine's socket.
func (b *Backend) mounts(s *exec.Spec) ([]mount.Mount, error) {
	var ms []mount.Mount
	for _, m := range b.cfg.Mounts {
		src := m.Source
		if !dockerconfig.IsHostAbs(src) {
			if !filepath.IsAbs(s.Workspace) {
				return nil, fmt.Errorf("mount %s: workspace %q is not an absolute path", src, s.Workspace)
			}
			src = filepath.Join(s.Workspace, filepath.FromSlash(src))
		}
		if err := b.sockets.CheckSource(src); err != nil {
			return nil, err
		}
		ms = append(ms, mount.Mount{Type: mount.TypeBind, Source: src, Target: m.Target, ReadOnly: !m.ReadWrite})
	}
	if b.cfg.MountWorkspace {
		if !filepath.IsAbs(s.Workspace) {
			return nil, fmt.Errorf("mount_workspace: workspace %q is not an absolute path", s.Workspace)
		}
		if err := b.sockets.CheckSource(s.Workspace); err != nil {
			return nil, err
		}
		ms = append(ms, mount.Mount{Type: mount.TypeBind, Source: s.Workspace, Target: b.cfg.Workdir})
	}
	return ms, nil
}
