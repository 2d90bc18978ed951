package external

import "time"

// SetTimeouts shortens the client's stop margin and close grace for a test
// and returns a function that restores them.
func SetTimeouts(stop, close time.Duration) (restore func()) {
	oldStop, oldClose := stopMargin, closeGrace
	stopMargin, closeGrace = stop, close
	return func() { stopMargin, closeGrace = oldStop, oldClose }
}
