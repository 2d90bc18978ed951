package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrImageUnavailable is wrapped by the error of Run and Identity when the
// task's image is not present locally and could not be pulled (pull is
// "never", or the pull failed). Such a task never ran.
var ErrImageUnavailable = errors.New("docker: image not available")

// imageError is an image that is neither present nor pullable. Its message
// names the image and gives the engine's reason in one short line.
type imageError struct {
	image  string
	reason string
	err    error // the engine's error, may be nil; its text is in reason
}

func (e *imageError) Error() string {
	return fmt.Sprintf("image %q is not available: %s", e.image, e.reason)
}

func (e *imageError) Unwrap() []error {
	if e.err == nil {
		return []error{ErrImageUnavailable}
	}
	return []error{ErrImageUnavailable, e.err}
}

// engineError is an error from the engine shown as engineText shows it,
// still unwrapping to the client's error for errors.Is.
type engineError struct{ err error }

func (e engineError) Error() string { return engineText(e.err) }
func (e engineError) Unwrap() error { return e.err }

// engineText shortens an error from the engine to its first line, without
// the client's "Error response from daemon: " prefix, at most 300 bytes.
func engineText(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "Error response from daemon: ")
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	const max = 300 // long enough for a registry URL and its reason
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}

// isContextErr reports whether err comes from a cancelled or expired
// context rather than from the engine.
func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
