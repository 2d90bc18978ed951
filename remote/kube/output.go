package kube

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc64"
	"io"

	corev1 "k8s.io/api/core/v1"
)

// The attach stream can end before the last of a task's output was
// forwarded: the streaming path (runtime, kubelet, API server, client)
// drops what is in flight when the container exits, rarely and without an
// error. A task's output is cached and interpolated downstream, so it must
// never be cut short silently. After the task exited, Run therefore reads
// the task container's log, which the runtime writes from the same pipes,
// and compares its length with what the attach delivered plus the gate's
// probe lines, which the container echoed on both streams before the task
// started (the log interleaves the streams in the order the runtime read
// them, so a probe line is not always before the task's first line):
//
//   - equal: the output is complete;
//   - the log shorter: it was rotated (or the runtime is still writing it);
//     nothing can be checked, and nothing is reported;
//   - the log longer: output was lost. The log is read again one stream at
//     a time (the PodLogsQuerySplitStreams feature of Kubernetes 1.32 and
//     later); when each stream's log, after its leading probe lines, starts
//     with exactly the bytes that arrived, the rest is written to the
//     task's stdout or stderr and a message says so. Otherwise the task
//     fails with an error that says how many bytes were lost, rather than
//     return output that is cut short.
//
// A log that cannot be read at all (no `pods/log` permission) is reported
// once per backend and leaves the output as the attach delivered it.

// tally counts what one output stream delivered to the task's writer, and
// a checksum of it, so that a log can be checked to start with it.
type tally struct {
	n   int64
	sum uint64
}

var crcTable = crc64.MakeTable(crc64.ECMA)

func (t *tally) add(p []byte) {
	t.n += int64(len(p))
	t.sum = crc64.Update(t.sum, crcTable, p)
}

// logReader copies the task container's log to w: stream is nil for both
// streams interleaved, else "Stdout" or "Stderr".
type logReader func(ctx context.Context, stream *string, w io.Writer) error

// readLog is the logReader of the attempt's pod.
func (a *attempt) readLog(ctx context.Context, stream *string, w io.Writer) error {
	rc, err := a.cl.pods().GetLogs(a.name, &corev1.PodLogOptions{Container: containerTask, Stream: stream}).Stream(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(w, rc)
	return err
}

// outputLoss is the error of a task whose lost output could not be
// recovered from the container log.
type outputLoss struct {
	pod       string
	lost      int64
	logged    int64
	why       string
	arrivedAt [2]int64
}

func (e *outputLoss) Error() string {
	return fmt.Sprintf("the attach stream of pod %s lost %d bytes of the task's output (%d bytes arrived, stdout %d and stderr %d; the container log holds %d), and they could not be recovered: %s",
		e.pod, e.lost, e.arrivedAt[0]+e.arrivedAt[1], e.arrivedAt[0], e.arrivedAt[1], e.logged, e.why)
}

// recoverOutput checks what arrived (got, per stream) against the log read
// by read, in which the gate's probe line was echoed probes times on each
// stream, and returns the bytes each stream is missing, nil when none is.
// It returns an *outputLoss when output was lost and cannot be recovered,
// and another error when the log could not be read.
func recoverOutput(ctx context.Context, pod string, got [2]tally, probe []byte, probes int, read logReader) ([2][]byte, error) {
	var tails [2][]byte
	all := &countWriter{w: io.Discard}
	if err := read(ctx, nil, all); err != nil {
		return tails, err
	}
	echoed := 2 * int64(probes) * int64(len(probe))
	logged := all.n - echoed // the task's output in the log
	arrived := got[0].n + got[1].n
	if logged <= arrived {
		return tails, nil
	}
	loss := &outputLoss{pod: pod, lost: logged - arrived, logged: logged, arrivedAt: [2]int64{got[0].n, got[1].n}}
	var raw int64
	var logs [2]bytes.Buffer
	for i, st := range [2]string{corev1.LogStreamStdout, corev1.LogStreamStderr} {
		f := &probeFilter{probe: probe, w: &logs[i]}
		c := &countWriter{w: f}
		if err := read(ctx, &st, c); err != nil {
			return tails, err
		}
		f.flush()
		raw += c.n
	}
	if raw != all.n {
		// A server without the feature ignores the stream option and
		// returns both streams interleaved each time.
		loss.why = "the cluster cannot return stdout and stderr apart (feature gate PodLogsQuerySplitStreams)"
		return tails, loss
	}
	for i := range logs {
		b := logs[i].Bytes()
		if int64(len(b)) < got[i].n || crc64.Checksum(b[:got[i].n], crcTable) != got[i].sum {
			loss.why = fmt.Sprintf("the container log's %s does not start with what arrived", [2]string{"stdout", "stderr"}[i])
			return [2][]byte{}, loss
		}
		if rest := b[got[i].n:]; len(rest) > 0 {
			tails[i] = rest
		}
	}
	return tails, nil
}

// checkOutput runs recoverOutput for the attempt after its task exited and
// writes what is recovered to the task's stdout and stderr.
func (a *attempt) checkOutput(ctx context.Context) error {
	a.mu.Lock()
	got := a.got
	a.mu.Unlock()
	read := logReader(a.readLog)
	if a.b.testLogReader != nil {
		read = a.b.testLogReader(read)
	}
	tails, err := recoverOutput(ctx, a.name, got, a.gate.probe, a.gate.probes(), read)
	if loss, ok := err.(*outputLoss); ok {
		return fmt.Errorf("kube: task %q: %w", a.s.Task, loss)
	}
	if err != nil {
		if ctx.Err() == nil { // a stop is not a reason to warn
			a.b.logCheckFailed.Do(func() {
				a.b.log(fmt.Sprintf("kube: cannot read container logs to check that no output was lost: %v (the check needs pods/log get)", err))
			})
		}
		return nil
	}
	n := 0
	for i, w := range [2]io.Writer{a.s.Stdout, a.s.Stderr} {
		if len(tails[i]) > 0 {
			a.writer(w, i).Write(tails[i])
			n += len(tails[i])
		}
	}
	if n > 0 {
		a.b.log(fmt.Sprintf("kube: task %q: the attach stream of pod %s lost %d bytes of output; they were recovered from the container log", a.s.Task, a.name, n))
	}
	return nil
}
