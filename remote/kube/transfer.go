package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/rustypipe/rustypipe/exec"
)

// tarRecord is the record size of tar: the input stream is padded to a
// multiple of it, as tar itself writes archives.
const tarRecord = 10240

// stderrKeep bounds how much of a helper command's stderr an error quotes.
const stderrKeep = 2048

// attach connects to the running container of the pod through the attach
// subresource: stdin from in (closed at its EOF, which closes the
// container's stdin, as it has stdinOnce), stdout and stderr to out and
// errOut when they are not nil. It returns when the container's streams
// end (it exited) or ctx is done.
func (c *client) attach(ctx context.Context, pod, container string, in io.Reader, out, errOut io.Writer) error {
	req := c.cs.CoreV1().RESTClient().Post().Namespace(c.ns).Resource("pods").Name(pod).SubResource("attach").
		VersionedParams(&corev1.PodAttachOptions{
			Container: container,
			Stdin:     in != nil,
			Stdout:    out != nil,
			Stderr:    errOut != nil,
		}, scheme.ParameterCodec)
	return c.stream(ctx, req.URL(), in, out, errOut)
}

// execIn runs argv in the running container of the pod through the exec
// subresource, with stdin from in (closed at its EOF) when it is not nil. A
// non-zero exit is an error wrapping utilexec.ExitError.
func (c *client) execIn(ctx context.Context, pod, container string, argv []string, in io.Reader, out, errOut io.Writer) error {
	req := c.cs.CoreV1().RESTClient().Post().Namespace(c.ns).Resource("pods").Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: container,
			Command:   argv,
			Stdin:     in != nil,
			Stdout:    out != nil,
			Stderr:    errOut != nil,
		}, scheme.ParameterCodec)
	return c.stream(ctx, req.URL(), in, out, errOut)
}

// stream runs a remote command stream over WebSockets, falling back to
// SPDY for a server or proxy that does not upgrade to WebSockets, as
// kubectl does.
func (c *client) stream(ctx context.Context, u *url.URL, in io.Reader, out, errOut io.Writer) error {
	spdy, err := remotecommand.NewSPDYExecutor(c.rest, "POST", u)
	if err != nil {
		return err
	}
	ws, err := remotecommand.NewWebSocketExecutor(c.rest, "GET", u.String())
	if err != nil {
		return err
	}
	ex, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return err
	}
	return ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: in, Stdout: out, Stderr: errOut})
}

// writeInputs writes a tar stream to w, to be unpacked in the workdir: the
// working directory dir and its parents, and each input, with names
// relative to the workspace (exec.WriteInputTar). The stream is padded to
// whole tar records.
func writeInputs(w io.Writer, workspace, dir string, inputs []string) error {
	cw := &countWriter{w: w}
	if err := exec.WriteInputTar(cw, workspace, "", dir, inputs); err != nil {
		return err
	}
	if pad := (tarRecord - cw.n%tarRecord) % tarRecord; pad > 0 {
		if _, err := cw.Write(make([]byte, pad)); err != nil {
			return err
		}
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// errPipeDone closes the reading end of a pipe whose reader has finished,
// so that a writer still writing stops; it is never reported.
var errPipeDone = errors.New("kube: pipe reader done")

// sendInputs streams the inputs' tar into `tar -x` exec'd in the task
// container, where the task waits to be released. It returns the local
// side's error first (a missing input), then the stream's, with what tar
// said on stderr.
func (a *attempt) sendInputs(ctx context.Context) error {
	s := a.s
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := writeInputs(pw, s.Workspace, s.Dir, s.Inputs)
		pw.CloseWithError(err)
		done <- err
	}()
	var stderr limitedBuffer
	err := a.cl.execIn(ctx, a.name, containerTask, []string{"tar", "-x", "-o", "-f", "-", "-C", Workdir}, pr, nil, &stderr)
	pr.CloseWithError(errPipeDone)
	if werr := <-done; werr != nil && !errors.Is(werr, errPipeDone) {
		return werr
	}
	if err != nil {
		if isContextErr(err) {
			return err
		}
		var ce utilexec.ExitError
		if errors.As(err, &ce) {
			return fmt.Errorf("tar in the %s container exited with status %d%s", containerTask, ce.ExitStatus(), stderr.suffix())
		}
		return fmt.Errorf("exec tar in the %s container: %w%s", containerTask, err, stderr.suffix())
	}
	return nil
}

// copyOutputs copies the files matching s.Outputs from the keeper
// container's workdir into s.OutputRoot(), through exec.Restorer.
func (a *attempt) copyOutputs(ctx context.Context) error {
	s := a.s
	// The keeper started with the task, but need not be running yet.
	wctx, cancel := context.WithTimeoutCause(ctx, a.b.cfg.StartTimeout, errStartTimeout)
	pod, err := a.w.wait(wctx, func(p *corev1.Pod) (bool, error) {
		st := containerStatus(p, containerKeeper)
		return st != nil && (st.State.Running != nil || st.State.Terminated != nil), nil
	})
	cancel()
	if err != nil {
		if errors.Is(err, errStartTimeout) {
			if p, _ := startProblem(pod); p != nil {
				return fmt.Errorf("the %s container did not start within %v: %w", containerKeeper, a.b.cfg.StartTimeout, p)
			}
			return fmt.Errorf("the %s container did not start within %v", containerKeeper, a.b.cfg.StartTimeout)
		}
		return err
	}
	if t := containerStatus(pod, containerKeeper).State.Terminated; t != nil {
		return fmt.Errorf("the %s container exited with status %d (%s %s); its image (helper_image) needs sh, tar and sleep",
			containerKeeper, t.ExitCode, t.Reason, strings.TrimSpace(t.Message))
	}
	return exec.RestoreOutputs(s, func(roots []string, rs *exec.Restorer, allow func(string) bool) ([]string, error) {
		return a.fetch(ctx, roots, rs, allow)
	})
}

// fetch archives the workspace-relative roots ("" for the whole workdir)
// with tar in the keeper container and restores the declared outputs in
// the stream as it arrives. It returns the declared outputs that came as
// hard links, which it did not restore. A root that does not exist is no
// error: the task did not produce it.
func (a *attempt) fetch(ctx context.Context, roots []string, rs *exec.Restorer, allow func(string) bool) ([]string, error) {
	argv := []string{"sh", "-c", outputsScript, "sh", Workdir}
	for _, r := range roots {
		if r == "" {
			argv = append(argv, ".")
		} else {
			argv = append(argv, "./"+r)
		}
	}
	execCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	tarR, tarW := io.Pipe()
	var stderr limitedBuffer
	execDone := make(chan error, 1)
	go func() {
		err := a.cl.execIn(execCtx, a.name, containerKeeper, argv, nil, tarW, &stderr)
		tarW.CloseWithError(err)
		execDone <- err
	}()
	pr, pw := io.Pipe()
	type filtered struct {
		links []string
		err   error
	}
	done := make(chan filtered, 1)
	go func() {
		links, err := filterTar(pw, tarR, allow)
		pw.CloseWithError(err)
		tarR.CloseWithError(errPipeDone) // unblocks the exec's copy if the filter stopped early
		done <- filtered{links, err}
	}()
	_, xerr := rs.ExtractTar(pr, allow)
	pr.CloseWithError(errPipeDone)
	f := <-done
	if f.err != nil && errors.Is(f.err, errPipeDone) {
		f.err = nil
	}
	if xerr != nil || f.err != nil {
		cancel() // the rest of the archive is not wanted
	}
	eerr := <-execDone
	// An exec that failed on its own is the root of the other errors, which
	// then wrap it; one ended by the cancel above is not.
	if eerr != nil && !errors.Is(eerr, errPipeDone) &&
		((xerr == nil && f.err == nil) || errors.Is(xerr, eerr) || errors.Is(f.err, eerr)) {
		if isContextErr(eerr) {
			return nil, eerr
		}
		var ce utilexec.ExitError
		if errors.As(eerr, &ce) {
			return nil, fmt.Errorf("tar in the %s container exited with status %d%s", containerKeeper, ce.ExitStatus(), stderr.suffix())
		}
		return nil, fmt.Errorf("exec tar in the %s container: %w%s", containerKeeper, eerr, stderr.suffix())
	}
	if xerr != nil {
		return nil, xerr
	}
	if f.err != nil {
		return nil, f.err
	}
	return f.links, nil
}

// filterTar rewrites tar's archive of workdir paths ("./"-prefixed) to
// workspace-relative names for ExtractTar, through exec.FilterOutputTar.
func filterTar(dst io.Writer, src io.Reader, allow func(string) bool) ([]string, error) {
	return exec.FilterOutputTar(dst, src, func(name string) (string, error) {
		rel := strings.TrimSuffix(name, "/")
		for strings.HasPrefix(rel, "./") {
			rel = rel[2:]
		}
		return rel, nil
	}, allow)
}

// limitedBuffer keeps the first stderrKeep bytes written to it. Safe for
// concurrent use.
type limitedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := stderrKeep - len(l.buf); room > 0 {
		l.buf = append(l.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// suffix is ": " and the kept text in one line, or "" when there is none.
func (l *limitedBuffer) suffix() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := strings.Join(strings.Fields(string(l.buf)), " ")
	if s == "" {
		return ""
	}
	return ": " + s
}
