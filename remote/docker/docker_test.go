package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/rustypipe/rustypipe/exec"
	"github.com/rustypipe/rustypipe/exec/backendkit"
	"github.com/rustypipe/rustypipe/exec/exectest"
)

// newTestBackend returns a backend on the test image, closed when the test
// ends, whose messages go to the test log.
func newTestBackend(t *testing.T, cfg Config) *Backend {
	t.Helper()
	if cfg.Image == "" {
		cfg.Image = testImageRef
	}
	b, err := New(cfg, exectest.Logger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// runID returns a run id that no other test uses, to find containers by.
func runID(t *testing.T) string {
	return fmt.Sprintf("test-%d-%d", os.Getpid(), time.Now().UnixNano())
}

func spec(t *testing.T, ws, script string, env ...string) (*exec.Spec, *bytes.Buffer, *bytes.Buffer) {
	var stdout, stderr bytes.Buffer
	return &exec.Spec{
		Task:      t.Name(),
		RunID:     runID(t),
		Script:    script,
		Env:       env,
		Workspace: ws,
		Stdout:    &stdout,
		Stderr:    &stderr,
		Grace:     10 * time.Second,
	}, &stdout, &stderr
}

func TestConformance(t *testing.T) {
	cli := testEngine(t)
	exectest.Run(t, func(t *testing.T) exec.Backend {
		return newTestBackend(t, Config{})
	}, exectest.Options{
		Shell: "sh",
		// The pids a task prints are those of its container's pid
		// namespace: they are gone when the container is. Each subtest's
		// tasks carry its name as their task label.
		PIDCheck: func(t *testing.T, pid int) bool {
			return len(containersLabelled(t, cli, LabelTask, t.Name())) == 0
		},
	})
}

func TestEnvironment(t *testing.T) {
	testEngine(t)
	b := newTestBackend(t, Config{Env: map[string]string{"A": "backend", "B": "b"}})
	sp, stdout, stderr := spec(t, t.TempDir(),
		`printf '%s|%s|%s|%s|%s|%s|%s|%s\n' "$PATH" "$HOME" "${USER-unset}" "${TMPDIR-unset}" "$CI" "$A" "$B" "$FROM_IMAGE"`,
		"PATH=/host/bin", "HOME=/home/host", "USER=me", "TMPDIR=/host/tmp", "CI=1", "A=task")
	res, err := b.Run(context.Background(), sp)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Run = %+v, %v; stderr %q", res, err, stderr)
	}
	// The image's PATH and HOME, the task's CI, the backend's A and B, and
	// the image's own FROM_IMAGE.
	if got, want := stdout.String(), "/usr/local/bin:/usr/bin:/bin|/root|unset|unset|1|backend|b|yes\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
}

func TestImageOverrideAndIdentity(t *testing.T) {
	cli := testEngine(t)
	ctx := context.Background()
	const moving = "rustypipe-test/moving:1"
	const marked = "rustypipe-test/marked:1"
	rootfs, err := testRootfs(map[string]string{"etc/marker": "marked\n"})
	if err != nil {
		t.Fatal(err)
	}
	if err := importImage(ctx, cli, rootfs, marked); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.ImageRemove(ctx, marked, client.ImageRemoveOptions{Force: true}) })
	if _, err := cli.ImageTag(ctx, client.ImageTagOptions{Source: testImageRef, Target: moving}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.ImageRemove(ctx, moving, client.ImageRemoveOptions{Force: true}) })

	// The task's image overrides the backend's.
	b := newTestBackend(t, Config{})
	ws := t.TempDir()
	sp, stdout, _ := spec(t, ws, `cat /etc/marker`)
	sp.Image = marked
	if res, err := b.Run(ctx, sp); err != nil || res.ExitCode != 0 || stdout.String() != "marked\n" {
		t.Errorf("Run in %s = %+v, %v, stdout %q; want exit 0 and the marker", marked, res, err, stdout)
	}
	sp, _, _ = spec(t, ws, `cat /etc/marker`)
	if res, err := b.Run(ctx, sp); err != nil || res.ExitCode == 0 {
		t.Errorf("Run in the backend's image %s = %+v, %v; want a non-zero exit (no marker)", testImageRef, res, err)
	}

	identity := func(b *Backend, image string) string {
		t.Helper()
		id, err := b.Identity(ctx, &exec.Spec{Task: t.Name(), Image: image})
		if err != nil {
			t.Fatalf("Identity(%s): %v", image, err)
		}
		return id
	}
	base, moved := identity(b, testImageRef), identity(b, moving)
	if !strings.HasPrefix(base, "docker sha256:") || strings.Contains(moved, "moving") {
		t.Errorf("Identity = %q; want \"docker sha256:...\" without the tag", moved)
	}
	if moved != base {
		t.Errorf("the same image under two tags: Identity %q and %q, want them equal", moved, base)
	}
	if other := identity(b, marked); other == base {
		t.Errorf("images with different content share the identity %q", other)
	}

	// Retag moving to other content: a new backend (a new run) sees it;
	// this one keeps what it resolved, so its keys and containers agree.
	other, err := testRootfs(map[string]string{"etc/marker": "retagged\n"})
	if err != nil {
		t.Fatal(err)
	}
	if err := importImage(ctx, cli, other, moving); err != nil {
		t.Fatal(err)
	}
	b2 := newTestBackend(t, Config{Image: moving})
	if got := identity(b2, ""); got == base {
		t.Errorf("after retagging %s to other content, Identity is still %q", moving, got)
	}
	if got := identity(b, moving); got != moved {
		t.Errorf("a backend's Identity for %s changed during its life: %q, then %q", moving, moved, got)
	}
	if got := identity(newTestBackend(t, Config{}), testImageRef); got != base {
		t.Errorf("an unchanged image: Identity %q, then %q in a new backend", base, got)
	}
	// Backend settings that change what a task sees change the identity.
	if got := identity(newTestBackend(t, Config{User: "nobody"}), testImageRef); got == base {
		t.Errorf("user set: Identity %q, the same as without", got)
	}
}

func TestCancelLeavesNoContainer(t *testing.T) {
	cli := testEngine(t)
	b := newTestBackend(t, Config{})
	sp, _, _ := spec(t, t.TempDir(), `echo ready; sleep 60`)
	out := new(exectest.Buffer)
	sp.Stdout = out
	sp.Grace = 5 * time.Second
	cause := errors.New("test: cancelled")
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	done := exectest.Start(ctx, b, sp)
	select {
	case <-out.FirstLine():
	case r := <-done:
		t.Fatalf("Run returned before the task was ready: %+v, %v", r.Res, r.Err)
	}
	if n := len(containersLabelled(t, cli, LabelRunID, sp.RunID)); n != 1 {
		t.Errorf("%d containers labelled with the run id while the task runs, want 1", n)
	}
	cancel(cause)
	r := <-done
	if !errors.Is(r.Err, cause) {
		t.Errorf("Run error = %v, want one wrapping %v", r.Err, cause)
	}
	if r.Res == nil || r.Res.ExitCode != -1 || r.Res.Signal != "terminated" {
		t.Errorf("Result = %+v, want ExitCode -1, Signal terminated", r.Res)
	}
	if ids := containersLabelled(t, cli, LabelRunID, sp.RunID); len(ids) != 0 {
		t.Errorf("containers %q remain after a cancelled Run", ids)
	}

	// A task that ran to its end leaves nothing either.
	sp, _, _ = spec(t, t.TempDir(), `exit 3`)
	if res, err := b.Run(context.Background(), sp); err != nil || res.ExitCode != 3 {
		t.Errorf("Run = %+v, %v; want exit 3", res, err)
	}
	if ids := containersLabelled(t, cli, LabelRunID, sp.RunID); len(ids) != 0 {
		t.Errorf("containers %q remain after Run", ids)
	}
}

func TestShellNotInImage(t *testing.T) {
	cli := testEngine(t)
	b := newTestBackend(t, Config{})
	sp, _, _ := spec(t, t.TempDir(), `echo hi`)
	sp.Shell = "bash" // busybox's image has none
	res, err := b.Run(context.Background(), sp)
	if !errors.Is(err, exec.ErrStart) || res != nil {
		t.Errorf("Run = %+v, %v; want a nil Result and an error wrapping exec.ErrStart", res, err)
	}
	if ids := containersLabelled(t, cli, LabelRunID, sp.RunID); len(ids) != 0 {
		t.Errorf("containers %q remain after a failed start", ids)
	}
}

// deadPID returns the pid of a process that has exited.
func deadPID(t *testing.T) int {
	cmd := osexec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatalf("run a short-lived process: %v", err)
	}
	return cmd.Process.Pid
}

func TestReap(t *testing.T) {
	cli := testEngine(t)
	ctx := context.Background()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	run := runID(t)
	// create makes a container labelled as a backend with owner, and with
	// helper when not "", makes it.
	create := func(owner string, helper ...string) string {
		t.Helper()
		labels := map[string]string{LabelOwner: owner, LabelRunID: run, LabelTask: "reap"}
		for _, h := range helper {
			labels[LabelHelper] = h
		}
		c, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
			Config: &container.Config{
				Image:      testImageRef,
				Entrypoint: []string{"sleep", "60"},
				Labels:     labels,
			},
		})
		if err != nil {
			t.Fatalf("create container: %v", err)
		}
		t.Cleanup(func() { cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}) })
		return c.ID
	}
	dead := deadPID(t)
	gone := create(host + ":" + strconv.Itoa(dead))
	if _, err := cli.ContainerStart(ctx, gone, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	live := create(host + ":" + strconv.Itoa(os.Getppid()))
	mine := create(backendkit.Owner(host, os.Getpid()))
	elsewhere := create("another-host-" + host + ":" + strconv.Itoa(dead))
	// Of a helper: kept while both the helper and its rustypipe live,
	// removed once the helper is gone even though its rustypipe lives.
	liveHelper := create(host+":"+strconv.Itoa(os.Getppid()), backendkit.Owner(host, os.Getpid()))
	deadHelper := create(host+":"+strconv.Itoa(os.Getppid()), host+":"+strconv.Itoa(dead))
	otherHostHelper := create(host+":"+strconv.Itoa(os.Getppid()), "another-host-"+host+":"+strconv.Itoa(dead))

	b := newTestBackend(t, Config{})
	n, err := b.Reap(ctx)
	if err != nil {
		t.Fatalf("Reap: %v", err)
	}
	if n < 2 {
		t.Errorf("Reap removed %d containers, want at least the two of pid %d", n, dead)
	}
	left := map[string]bool{}
	for _, id := range containersLabelled(t, cli, LabelRunID, run) {
		left[id] = true
	}
	if left[gone] {
		t.Errorf("the running container of dead pid %d was not reaped", dead)
	}
	if left[deadHelper] {
		t.Errorf("the container of dead helper pid %d, whose owner lives, was not reaped", dead)
	}
	for name, id := range map[string]string{"a live process's": live, "this process's": mine, "another host's": elsewhere,
		"a live helper's": liveHelper, "another host's helper's": otherHostHelper} {
		if !left[id] {
			t.Errorf("Reap removed %s container", name)
		}
	}

	// Run reaps once by itself, before its first container.
	gone = create(host + ":" + strconv.Itoa(dead))
	b = newTestBackend(t, Config{})
	sp, _, _ := spec(t, t.TempDir(), `true`)
	if _, err := b.Run(ctx, sp); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ContainerInspect(ctx, gone, client.ContainerInspectOptions{}); err == nil {
		t.Errorf("the first Run did not reap the container of dead pid %d", dead)
	}
}

func TestMissingImage(t *testing.T) {
	cli := testEngine(t)
	tests := []struct {
		name, image, pull, want string
	}{
		{"pull never", "rustypipe-test/absent:1", PullNever, `pull is "never"`},
		// Nothing listens on port 1: the pull fails at once.
		{"pull fails", "127.0.0.1:1/rustypipe-test/absent:1", PullMissing, "the pull failed"},
		{"pull always fails", "127.0.0.1:1/rustypipe-test/absent:1", PullAlways, "the pull failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBackend(t, Config{Image: tc.image, Pull: tc.pull})
			sp, _, _ := spec(t, t.TempDir(), `echo ran`)
			res, err := b.Run(context.Background(), sp)
			if res != nil || !errors.Is(err, ErrImageUnavailable) || !errors.Is(err, exec.ErrStart) {
				t.Fatalf("Run = %+v, %v; want a nil Result and an error wrapping ErrImageUnavailable and exec.ErrStart", res, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, `"`+tc.image+`"`) || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not name the image %q and say %q", msg, tc.image, tc.want)
			}
			if strings.Contains(msg, "\n") || len(msg) > 500 {
				t.Errorf("error is not one short line: %q", msg)
			}
			if _, err := b.Identity(context.Background(), sp); !errors.Is(err, ErrImageUnavailable) {
				t.Errorf("Identity error = %v, want one wrapping ErrImageUnavailable", err)
			}
			if ids := containersLabelled(t, cli, LabelRunID, sp.RunID); len(ids) != 0 {
				t.Errorf("containers %q were created", ids)
			}
		})
	}
	t.Run("no image", func(t *testing.T) {
		b, err := New(Config{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		sp, _, _ := spec(t, t.TempDir(), `echo ran`)
		if _, err := b.Run(context.Background(), sp); !errors.Is(err, exec.ErrStart) || !strings.Contains(err.Error(), "image") {
			t.Errorf("Run without an image: %v, want a start error about the image", err)
		}
	})
}

func TestLargeOutputBoundedMemory(t *testing.T) {
	testEngine(t)
	const size = 100 << 20
	b := newTestBackend(t, Config{})
	ws := t.TempDir()
	sp, _, stderr := spec(t, ws, `mkdir -p out && dd if=/dev/zero of=out/big.bin bs=1048576 count=100 2>/dev/null`)
	sp.Outputs = []string{"out/*.bin"}

	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	res, err := b.Run(context.Background(), sp)
	close(stop)
	<-sampled
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Run = %+v, %v; stderr %q", res, err, stderr)
	}
	fi, err := os.Stat(filepath.Join(ws, "out", "big.bin"))
	if err != nil || fi.Size() != size {
		t.Fatalf("out/big.bin: %v, %v; want %d bytes", fi, err, size)
	}
	// The whole output never sits in memory: a buffered copy would need
	// at least its 100 MiB.
	const bound = 32 << 20
	if p := peak.Load(); p > bound {
		t.Errorf("heap in use peaked at %d MiB while a 100 MiB output was copied, want under %d MiB", p>>20, bound>>20)
	} else {
		t.Logf("heap in use peaked at %.1f MiB", float64(p)/(1<<20))
	}
}

func TestConcurrencyLimit(t *testing.T) {
	testEngine(t)
	const limit, n = 2, 5
	gate := t.TempDir()
	b := newTestBackend(t, Config{Concurrency: limit, Mounts: []Mount{{Source: gate, Target: "/gate"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	started, finished := make(chan int, n), make(chan int, n)
	errs := make([]error, n)
	for i := range n {
		sp, _, _ := spec(t, t.TempDir(), `echo started; while [ ! -e /gate/$N ]; do sleep 0.05; done`, fmt.Sprintf("N=%d", i))
		w := new(exectest.Buffer)
		sp.Stdout = w
		go func() {
			<-w.FirstLine()
			started <- i
		}()
		go func() {
			res, err := b.Run(ctx, sp)
			if err == nil && res.ExitCode != 0 {
				err = fmt.Errorf("exit code %d", res.ExitCode)
			}
			errs[i] = err
			finished <- i
		}()
	}
	// A task runs until the test releases it, which it does only when
	// every slot is taken: with a broken limit, more tasks start meanwhile.
	running, peak, done := 0, 0, 0
	var waiting []int // started, not yet released
	for done < n {
		select {
		case i := <-started:
			running++
			peak = max(peak, running)
			waiting = append(waiting, i)
		case <-finished:
			running--
			done++
		case <-ctx.Done():
			t.Fatalf("stuck: %d running, %d done", running, done)
		}
		if len(waiting) > 0 && running >= min(limit, n-done) {
			if err := os.WriteFile(filepath.Join(gate, strconv.Itoa(waiting[0])), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			waiting = waiting[1:]
		}
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("task %d: %v", i, err)
		}
	}
	if peak != limit {
		t.Errorf("at most %d tasks ran at once, want %d (the limit)", peak, limit)
	}
}

func TestUserAndWorkdir(t *testing.T) {
	testEngine(t)
	b := newTestBackend(t, Config{User: "nobody", Workdir: "/src"})
	ws := t.TempDir()
	if err := os.MkdirAll(filepath.Join(ws, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, "sub", "in.txt"), []byte("input\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sp, stdout, stderr := spec(t, ws, `id -u; pwd; cat in.txt; mkdir -p out && echo made > out/o.txt`)
	sp.Dir = "sub"
	sp.Inputs = []string{"sub/in.txt"}
	sp.Outputs = []string{"sub/out/*.txt"}
	res, err := b.Run(context.Background(), sp)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Run = %+v, %v; stderr %q", res, err, stderr)
	}
	if got, want := stdout.String(), "65534\n/src/sub\ninput\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if got, err := os.ReadFile(filepath.Join(ws, "sub", "out", "o.txt")); err != nil || string(got) != "made\n" {
		t.Errorf("sub/out/o.txt = %q, %v; want %q", got, err, "made\n")
	}
}

func TestOutputKinds(t *testing.T) {
	testEngine(t)
	b := newTestBackend(t, Config{})
	ws := t.TempDir()
	sp, _, stderr := spec(t, ws, `mkdir -p out/d && echo a > out/a.txt && ln out/a.txt out/hard.txt && `+
		`ln -s a.txt out/link.txt && echo n > out/d/n.txt && echo s > out/secret.log && echo r > root.txt; exit 3`)
	sp.Outputs = []string{"out/*.txt", "out/d/n.txt", "root.txt", "never/made.txt"}
	res, err := b.Run(context.Background(), sp)
	if err != nil || res.ExitCode != 3 {
		t.Fatalf("Run = %+v, %v; stderr %q; want exit 3 and no error", res, err, stderr)
	}
	for name, want := range map[string]string{"out/a.txt": "a\n", "out/hard.txt": "a\n", "out/link.txt": "a\n", "out/d/n.txt": "n\n", "root.txt": "r\n"} {
		if got, err := os.ReadFile(filepath.Join(ws, filepath.FromSlash(name))); err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
	if target, err := os.Readlink(filepath.Join(ws, "out", "link.txt")); err != nil || target != "a.txt" {
		t.Errorf("out/link.txt links to %q, %v; want a.txt", target, err)
	}
	if _, err := os.Stat(filepath.Join(ws, "out", "secret.log")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("undeclared out/secret.log was restored (stat: %v)", err)
	}
}

func TestMounts(t *testing.T) {
	testEngine(t)
	ro, rw := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(ro, "f"), []byte("from host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := newTestBackend(t, Config{Mounts: []Mount{{Source: ro, Target: "/ro"}, {Source: rw, Target: "/rw", ReadWrite: true}}})
	sp, stdout, _ := spec(t, t.TempDir(), `cat /ro/f; echo w > /rw/g; if echo x > /ro/g 2>/dev/null; then echo writable; fi`)
	res, err := b.Run(context.Background(), sp)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	if got, want := stdout.String(), "from host\n"; got != want {
		t.Errorf("stdout = %q, want %q (a read-only mount must refuse writes)", got, want)
	}
	if got, err := os.ReadFile(filepath.Join(rw, "g")); err != nil || string(got) != "w\n" {
		t.Errorf("file written to the read-write mount: %q, %v", got, err)
	}
}

func TestMountWorkspace(t *testing.T) {
	testEngine(t)
	b := newTestBackend(t, Config{MountWorkspace: true})
	ws := t.TempDir()
	if err := os.WriteFile(filepath.Join(ws, "there.txt"), []byte("present\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sp, stdout, _ := spec(t, ws, `cat there.txt; echo made > made.txt`)
	sp.Outputs = []string{"made.txt"}
	res, err := b.Run(context.Background(), sp)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	if got := stdout.String(); got != "present\n" {
		t.Errorf("stdout = %q; the mounted workspace's file was not visible", got)
	}
	if got, err := os.ReadFile(filepath.Join(ws, "made.txt")); err != nil || string(got) != "made\n" {
		t.Errorf("made.txt = %q, %v", got, err)
	}
}

// failingWriter fails every write.
type failingWriter struct{}

func (failingWriter) Write(p []byte) (int, error) { return 0, io.ErrShortWrite }

func TestWriterFailure(t *testing.T) {
	testEngine(t)
	b := newTestBackend(t, Config{})
	sp, _, _ := spec(t, t.TempDir(), `i=0; while [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done; exit 4`)
	sp.Stdout = failingWriter{}
	res, err := b.Run(context.Background(), sp)
	if res == nil || res.ExitCode != 4 {
		t.Fatalf("Run = %+v, %v; want the task to run to its end (exit 4)", res, err)
	}
	if !errors.Is(err, io.ErrShortWrite) {
		t.Errorf("Run error = %v, want the writer's error", err)
	}
}

func TestMemoryLimit(t *testing.T) {
	cli := testEngine(t)
	info, err := cli.Info(context.Background(), client.InfoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !info.Info.MemoryLimit {
		t.Skip("the engine does not support memory limits")
	}
	b := newTestBackend(t, Config{Memory: 8 << 20, CPUs: 0.5})
	// dd allocates its 64 MiB block at once: the kernel kills it.
	sp, _, stderr := spec(t, t.TempDir(), `dd if=/dev/zero bs=64M count=1 of=/dev/null`)
	res, err := b.Run(context.Background(), sp)
	if err != nil {
		t.Fatalf("Run: %v; stderr %q", err, stderr)
	}
	if res.ExitCode != -1 || res.Signal != "killed" {
		t.Errorf("Result = %+v, want ExitCode -1 and Signal killed for a task over its memory limit", res)
	}
}
