package backendkit

import "context"

// Limiter bounds how many attempts a backend runs at once. A nil *Limiter
// (and NewLimiter(0)) sets no bound. Safe for concurrent use; it lives as
// long as its backend.
type Limiter struct {
	sem chan struct{}
}

// NewLimiter returns a Limiter of n slots, or nil, no bound, when n <= 0.
func NewLimiter(n int) *Limiter {
	if n <= 0 {
		return nil
	}
	return &Limiter{sem: make(chan struct{}, n)}
}

// Acquire takes a slot, waiting for one until ctx is done; it then returns
// ctx.Err() and holds no slot. Each successful Acquire needs one Release.
func (l *Limiter) Acquire(ctx context.Context) error {
	if l == nil {
		return nil
	}
	select {
	case l.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Release gives back a slot that Acquire took.
func (l *Limiter) Release() {
	if l != nil {
		<-l.sem
	}
}
