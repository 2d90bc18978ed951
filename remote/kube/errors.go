package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/rustypipe/rustypipe/exec"
)

// ErrPodNotStarted is wrapped, with exec.ErrStart, by the error of a task
// whose pod never ran it: an image that is missing or cannot be pulled, a
// pod that cannot be scheduled or whose containers cannot be created within
// Config.StartTimeout, a pod deleted or failed before the task started, or
// inputs that could not be unpacked. The message names the reason that
// Kubernetes gave.
var ErrPodNotStarted = errors.New("pod did not start")

// errStartTimeout is the cause of the start phase's context when
// Config.StartTimeout passes.
var errStartTimeout = errors.New("start timeout")

// podError is why a pod did not start, as Kubernetes reported it.
type podError struct {
	pod    string
	reason string // e.g. "ErrImageNeverPull", "Unschedulable"
	msg    string
}

func (e *podError) Error() string {
	if e.msg == "" {
		return fmt.Sprintf("pod %s: %s", e.pod, e.reason)
	}
	return fmt.Sprintf("pod %s: %s: %s", e.pod, e.reason, e.msg)
}

func (e *podError) Unwrap() error { return ErrPodNotStarted }

// notStarted is the error of a task whose pod did not run it: a stop when
// ctx is done (the failure is then its consequence), else a start error.
func notStarted(ctx context.Context, task, msg string, err error) error {
	if ctx.Err() != nil {
		return exec.StopError(ctx, "kube", task, "not started")
	}
	return &exec.StartError{Backend: "kube", Task: task, Msg: msg, Err: err}
}

// apiError is an error from the API server shown in one short line, still
// unwrapping to the client's error for errors.Is and apierrors.
type apiError struct{ err error }

func (e apiError) Error() string { return apiText(e.err) }
func (e apiError) Unwrap() error { return e.err }

// apiText shortens an error from the API server to its first line, at most
// 400 bytes (enough for a quota or admission message).
func apiText(err error) string {
	s := err.Error()
	if st, ok := err.(apierrors.APIStatus); ok && st.Status().Message != "" {
		s = st.Status().Message
	}
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	const max = 400
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}

// isContextErr reports whether err comes from a cancelled or expired
// context rather than from the cluster.
func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
