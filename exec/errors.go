package exec

import (
	"context"
	"errors"
	"fmt"
)

// StartError is the error of a task that a backend could not start. It
// wraps ErrStart and Err without repeating ErrStart's text:
// `<Backend>: start task "<Task>"[ on <Host>]: <Msg>: <Err>`, leaving out
// the parts that are empty.
type StartError struct {
	Backend string // the message's prefix, such as "docker"
	Task    string // Spec.Task
	Host    string // where the task was to run; may be empty
	Msg     string // what failed; may be empty when Err says it
	Err     error  // the underlying error; may be nil
}

func (e *StartError) Error() string {
	s := fmt.Sprintf("%s: start task %q", e.Backend, e.Task)
	if e.Host != "" {
		s += " on " + e.Host
	}
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns ErrStart and Err when it is not nil.
func (e *StartError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrStart}
	}
	return []error{ErrStart, e.Err}
}

// StopError is the error of a task that stopped because ctx is done:
// `<backend>: task "<task>" <what>: <cause>`. It wraps context.Cause(ctx),
// and ctx.Err() when the cause is a different error, so that errors.Is
// works for both.
func StopError(ctx context.Context, backend, task, what string) error {
	cause, ctxErr := context.Cause(ctx), ctx.Err()
	if ctxErr != nil && !errors.Is(cause, ctxErr) {
		return fmt.Errorf("%s: task %q %s: %w (%w)", backend, task, what, cause, ctxErr)
	}
	return fmt.Errorf("%s: task %q %s: %w", backend, task, what, cause)
}
