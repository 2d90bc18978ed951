package kube

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/rustypipe/rustypipe/exec"
	"github.com/rustypipe/rustypipe/exec/exectest"

	"github.com/rustypipe/rustypipe/remote/kube/kubetest"
)

// newTestBackend returns a backend on the test cluster's namespace and
// image, closed when the test ends, whose messages go to the test log. The
// kubeconfig is named in the Config unless KUBECONFIG already names it.
func newTestBackend(t *testing.T, cfg Config) *Backend {
	t.Helper()
	_, ns := testCluster(t)
	if os.Getenv("KUBECONFIG") != cluster.kubeconfig {
		cfg.Kubeconfig = cluster.kubeconfig
	}
	if cfg.Image == "" {
		cfg.Image = testImage
	}
	if cfg.ImagePullPolicy == "" {
		cfg.ImagePullPolicy = PullNever
	}
	if cfg.Namespace == "" {
		cfg.Namespace = ns
	}
	b, err := New(cfg, exectest.Logger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// syncBuffer is a task's stdout or stderr, read while Run writes it.
type syncBuffer = exectest.Buffer

// waitFor polls cond until it holds or a minute passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(time.Minute); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("%s: not after a minute", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func spec(t *testing.T, ws, script string, env ...string) (*exec.Spec, *syncBuffer, *syncBuffer) {
	var stdout, stderr syncBuffer
	return &exec.Spec{
		Task:      t.Name(),
		RunID:     fmt.Sprintf("test-%d-%d", os.Getpid(), time.Now().UnixNano()),
		Script:    script,
		Env:       env,
		Workspace: ws,
		Stdout:    &stdout,
		Stderr:    &stderr,
		Grace:     10 * time.Second,
	}, &stdout, &stderr
}

// podsWith lists the pods of the namespace whose label key has the
// sanitized value.
func podsWith(t *testing.T, cs kubernetes.Interface, ns, key, value string) []corev1.Pod {
	t.Helper()
	list, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: key + "=" + labelValue(value)})
	if err != nil {
		t.Fatalf("list pods: %v", err)
	}
	return list.Items
}

func TestConformance(t *testing.T) {
	cs, ns := testCluster(t)
	// The suite's backends find the cluster as kubectl does, through
	// KUBECONFIG; the other tests name the kubeconfig in their Config.
	t.Setenv("KUBECONFIG", cluster.kubeconfig)
	exectest.Run(t, func(t *testing.T) exec.Backend {
		return newTestBackend(t, Config{})
	}, exectest.Options{
		Shell: "sh",
		// The pids a task prints are those of its pod's pid namespace: they
		// are gone when the pod is. Each subtest's tasks carry its name as
		// their task label.
		PIDCheck: func(t *testing.T, pid int) bool {
			return len(podsWith(t, cs, ns, LabelTask, t.Name())) == 0
		},
	})
}

func TestLogsComplete(t *testing.T) {
	t.Parallel()
	b := newTestBackend(t, Config{})
	// Printed as fast as possible right before the exit: a backend that
	// stops reading when the container exits loses the tail.
	sp, stdout, stderr := spec(t, t.TempDir(), `seq 1 20000; seq 1 20000 >&2; exit 5`)
	res, err := b.Run(context.Background(), sp)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.ExitCode != 5 {
		t.Errorf("ExitCode = %d, want 5", res.ExitCode)
	}
	var want strings.Builder
	for i := 1; i <= 20000; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	for name, got := range map[string]string{"stdout": stdout.String(), "stderr": stderr.String()} {
		if got != want.String() {
			lines := strings.Count(got, "\n")
			t.Errorf("%s has %d lines (%d bytes), want the 20000 lines of seq (%d bytes); ends with %q",
				name, lines, len(got), want.Len(), got[max(0, len(got)-20):])
		}
	}
}

// loseStdoutAfter makes b's attach stream deliver only the first n bytes
// of each task's stdout, as a stream that ends early does.
func loseStdoutAfter(b *Backend, n int) {
	var mu sync.Mutex
	seen := 0
	b.testLoseOutput = func(stream int, p []byte) []byte {
		if stream != 0 {
			return p
		}
		mu.Lock()
		defer mu.Unlock()
		keep := min(len(p), max(0, n-seen))
		seen += len(p)
		return p[:keep]
	}
}

// recordLog sends b's messages to the test log and returns them as well.
func recordLog(t *testing.T, b *Backend) func() string {
	var mu sync.Mutex
	var msgs strings.Builder
	tlog := exectest.Logger(t)
	b.log = func(msg string) {
		mu.Lock()
		msgs.WriteString(msg + "\n")
		mu.Unlock()
		tlog(msg)
	}
	return func() string { mu.Lock(); defer mu.Unlock(); return msgs.String() }
}

// TestLostOutputIsRecovered runs the output check against the cluster's
// real container logs, with an attach stream that loses the end of stdout.
func TestLostOutputIsRecovered(t *testing.T) {
	t.Parallel()
	const script = `echo one; echo two >&2; printf 'three\nfour'; exit 3`
	t.Run("recovered", func(t *testing.T) {
		t.Parallel()
		b := newTestBackend(t, Config{})
		loseStdoutAfter(b, len("one\nth"))
		msgs := recordLog(t, b)
		sp, stdout, stderr := spec(t, t.TempDir(), script)
		res, err := b.Run(context.Background(), sp)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if res.ExitCode != 3 || stdout.String() != "one\nthree\nfour" || stderr.String() != "two\n" {
			t.Errorf("ExitCode %d, stdout %q, stderr %q; want 3, the whole stdout and stderr", res.ExitCode, stdout, stderr)
		}
		if want := "lost 8 bytes of output; they were recovered from the container log"; !strings.Contains(msgs(), want) {
			t.Errorf("messages %q do not say %q", msgs(), want)
		}
	})
	t.Run("without split streams", func(t *testing.T) {
		t.Parallel()
		b := newTestBackend(t, Config{})
		loseStdoutAfter(b, len("one\nth"))
		// A server without PodLogsQuerySplitStreams returns both streams
		// whatever stream is asked for.
		b.testLogReader = func(read logReader) logReader {
			return func(ctx context.Context, _ *string, w io.Writer) error { return read(ctx, nil, w) }
		}
		sp, stdout, _ := spec(t, t.TempDir(), script)
		_, err := b.Run(context.Background(), sp)
		var loss *outputLoss
		if !errors.As(err, &loss) || loss.lost != 8 || !strings.Contains(err.Error(), "PodLogsQuerySplitStreams") {
			t.Fatalf("Run error = %v; want the loss of 8 bytes that could not be recovered", err)
		}
		if stdout.String() != "one\nth" {
			t.Errorf("stdout = %q, want what arrived", stdout)
		}
	})
	t.Run("nothing lost", func(t *testing.T) {
		t.Parallel()
		b := newTestBackend(t, Config{})
		msgs := recordLog(t, b)
		sp, stdout, stderr := spec(t, t.TempDir(), script)
		if _, err := b.Run(context.Background(), sp); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if stdout.String() != "one\nthree\nfour" || stderr.String() != "two\n" || strings.Contains(msgs(), "lost") {
			t.Errorf("stdout %q, stderr %q, messages %q; want the output and no loss", stdout, stderr, msgs())
		}
	})
}

func TestEnvironmentAndExitCodes(t *testing.T) {
	t.Parallel()
	b := newTestBackend(t, Config{})
	sp, stdout, stderr := spec(t, t.TempDir(),
		`cat; printf '%s|%s|%s|%s|%s|%s\n' "$PATH" "$HOME" "${USER-unset}" "$CI" "$LIT" "$(echo sub)"; exit 137`,
		"PATH=/host/bin", "HOME=/home/host", "USER=me", "CI=1", "LIT=$(CI) $$ $")
	res, err := b.Run(context.Background(), sp)
	if err != nil {
		t.Fatalf("Run: %v; stderr %q", err, stderr)
	}
	// The image's PATH and HOME; the task's CI; $(VAR) and $$ reach the
	// task as written; stdin is empty (cat returns); a task's own exit 137
	// is an exit code, not a signal.
	if got, want := stdout.String(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|/root|unset|1|$(CI) $$ $|sub\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if res.ExitCode != 137 || res.Signal != "" {
		t.Errorf("ExitCode, Signal = %d, %q; want 137, \"\"", res.ExitCode, res.Signal)
	}
}

func TestInputsAndOutputs(t *testing.T) {
	t.Parallel()
	b := newTestBackend(t, Config{})
	ws, staging := t.TempDir(), t.TempDir()
	big := make([]byte, 24<<20)
	rand.Read(big)
	sum := sha256.Sum256(big)
	for name, body := range map[string][]byte{"in/big.bin": big, "tools/run.sh": []byte("#!/bin/sh\necho tool ran\n")} {
		p := filepath.Join(ws, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, body, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sp, stdout, stderr := spec(t, ws, `cd .. && tools/run.sh && mkdir -p out/sub && cp in/big.bin out/big.bin &&
sha256sum in/big.bin | cut -d' ' -f1 > out/sum.txt && ln -s big.bin out/link && ln out/big.bin out/sub/hard.bin &&
echo secret > out/undeclared.key; exit 4`)
	sp.Dir = "work"
	sp.Inputs = []string{"in/big.bin", "tools"}
	sp.Outputs = []string{"out/*.bin", "out/sum.txt", "out/link", "out/sub/*.bin"}
	sp.OutputDir = staging
	res, err := b.Run(context.Background(), sp)
	if err != nil {
		t.Fatalf("Run: %v; stderr %q", err, stderr)
	}
	if res.ExitCode != 4 || stdout.String() != "tool ran\n" {
		t.Errorf("ExitCode %d, stdout %q; want 4 and the tool's line", res.ExitCode, stdout)
	}
	// Outputs come back whatever the exit code, into OutputDir only.
	for _, name := range []string{"out/big.bin", "out/sub/hard.bin"} {
		got, err := os.ReadFile(filepath.Join(staging, filepath.FromSlash(name)))
		if err != nil || !bytes.Equal(got, big) {
			t.Errorf("%s: %d bytes, %v; want the 24 MiB input", name, len(got), err)
		}
	}
	if got, err := os.ReadFile(filepath.Join(staging, "out", "sum.txt")); err != nil || string(got) != hex.EncodeToString(sum[:])+"\n" {
		t.Errorf("out/sum.txt = %q, %v; want the input's sha256 as the task saw it", got, err)
	}
	if target, err := os.Readlink(filepath.Join(staging, "out", "link")); err != nil || target != "big.bin" {
		t.Errorf("out/link -> %q, %v; want a symlink to big.bin", target, err)
	}
	if _, err := os.Stat(filepath.Join(staging, "out", "undeclared.key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an undeclared file came back: %v", err)
	}
	if _, err := os.Stat(filepath.Join(ws, "out")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("outputs were written to the workspace, not OutputDir: %v", err)
	}
}

func TestDeadline(t *testing.T) {
	t.Parallel()
	cs, ns := testCluster(t)
	b := newTestBackend(t, Config{})
	sp, stdout, _ := spec(t, t.TempDir(), `echo started; sleep 60`)
	cause := errors.New("task timeout")
	ctx, cancel := context.WithTimeoutCause(context.Background(), 10*time.Second, cause)
	defer cancel()
	done := exectest.Start(ctx, b, sp)
	waitFor(t, "the task's first line", func() bool { return strings.Contains(stdout.String(), "\n") })
	pods := podsWith(t, cs, ns, LabelRunID, sp.RunID)
	if len(pods) != 1 {
		t.Fatalf("%d pods of the run, want 1", len(pods))
	}
	// The pod's own deadline is a backstop beyond the task's: 10 s, the
	// 10 s grace period and a margin.
	if d := pods[0].Spec.ActiveDeadlineSeconds; d == nil || *d <= 10 || *d > 10+10+int64(backstopMargin/time.Second) {
		t.Errorf("activeDeadlineSeconds = %v, want a backstop after 10s + grace", d)
	}
	r := <-done
	if !errors.Is(r.Err, cause) || !errors.Is(r.Err, context.DeadlineExceeded) {
		t.Errorf("Run error = %v, want one wrapping the deadline's cause and DeadlineExceeded", r.Err)
	}
	if r.Res == nil || r.Res.ExitCode != -1 || r.Res.Signal != "terminated" {
		t.Errorf("Result = %+v, want ExitCode -1, Signal terminated", r.Res)
	}
	if left := podsWith(t, cs, ns, LabelRunID, sp.RunID); len(left) != 0 {
		t.Errorf("%d pod(s) left after Run returned", len(left))
	}
}

func TestCancelDeletesPodWithGrace(t *testing.T) {
	t.Parallel()
	cs, ns := testCluster(t)
	b := newTestBackend(t, Config{})
	// The task handles SIGTERM: the grace period gives it the time to.
	sp, stdout, _ := spec(t, t.TempDir(), `trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 1; done`)
	cause := errors.New("user pressed Ctrl-C")
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	done := exectest.Start(ctx, b, sp)
	waitFor(t, "the task's first line", func() bool { return strings.Contains(stdout.String(), "\n") })
	if n := len(podsWith(t, cs, ns, LabelRunID, sp.RunID)); n != 1 {
		t.Fatalf("%d pods of the run while it runs, want 1", n)
	}
	cancel(cause)
	r := <-done
	if !errors.Is(r.Err, cause) {
		t.Errorf("Run error = %v, want one wrapping %v", r.Err, cause)
	}
	if r.Res == nil || r.Res.ExitCode != 7 || stdout.String() != "ready\ngot TERM\n" {
		t.Errorf("Result %+v, stdout %q; want exit 7 from the TERM trap", r.Res, stdout)
	}
	if left := podsWith(t, cs, ns, LabelRunID, sp.RunID); len(left) != 0 {
		t.Errorf("%d pod(s) left after Run returned", len(left))
	}
}

// orphanEnv makes the test binary run orphanMain instead of the tests: it
// runs one long task and is killed with SIGKILL by TestReap. Its value is
// the namespace; orphanRunEnv is the run id.
const (
	orphanEnv    = "RP_KUBE_TEST_ORPHAN_NAMESPACE"
	orphanRunEnv = "RP_KUBE_TEST_ORPHAN_RUN"
)

func orphanMain() int {
	b, err := New(Config{Image: testImage, ImagePullPolicy: PullNever, Namespace: os.Getenv(orphanEnv)},
		func(msg string) { fmt.Fprintln(os.Stderr, msg) })
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	dir, _ := os.Getwd()
	_, err = b.Run(context.Background(), &exec.Spec{
		Task: "orphan", RunID: os.Getenv(orphanRunEnv), Script: "echo started; sleep 3600",
		Workspace: dir, Stdout: os.Stdout, Stderr: os.Stderr, Grace: time.Second,
	})
	fmt.Fprintln(os.Stderr, "orphan: Run returned:", err)
	return 1
}

func TestReap(t *testing.T) {
	t.Parallel()
	cs, _ := testCluster(t)
	if testing.Short() {
		t.Skip("starts a process and two pods")
	}
	// A namespace of its own: every backend reaps it before its first pod.
	ns := newNamespace(t, cs, nil).Name
	host, _ := os.Hostname()
	// A pod of a live process: this test's parent. Its backend reaps before
	// its first pod, so it starts before the orphan's process is killed.
	live := newTestBackend(t, Config{Namespace: ns, Owner: Owner(host, os.Getppid())})
	liveSpec, liveOut, _ := spec(t, t.TempDir(), `echo started; sleep 3600`)
	ctx, cancel := context.WithCancel(context.Background())
	liveDone := make(chan struct{})
	go func() {
		defer close(liveDone)
		live.Run(ctx, liveSpec)
	}()
	defer func() { cancel(); <-liveDone }()
	waitFor(t, "the live task's first line", func() bool { return liveOut.String() != "" })

	// A pod whose rustypipe process was killed with SIGKILL.
	run := fmt.Sprintf("orphan-%d", time.Now().UnixNano())
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := osexec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), orphanEnv+"="+ns, orphanRunEnv+"="+run, "KUBECONFIG="+cluster.kubeconfig)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var childErr syncBuffer
	cmd.Stderr = &childErr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	cmd.Process.Kill()
	cmd.Wait()
	if line != "started\n" {
		t.Fatalf("orphan printed %q, %v; stderr %q", line, err, childErr.String())
	}

	orphans := podsWith(t, cs, ns, LabelRunID, run)
	if len(orphans) != 1 || orphans[0].DeletionTimestamp != nil {
		t.Fatalf("%d pods of the killed process (want 1, not being deleted)", len(orphans))
	}
	b := newTestBackend(t, Config{Namespace: ns})
	n, err := b.Reap(context.Background())
	if err != nil || n != 1 {
		t.Errorf("Reap = %d, %v; want 1, nil", n, err)
	}
	waitFor(t, "the orphan pod to be gone", func() bool { return len(podsWith(t, cs, ns, LabelRunID, run)) == 0 })
	for _, p := range podsWith(t, cs, ns, LabelRunID, liveSpec.RunID) {
		if p.DeletionTimestamp != nil {
			t.Errorf("Reap deleted pod %s of a live process", p.Name)
		}
	}
	if n, err := b.Reap(context.Background()); n != 0 || err != nil {
		t.Errorf("second Reap = %d, %v; want 0, nil", n, err)
	}
}

func TestMissingImage(t *testing.T) {
	t.Parallel()
	cs, ns := testCluster(t)
	b := newTestBackend(t, Config{Image: "rp-missing:nope", ImagePullPolicy: PullNever})
	sp, _, _ := spec(t, t.TempDir(), `echo never`)
	res, err := b.Run(context.Background(), sp)
	if res != nil || !errors.Is(err, exec.ErrStart) || !errors.Is(err, ErrPodNotStarted) {
		t.Fatalf("Run = %+v, %v; want no Result and an error wrapping exec.ErrStart and ErrPodNotStarted", res, err)
	}
	t.Logf("error: %v", err)
	for _, want := range []string{"ErrImageNeverPull", "rp-missing:nope"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if left := podsWith(t, cs, ns, LabelRunID, sp.RunID); len(left) != 0 {
		t.Errorf("%d pod(s) left after Run returned", len(left))
	}
}

func TestUnschedulable(t *testing.T) {
	t.Parallel()
	b := newTestBackend(t, Config{
		NodeSelector: map[string]string{"rustypipe.test/nowhere": "true"},
		StartTimeout: 3 * time.Second,
	})
	sp, _, _ := spec(t, t.TempDir(), `echo never`)
	res, err := b.Run(context.Background(), sp)
	if res != nil || !errors.Is(err, exec.ErrStart) || !errors.Is(err, ErrPodNotStarted) {
		t.Fatalf("Run = %+v, %v; want no Result and an error wrapping exec.ErrStart and ErrPodNotStarted", res, err)
	}
	t.Logf("error: %v", err)
	for _, want := range []string{"did not start within 3s", "Unschedulable", "node affinity/selector"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestConcurrencyLimit(t *testing.T) {
	t.Parallel()
	cs, ns := testCluster(t)
	const n, limit = 5, 2
	b := newTestBackend(t, Config{Concurrency: limit})
	runID := fmt.Sprintf("limit-%d", time.Now().UnixNano())
	// Count the run's pods from their creation to their deletion.
	list, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := cs.CoreV1().Pods(ns).Watch(context.Background(), metav1.ListOptions{
		LabelSelector: LabelRunID + "=" + runID, ResourceVersion: list.ResourceVersion,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var mu sync.Mutex
	live, most, created := map[string]bool{}, 0, 0
	go func() {
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			mu.Lock()
			switch ev.Type {
			case watch.Added:
				live[p.Name] = true
				created++
				most = max(most, len(live))
			case watch.Deleted:
				delete(live, p.Name)
			}
			mu.Unlock()
		}
	}()

	var wg sync.WaitGroup
	errs := make([]error, n)
	codes := make([]int, n)
	for i := range n {
		sp, _, _ := spec(t, t.TempDir(), `sleep 1; exit "$N"`, fmt.Sprintf("N=%d", i))
		sp.RunID = runID
		wg.Go(func() {
			res, err := b.Run(context.Background(), sp)
			errs[i] = err
			if res != nil {
				codes[i] = res.ExitCode
			}
		})
	}
	wg.Wait()
	b.Close() // waits until the pods are gone
	for i := range n {
		if errs[i] != nil || codes[i] != i {
			t.Errorf("task %d: exit %d, %v; want exit %d", i, codes[i], errs[i], i)
		}
	}
	waitFor(t, "the watch to see every pod", func() bool { mu.Lock(); defer mu.Unlock(); return created == n && len(live) == 0 })
	mu.Lock()
	defer mu.Unlock()
	if most != limit {
		t.Errorf("at most %d pods existed at once, want %d (the limit, reached)", most, limit)
	}
}

func TestPodTemplateAndLabels(t *testing.T) {
	t.Parallel()
	b := newTestBackend(t, Config{
		Labels: map[string]string{"team": "build"},
		PodTemplate: map[string]any{"containers": []any{map[string]any{
			"name": "task",
			"env": []any{
				map[string]any{"name": "TEAM", "valueFrom": map[string]any{"fieldRef": map[string]any{"fieldPath": "metadata.labels['team']"}}},
				map[string]any{"name": "OWNER", "valueFrom": map[string]any{"fieldRef": map[string]any{"fieldPath": "metadata.annotations['" + LabelOwner + "']"}}},
				map[string]any{"name": "TASK", "valueFrom": map[string]any{"fieldRef": map[string]any{"fieldPath": "metadata.labels['" + LabelTask + "']"}}},
			},
		}}},
	})
	sp, stdout, stderr := spec(t, t.TempDir(), `echo "$TEAM|$OWNER|$TASK"`)
	sp.Task = "a task/with:odd name"
	res, err := b.Run(context.Background(), sp)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Run = %+v, %v; stderr %q", res, err, stderr)
	}
	if want := "build|" + b.owner + "|a_task_with_odd_name\n"; stdout.String() != want {
		t.Errorf("stdout = %q, want %q", stdout, want)
	}
}

func TestRestrictedNamespace(t *testing.T) {
	t.Parallel()
	cs, _ := testCluster(t)
	ctx := context.Background()
	ns := newNamespace(t, cs, map[string]string{"pod-security.kubernetes.io/enforce": "restricted"})

	// The image runs as root: the restricted profile refuses it, clearly.
	b := newTestBackend(t, Config{Namespace: ns.Name})
	sp, _, _ := spec(t, t.TempDir(), `echo never`)
	if res, err := b.Run(ctx, sp); res != nil || !errors.Is(err, exec.ErrStart) || !strings.Contains(err.Error(), `violates PodSecurity "restricted`) {
		t.Errorf("Run as root in a restricted namespace = %+v, %v; want a start error naming the policy", res, err)
	}

	// As a non-root user, with inputs and outputs, everything passes.
	yes := true
	b = newTestBackend(t, Config{Namespace: ns.Name, RunAsNonRoot: &yes,
		PodTemplate: map[string]any{"securityContext": map[string]any{"runAsUser": 1000, "runAsGroup": 1000}}})
	ws := t.TempDir()
	os.WriteFile(filepath.Join(ws, "in.txt"), []byte("input\n"), 0o644)
	// The working directory and the inputs belong to the task's user, who
	// can write there.
	sp, stdout, stderr := spec(t, ws, `id -u; cat ../in.txt; mkdir -p out && echo made > out/x.txt`)
	sp.Dir = "sub"
	sp.Inputs, sp.Outputs = []string{"in.txt"}, []string{"sub/out/x.txt"}
	res, err := b.Run(ctx, sp)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Run as non-root = %+v, %v; stderr %q", res, err, stderr)
	}
	if stdout.String() != "1000\ninput\n" {
		t.Errorf("stdout = %q, want the uid 1000 and the input", stdout)
	}
	if got, err := os.ReadFile(filepath.Join(ws, "sub", "out", "x.txt")); err != nil || string(got) != "made\n" {
		t.Errorf("sub/out/x.txt = %q, %v", got, err)
	}

	// A quota that allows no pod: the API server's refusal, at once.
	_, err = cs.CoreV1().ResourceQuotas(ns.Name).Create(ctx, &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "no-pods"},
		Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: *resourceQuantity("0")}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Admission sees the quota once the controller has counted its usage,
	// and once the API server's quota admission has caught up with it: it
	// remembers for a while that a namespace had no quota, so a pod may
	// still be admitted for some seconds after the status appears. Such a
	// run is retried; the refusal must come, as a start error naming the
	// quota.
	waitFor(t, "the quota's status", func() bool {
		q, err := cs.CoreV1().ResourceQuotas(ns.Name).Get(ctx, "no-pods", metav1.GetOptions{})
		_, counted := q.Status.Used[corev1.ResourcePods]
		return err == nil && counted
	})
	var over *exec.Result
	waitFor(t, "the quota's refusal", func() bool {
		sp, _, _ = spec(t, ws, `echo never`)
		over, err = b.Run(ctx, sp)
		return over == nil
	})
	if !errors.Is(err, exec.ErrStart) || !strings.Contains(err.Error(), "quota") {
		t.Errorf("Run over quota = %v; want a start error naming the quota", err)
	}
}

// newNamespace creates a namespace of the test's own, deleted when the test
// ends, and waits until pods can be created in it.
func newNamespace(t *testing.T, cs kubernetes.Interface, labels map[string]string) *corev1.Namespace {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: "rp-kube-test-", Labels: labels,
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{}) })
	if err := kubetest.WaitServiceAccount(ctx, cs, ns.Name); err != nil {
		t.Fatal(err)
	}
	return ns
}

func resourceQuantity(s string) *resource.Quantity {
	q := resource.MustParse(s)
	return &q
}

// BenchmarkRun measures one attempt from Run to Run: pod creation, inputs
// in, the task, outputs out; the pod's removal runs in the background and
// is waited for at the end.
func BenchmarkRun(b *testing.B) {
	for _, bc := range []struct {
		name         string
		inputs, outs bool
	}{{"echo", false, false}, {"inputs+outputs", true, true}} {
		b.Run(bc.name, func(b *testing.B) {
			_, ns := testCluster(b)
			be, err := New(Config{Kubeconfig: cluster.kubeconfig, Namespace: ns, Image: testImage, ImagePullPolicy: PullNever}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer be.Close()
			ws := b.TempDir()
			os.WriteFile(filepath.Join(ws, "in.txt"), []byte("input\n"), 0o644)
			for b.Loop() {
				sp := &exec.Spec{Task: "bench", RunID: "bench", Script: "cat in.txt 2>/dev/null; mkdir -p out; echo x > out/x",
					Workspace: ws, Stdout: io.Discard, Stderr: io.Discard, Grace: time.Second}
				if bc.inputs {
					sp.Inputs = []string{"in.txt"}
				}
				if bc.outs {
					sp.Outputs = []string{"out/x"}
				}
				if res, err := be.Run(context.Background(), sp); err != nil || res.ExitCode != 0 {
					b.Fatalf("Run = %+v, %v", res, err)
				}
			}
		})
	}
}
