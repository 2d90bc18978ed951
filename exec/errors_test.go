package exec

import (
	"context"
	"errors"
	"testing"
)

func TestStartError(t *testing.T) {
	cause := errors.New("boom")
	tests := []struct {
		err  *StartError
		want string
	}{
		{&StartError{Backend: "b", Task: "t", Msg: "closed"}, `b: start task "t": closed`},
		{&StartError{Backend: "b", Task: "t", Msg: "engine", Err: cause}, `b: start task "t": engine: boom`},
		{&StartError{Backend: "b", Task: "t", Err: cause}, `b: start task "t": boom`},
		{&StartError{Backend: "b", Task: "t", Host: "h1", Msg: "no shell"}, `b: start task "t" on h1: no shell`},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
		if !errors.Is(tc.err, ErrStart) {
			t.Errorf("%q does not wrap ErrStart", tc.want)
		}
		if errors.Is(tc.err, cause) != (tc.err.Err != nil) {
			t.Errorf("%q: errors.Is(cause) = %v", tc.want, !(tc.err.Err != nil))
		}
	}
}

func TestStopError(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := StopError(ctx, "b", "t", "stopped")
	if err.Error() != `b: task "t" stopped: context canceled` || !errors.Is(err, context.Canceled) {
		t.Errorf("plain cancel: %v", err)
	}
	why := errors.New("interrupted")
	ctx, cancelCause := context.WithCancelCause(context.Background())
	cancelCause(why)
	err = StopError(ctx, "b", "t", "stopped")
	if err.Error() != `b: task "t" stopped: interrupted (context canceled)` || !errors.Is(err, why) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancel with cause: %v", err)
	}
}
