package kube

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/rustypipe/rustypipe/exec"
	"github.com/rustypipe/rustypipe/exec/backendkit"
)

var (
	_ exec.Backend    = (*Backend)(nil)
	_ exec.Identifier = (*Backend)(nil)
)

const (
	// drainTimeout bounds how long Run keeps reading a container's output
	// once the kubelet has reported its exit. The attach stream ends right
	// after the exit; the bound only matters for a connection that stopped
	// answering.
	drainTimeout = 15 * time.Second

	// apiTimeout bounds the calls Run makes after ctx is done (deletion,
	// events), which must not hang on an API server that stopped answering.
	apiTimeout = 30 * time.Second

	// stopMargin is how long Run waits, beyond the grace period, for the
	// kubelet to report the exit of a task it stopped, and for a deleted pod
	// to disappear: the kubelet needs a few seconds to stop the sandbox and
	// report.
	stopMargin = 30 * time.Second

	// clientQPS and clientBurst raise client-go's default rate limit (5/s,
	// burst 10), which eight pods started at once would already exceed: each
	// attempt makes about eight requests.
	clientQPS   = 50
	clientBurst = 100
)

// Backend runs tasks in Kubernetes pods, one pod per attempt. The zero value
// is not usable; call New. All methods are safe for concurrent use.
type Backend struct {
	cfg      Config
	log      func(msg string)
	sem      *backendkit.Limiter // nil when Config.Concurrency is 0
	hostname string              // this host's name, for Reap
	owner    string              // LabelOwner's value

	cliOnce sync.Once
	cli     *client
	cliErr  error

	reapOnce sync.Once
	closed   atomic.Bool

	mu       sync.Mutex     // guards closing, and cleanups.Add against Close's Wait
	closing  bool           // Close has begun: removals are no longer left to the background
	cleanups sync.WaitGroup // pods whose removal Run did not wait for

	logCheckFailed sync.Once // the output check's log read failed, and it was said

	// Tests of the output check: testLoseOutput drops what it cuts from
	// what the attach delivers; testLogReader wraps the log reader.
	testLoseOutput func(stream int, p []byte) []byte
	testLogReader  func(logReader) logReader
}

// client is a connection to the cluster: the clientset, the REST config
// that attach and exec streams need, and the namespace of the pods.
type client struct {
	cs   kubernetes.Interface
	rest *rest.Config
	ns   string
}

func (c *client) pods() typedcorev1.PodInterface { return c.cs.CoreV1().Pods(c.ns) }

// New returns a Kubernetes backend for cfg. It validates cfg (errors name
// the YAML key) but neither reads the kubeconfig nor contacts the cluster:
// that happens on first use, so that a pipeline whose tasks are all cached
// needs no cluster. log receives progress messages (a pod waiting to be
// scheduled, reaped pods, failed clean-ups); nil discards them.
//
// The pods' owner is cfg.Owner, or this process on this host: rustypipe's
// helper passes its parent.
func New(cfg Config, log func(msg string)) (*Backend, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	if log == nil {
		log = func(string) {}
	}
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("kube: host name for pod labels: %w", err)
	}
	b := &Backend{cfg: cfg, log: log, hostname: host, owner: cfg.Owner}
	if b.owner == "" {
		b.owner = Owner(host, os.Getpid())
	}
	if cfg.Concurrency > 0 {
		b.sem = backendkit.NewLimiter(cfg.Concurrency)
	}
	return b, nil
}

// client returns the connection to the cluster, loading the kubeconfig on
// first use.
func (b *Backend) client() (*client, error) {
	b.cliOnce.Do(func() { b.cli, b.cliErr = newClient(b.cfg) })
	return b.cli, b.cliErr
}

// newClient resolves the cluster as kubectl does: cfg.Kubeconfig, else the
// files in KUBECONFIG, else ~/.kube/config, else the in-cluster service
// account; cfg.Context or the current context; cfg.Namespace, the
// context's namespace or "default".
func newClient(cfg Config) (*client, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if cfg.Kubeconfig != "" {
		p, err := filepath.Abs(cfg.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kube: kubeconfig %s: %w", cfg.Kubeconfig, err)
		}
		rules.ExplicitPath = p
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: cfg.Context})
	rc, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kube: load kubeconfig: %w", err)
	}
	ns := cfg.Namespace
	if ns == "" {
		if ns, _, err = cc.Namespace(); err != nil {
			return nil, fmt.Errorf("kube: namespace from kubeconfig: %w", err)
		}
		if ns == "" {
			ns = metav1.NamespaceDefault
		}
	}
	rc = rest.CopyConfig(rc)
	rc.QPS, rc.Burst = clientQPS, clientBurst
	rc.UserAgent = "rustypipe-kube"
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kube: create client: %w", err)
	}
	return &client{cs: cs, rest: rc, ns: ns}, nil
}

// Close marks the backend closed, so that a later Run fails with an error
// wrapping exec.ErrStart, and waits until the pods of finished tasks are
// gone (each at most its grace period and a margin). It does not stop
// running tasks (their contexts do). It is safe for concurrent use and
// returns nil.
func (b *Backend) Close() error {
	b.closed.Store(true)
	b.mu.Lock()
	b.closing = true
	b.mu.Unlock()
	b.cleanups.Wait()
	return nil
}

// imageRef is the image reference s runs in.
func (b *Backend) imageRef(s *exec.Spec) string {
	if s.Image != "" {
		return s.Image
	}
	return b.cfg.Image
}

// Run runs s in a new pod and deletes the pod before it returns (after a
// stop or a failed start it also waits until the pod is gone; otherwise
// the slot of the concurrency limit is held until then, in the
// background). It implements exec.Backend; see the package documentation
// for the steps. Run is safe for concurrent use; it waits for a slot when
// Config.Concurrency pods already exist.
//
// Errors: a task that could not start (no image, bad Spec, no cluster, a
// pod the API server refused, ErrPodNotStarted) wraps exec.ErrStart and
// returns a nil Result; a ctx done before the task started wraps
// context.Cause(ctx) and returns a nil Result; a ctx done while it ran
// wraps context.Cause(ctx) and returns the Result; a failing writer, a lost
// stream or a failed copy of the outputs returns the Result and the error.
func (b *Backend) Run(ctx context.Context, s *exec.Spec) (*exec.Result, error) {
	if b.closed.Load() {
		return nil, &exec.StartError{Backend: "kube", Task: s.Task, Msg: "backend is closed"}
	}
	if ctx.Err() != nil {
		return nil, exec.StopError(ctx, "kube", s.Task, "not started")
	}
	if err := checkSpec(s); err != nil {
		return nil, &exec.StartError{Backend: "kube", Task: s.Task, Msg: err.Error()}
	}
	image := b.imageRef(s)
	if image == "" {
		return nil, &exec.StartError{Backend: "kube", Task: s.Task, Msg: "no image: set `image` on the task or on its kubernetes backend"}
	}
	cl, err := b.client()
	if err != nil {
		return nil, &exec.StartError{Backend: "kube", Task: s.Task, Err: err}
	}
	if err := b.sem.Acquire(ctx); err != nil {
		return nil, exec.StopError(ctx, "kube", s.Task, "not started")
	}
	b.reapOnce.Do(func() { b.reapAndLog(ctx, cl) })
	a := &attempt{b: b, cl: cl, s: s}
	return a.run(ctx, image)
}

// checkSpec refuses a Spec whose paths would leave the workspace.
func checkSpec(s *exec.Spec) error {
	if s.Dir != "" {
		if err := exec.CheckPath(s.Dir); err != nil {
			return fmt.Errorf("working directory: %w", err)
		}
	}
	if len(s.Inputs) > 0 && !filepath.IsAbs(s.Workspace) {
		return fmt.Errorf("workspace %q is not an absolute path", s.Workspace)
	}
	for _, in := range s.Inputs {
		if err := exec.CheckPath(in); err != nil {
			return fmt.Errorf("input: %w", err)
		}
	}
	return nil
}

// attempt is one run of one Spec in one pod.
type attempt struct {
	b    *Backend
	cl   *client
	s    *exec.Spec
	name string    // the pod's name, once created
	w    *podWatch // follows the pod, once created

	withInputs bool // the task has inputs or a working directory to ship

	problem string // the last start problem logged; used by Run's goroutine only

	gate *gate // the task's gate, once the task was released

	mu     sync.Mutex // serializes writes to the task's stdout and stderr
	outErr error      // the first error of a write to s.Stdout or s.Stderr; guarded by mu
	got    [2]tally   // what stdout and stderr delivered; guarded by mu
}

// arrived returns w, or for a test that simulates a lossy attach stream,
// w behind Backend.testLoseOutput.
func (a *attempt) arrived(stream int, w io.Writer) io.Writer {
	lose := a.b.testLoseOutput
	if lose == nil {
		return w
	}
	return writerFunc(func(p []byte) (int, error) {
		if q := lose(stream, p); len(q) > 0 {
			w.Write(q)
		}
		return len(p), nil
	})
}

// run creates the pod, runs the task in it, and removes the pod. It holds
// the slot of the concurrency limit, which it releases when the pod is gone.
func (a *attempt) run(ctx context.Context, image string) (res *exec.Result, err error) {
	b, s := a.b, a.s
	deadline, _ := ctx.Deadline()
	helper := b.cfg.HelperImage
	if helper == "" {
		helper = image
	}
	a.withInputs = len(s.Inputs) > 0 || s.Dir != ""
	pod, err := buildPod(&b.cfg, podParams{
		name:        podName(s.Task),
		namespace:   a.cl.ns,
		spec:        s,
		image:       image,
		helperImage: helper,
		owner:       b.owner,
		deadline:    deadline,
		withKeeper:  len(s.Outputs) > 0,
	})
	if err != nil {
		b.sem.Release()
		return nil, &exec.StartError{Backend: "kube", Task: s.Task, Msg: err.Error()}
	}
	// A request cancelled in flight may still create the pod: the pod is
	// created whatever ctx says, and the start sees ctx.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), apiTimeout)
	created, err := a.cl.pods().Create(cctx, pod, metav1.CreateOptions{})
	cancel()
	if err != nil {
		b.sem.Release()
		return nil, notStarted(ctx, s.Task, "create pod", apiError{err})
	}
	a.name = created.Name
	a.w = watchPod(ctx, a.cl.pods(), created)
	stopped := false
	defer func() { a.remove(res == nil || stopped) }()

	started, at, err := a.start(ctx)
	if err != nil {
		return nil, err
	}
	res, stopped, err = a.wait(ctx, started, at)
	if stopped {
		return res, exec.StopError(ctx, "kube", s.Task, "stopped")
	}
	if err != nil {
		return res, err
	}
	if len(s.Outputs) > 0 {
		if err := a.copyOutputs(ctx); err != nil {
			if ctx.Err() != nil {
				return res, exec.StopError(ctx, "kube", s.Task, "stopped while copying its outputs")
			}
			return res, fmt.Errorf("kube: task %q: copy outputs from pod %s: %w", s.Task, a.name, err)
		}
	}
	return res, nil
}

// start brings the pod to the point where the task runs: it waits for the
// task container to run (its gate holds the task back), streams the inputs
// into it, attaches to it and releases the task. It returns when the task
// was released, and the attach stream.
func (a *attempt) start(ctx context.Context) (time.Time, *attachment, error) {
	s := a.s
	// Each wait for the kubelet has Config.StartTimeout; the inputs' copy
	// has no limit but ctx, since it takes as long as the inputs are large.
	waitFor := func(name string, terminated bool) (*corev1.Pod, error) {
		wctx, cancel := context.WithTimeoutCause(ctx, a.b.cfg.StartTimeout, errStartTimeout)
		defer cancel()
		return a.w.wait(wctx, a.until(name, terminated))
	}
	pod, err := waitFor(containerTask, false)
	if err != nil {
		return time.Time{}, nil, a.startFailed(ctx, err)
	}
	if t := containerStatus(pod, containerTask).State.Terminated; t != nil {
		return time.Time{}, nil, a.startFailed(ctx, &podError{pod: a.name, reason: t.Reason,
			msg: fmt.Sprintf("container %q exited with status %d before the task was released: %s", containerTask, t.ExitCode, t.Message)})
	}
	if a.withInputs {
		if err := a.sendInputs(ctx); err != nil {
			return time.Time{}, nil, a.startFailed(ctx, fmt.Errorf("copy inputs: %w", err))
		}
	}

	// Attach, then release the task through stdin: nothing it prints can
	// come before the attach.
	g := newGate()
	attachCtx, cancelAttach := context.WithCancel(context.WithoutCancel(ctx))
	at := &attachment{done: make(chan error, 1), cancel: cancelAttach}
	a.gate = g
	fout := &probeFilter{probe: g.probe, echoed: func() { g.echoed(0) }, w: a.arrived(0, a.writer(s.Stdout, 0))}
	ferr := &probeFilter{probe: g.probe, echoed: func() { g.echoed(1) }, w: a.arrived(1, a.writer(s.Stderr, 1))}
	go func() {
		err := a.cl.attach(attachCtx, a.name, containerTask, g, fout, ferr)
		fout.flush()
		ferr.flush()
		at.done <- err
	}()
	timer := time.NewTimer(a.b.cfg.StartTimeout)
	defer timer.Stop()
	var stopped error
	select {
	case <-g.released:
		return time.Now(), at, nil
	case err := <-at.done:
		cancelAttach()
		return time.Time{}, nil, a.startFailed(ctx, fmt.Errorf("attach to the %s container: %w", containerTask, err))
	case <-ctx.Done():
		stopped = context.Cause(ctx)
	case <-timer.C:
		stopped = errStartTimeout
	}
	if !g.abort() {
		return time.Now(), at, nil // released meanwhile: the task runs
	}
	cancelAttach()
	<-at.done
	return time.Time{}, nil, a.startFailed(ctx, stopped)
}

// attachment is the attach stream of the task container.
type attachment struct {
	done   chan error // receives the stream's end, once
	cancel context.CancelFunc
}

// until returns the check that waits for container name to run (or, with
// terminated, to have exited), failing on a fatal start problem and
// logging the others as they change.
func (a *attempt) until(name string, terminated bool) func(*corev1.Pod) (bool, error) {
	return func(pod *corev1.Pod) (bool, error) {
		if st := containerStatus(pod, name); st != nil {
			if st.State.Terminated != nil || (!terminated && st.State.Running != nil) {
				return true, nil
			}
		}
		p, fatal := startProblem(pod)
		if p != nil && fatal {
			return false, p
		}
		if p != nil && p.Error() != a.problem {
			a.problem = p.Error()
			a.b.log(fmt.Sprintf("kube: task %q waits: %s", a.s.Task, p.Error()))
		}
		return false, nil
	}
}

// startFailed turns an error of the start phase into Run's error: a stop
// when ctx is done, else a start error that, for a start timeout, names
// the last problem Kubernetes reported.
func (a *attempt) startFailed(ctx context.Context, err error) error {
	s := a.s
	if ctx.Err() != nil {
		return exec.StopError(ctx, "kube", s.Task, "not started")
	}
	switch {
	case errors.Is(err, errStartTimeout):
		pe := &podError{pod: a.name, reason: fmt.Sprintf("did not start within %v", a.b.cfg.StartTimeout)}
		pod, _ := a.w.wait(ctx, func(*corev1.Pod) (bool, error) { return true, nil })
		if p, _ := startProblem(pod); p != nil {
			pe.msg = p.reason + ": " + p.msg
		} else {
			pe.msg = a.lastWarning()
		}
		return &exec.StartError{Backend: "kube", Task: s.Task, Err: pe}
	case errors.Is(err, errPodGone):
		return &exec.StartError{Backend: "kube", Task: s.Task, Err: &podError{pod: a.name, reason: "Deleted", msg: "the pod was deleted before the task started"}}
	}
	return &exec.StartError{Backend: "kube", Task: s.Task, Err: err}
}

// lastWarning returns the reason and message of the pod's latest warning
// event, or "".
func (a *attempt) lastWarning() string {
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	sel := fields.Set{"involvedObject.name": a.name, "involvedObject.kind": "Pod", "type": corev1.EventTypeWarning}.AsSelector().String()
	list, err := a.cl.cs.CoreV1().Events(a.cl.ns).List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil || len(list.Items) == 0 {
		return ""
	}
	last := list.Items[0]
	for _, ev := range list.Items[1:] {
		if ev.LastTimestamp.After(last.LastTimestamp.Time) || ev.EventTime.After(last.EventTime.Time) {
			last = ev
		}
	}
	return last.Reason + ": " + last.Message
}

// wait waits for the task container to exit, stopping the pod when ctx is
// done, then for the end of its output, and returns the Result.
func (a *attempt) wait(ctx context.Context, started time.Time, at *attachment) (*exec.Result, bool, error) {
	s := a.s
	pod, err := a.w.wait(ctx, a.until(containerTask, true))
	stopped := false
	var term *corev1.ContainerStateTerminated
	var lost error // the pod ended without the task's exit status
	switch {
	case ctx.Err() != nil:
		stopped = true
		term = a.stop()
	case err == nil:
		term = containerStatus(pod, containerTask).State.Terminated
	default:
		// Deleted, evicted or out of time while running, by someone else.
		if st := containerStatus(pod, containerTask); st != nil && st.State.Terminated != nil {
			term = st.State.Terminated
		} else {
			lost = fmt.Errorf("kube: task %q: pod %s ended before the task did: %w", s.Task, a.name, err)
		}
	}
	var aerr error
	select {
	case aerr = <-at.done:
	case <-time.After(drainTimeout):
		at.cancel()
		<-at.done
		aerr = fmt.Errorf("output still open %v after the task exited", drainTimeout)
	}
	at.cancel()
	res := &exec.Result{Started: started, Finished: time.Now(), ExitCode: -1, Signal: "killed"}
	if term != nil {
		res.ExitCode, res.Signal = backendkit.ExitResult(int64(term.ExitCode), stopped)
		if !stopped && term.Reason == "OOMKilled" {
			res.ExitCode, res.Signal = -1, "killed"
			a.b.log(fmt.Sprintf("kube: task %q was killed for exceeding its memory limit", s.Task))
		}
	}
	switch {
	case stopped:
		return res, true, nil
	case lost != nil:
		return res, false, lost
	case aerr != nil && !isContextErr(aerr):
		return res, false, fmt.Errorf("kube: task %q: stream output of pod %s: %w", s.Task, a.name, aerr)
	}
	if err := a.checkOutput(ctx); err != nil {
		return res, false, err
	}
	a.mu.Lock()
	werr := a.outErr
	a.mu.Unlock()
	if werr != nil {
		return res, false, fmt.Errorf("kube: task %q: write output: %w", s.Task, werr)
	}
	return res, false, nil
}

// stop deletes the pod with the task's grace period: the kubelet sends
// SIGTERM to its containers, then SIGKILL once the grace period is over.
// When s.Kill is closed first, the pod is deleted again with the shortest
// grace period. It returns the task container's exit status, nil when the
// kubelet did not report one in time.
func (a *attempt) stop() *corev1.ContainerStateTerminated {
	s := a.s
	a.delete(graceSeconds(s.Grace))
	waitCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan *corev1.Pod, 1)
	go func() {
		pod, _ := a.w.wait(waitCtx, func(p *corev1.Pod) (bool, error) {
			st := containerStatus(p, containerTask)
			return st != nil && st.State.Terminated != nil, nil
		})
		done <- pod
	}()
	limit := s.Grace + stopMargin
	timer := time.NewTimer(limit)
	defer timer.Stop()
	kill := s.Kill
	for {
		select {
		case pod := <-done:
			if st := containerStatus(pod, containerTask); st != nil {
				return st.State.Terminated
			}
			return nil
		case <-kill:
			kill = nil
			a.kill()
			limit = stopMargin
			timer.Reset(limit)
		case <-timer.C:
			a.b.log(fmt.Sprintf("kube: task %q: pod %s did not report the task's exit within %v", s.Task, a.name, limit))
			return nil
		}
	}
}

// kill ends the grace period of a pod being deleted: the kubelet does not
// shorten a stop in progress when the pod is deleted again, so SIGKILL is
// sent from inside, by `kill -KILL -1` in the task container, which reaches
// every process of the pod's shared process namespace but its PID 1 (the
// pause process). The pod is also deleted again with the shortest grace
// period, which counts where the exec is not allowed.
func (a *attempt) kill() {
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	if err := a.cl.execIn(ctx, a.name, containerTask, []string{"sh", "-c", "kill -KILL -1"}, nil, nil, io.Discard); err != nil {
		var ce utilexec.ExitError
		if !errors.As(err, &ce) { // killed with the rest: expected
			a.b.log(fmt.Sprintf("kube: task %q: kill the processes of pod %s: %v", a.s.Task, a.name, err))
		}
	}
	a.delete(1)
}

// delete deletes the pod with a grace period in seconds, whatever ctx
// says. A pod already gone is no error; other failures are logged, and
// Reap removes the pod on a later run.
func (a *attempt) delete(grace int64) {
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	err := a.cl.pods().Delete(ctx, a.name, metav1.DeleteOptions{GracePeriodSeconds: &grace})
	if err != nil && !apierrors.IsNotFound(err) {
		a.b.log(fmt.Sprintf("kube: delete pod %s of task %q: %s", a.name, a.s.Task, apiText(err)))
	}
}

// remove deletes the pod, then waits until it is gone, at most its grace
// period and a margin, before it releases the concurrency slot: now when
// wait is set, in the background otherwise.
func (a *attempt) remove(wait bool) {
	if !a.w.isGone() {
		a.delete(graceSeconds(a.s.Grace))
	}
	finish := func() {
		ctx, cancel := context.WithTimeout(context.Background(), a.s.Grace+stopMargin)
		defer cancel()
		if _, err := a.w.wait(ctx, func(*corev1.Pod) (bool, error) { return false, nil }); !errors.Is(err, errPodGone) {
			a.b.log(fmt.Sprintf("kube: pod %s of task %q is still there %v after its deletion", a.name, a.s.Task, a.s.Grace+stopMargin))
		}
		a.w.stop()
		a.b.sem.Release()
	}
	b := a.b
	b.mu.Lock()
	if !wait && !b.closing {
		b.cleanups.Add(1)
	} else {
		wait = true // Close waits for no goroutine started after it began
	}
	b.mu.Unlock()
	if wait {
		finish()
		return
	}
	go func() {
		defer a.b.cleanups.Done()
		finish()
	}()
}

// writer returns a writer to w that serializes with the attempt's other
// writer (one writer may be given for both streams) and, once w fails,
// records the error and discards the rest, so that the output keeps
// draining.
func (a *attempt) writer(w io.Writer, stream int) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.got[stream].add(p)
		if a.outErr == nil && w != nil {
			if _, err := w.Write(p); err != nil {
				a.outErr = err
			}
		}
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// gate is the task container's stdin. It sends probe lines, one now and
// another every probeEvery, until both output streams have echoed one back
// (see gateScript), then "go", which releases the task, then EOF. abort,
// before "go" was sent, makes it EOF at once, and the task exits without
// running.
type gate struct {
	probe    []byte // the probe line, with a random marker
	mu       sync.Mutex
	state    int // 0 pending, 1 released, 2 aborted
	sent     int // probes sent
	seen     [2]bool
	ready    chan struct{} // closed when both streams echoed a probe
	aborted  chan struct{}
	released chan struct{}
}

// probeEvery is how often the gate repeats its probe while the output
// streams are not connected yet.
const probeEvery = 200 * time.Millisecond

func newGate() *gate {
	var nonce [8]byte
	rand.Read(nonce[:])
	return &gate{
		probe:    []byte("rustypipe-attached-" + hex.EncodeToString(nonce[:]) + "\n"),
		ready:    make(chan struct{}),
		aborted:  make(chan struct{}),
		released: make(chan struct{}),
	}
}

func (g *gate) Read(p []byte) (int, error) {
	g.mu.Lock()
	if g.state != 0 || len(p) < len(g.probe) {
		g.mu.Unlock()
		return 0, io.EOF
	}
	first := g.sent == 0
	g.mu.Unlock()
	if !first {
		select {
		case <-g.ready:
		case <-g.aborted:
			return 0, io.EOF
		case <-time.After(probeEvery):
			return g.sendProbe(p), nil
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.ready:
		if g.state != 0 {
			return 0, io.EOF
		}
		g.state = 1
		close(g.released)
		return copy(p, "go\n"), nil
	default:
		return g.sendProbeLocked(p), nil
	}
}

func (g *gate) sendProbe(p []byte) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sendProbeLocked(p)
}

func (g *gate) sendProbeLocked(p []byte) int {
	g.sent++
	return copy(p, g.probe)
}

// probes returns how many probe lines the gate sent: the task container
// echoed each on stdout and on stderr before the task started.
func (g *gate) probes() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sent
}

// echoed records that stream i (0 stdout, 1 stderr) echoed a probe.
func (g *gate) echoed(i int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.seen[i] {
		return
	}
	g.seen[i] = true
	if g.seen[0] && g.seen[1] {
		close(g.ready)
	}
}

// abort reports whether it stopped the gate before the task was released.
func (g *gate) abort() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == 0 {
		g.state = 2
		close(g.aborted)
		return true
	}
	return false
}

// probeFilter drops the gate's probe lines from the start of one output
// stream and reports them to the gate; the first other byte starts the
// task's output, which passes through untouched. Probes only ever come
// before the task's output: the gate's shell echoes them before it reads
// "go".
type probeFilter struct {
	probe   []byte
	echoed  func() // called for each probe line; may be nil
	w       io.Writer
	buf     []byte
	passing bool
}

func (f *probeFilter) Write(p []byte) (int, error) {
	if f.passing {
		return f.w.Write(p)
	}
	f.buf = append(f.buf, p...)
	for {
		switch {
		case bytes.HasPrefix(f.buf, f.probe):
			f.buf = f.buf[len(f.probe):]
			if f.echoed != nil {
				f.echoed()
			}
		case bytes.HasPrefix(f.probe, f.buf):
			return len(p), nil // empty, or part of a probe: wait for more
		default:
			f.passing = true
			rest := f.buf
			f.buf = nil
			if _, err := f.w.Write(rest); err != nil {
				return 0, err
			}
			return len(p), nil
		}
	}
}

// flush passes on what is held back when the stream ends.
func (f *probeFilter) flush() {
	if len(f.buf) > 0 {
		f.w.Write(f.buf)
		f.buf = nil
	}
}

// reapAndLog runs Reap and logs what it did; its errors do not stop a task.
func (b *Backend) reapAndLog(ctx context.Context, cl *client) {
	n, err := b.reap(ctx, cl)
	if n > 0 {
		b.log(fmt.Sprintf("kube: deleted %d pod(s) left behind by rustypipe processes that are gone", n))
	}
	if err != nil && ctx.Err() == nil {
		b.log(fmt.Sprintf("kube: could not delete leftover pods: %v", err))
	}
}

// HelperBackend builds the backend that rustypipe-kube serves over the
// external-backend protocol from the handshake's config. The pods' owner is
// the helper's parent process, rustypipe, unless the config names one.
func HelperBackend(config map[string]any) (exec.Backend, error) {
	cfg, err := ParseConfig(config)
	if err != nil {
		return nil, err
	}
	if cfg.Owner == "" {
		if host, err := os.Hostname(); err == nil {
			cfg.Owner = Owner(host, os.Getppid())
		}
	}
	return New(cfg, func(msg string) { fmt.Fprintln(os.Stderr, msg) })
}
