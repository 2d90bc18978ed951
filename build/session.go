package build

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rustypipe/rustypipe/cas"
)

// idleClose is how long an open store stays open with nothing to do. Badger
// lets one process hold a directory; closing soon after the last use lets
// another build on the same cache directory take its turn while this one
// runs tasks. Reopening costs about 0.5 ms for lookups and 4-8 ms for
// writes (cas's BenchmarkLookupSession, BenchmarkOpenClose).
const idleClose = 50 * time.Millisecond

// maxHold bounds how long one writable session stays open while tasks keep
// using it and another process waits for the store (cas.Store.Contended);
// then it is closed at the next release and reopened after yieldGap, so
// that the other process gets a turn. While nobody waits it stays open:
// each reopening cost a cold build an index open, a memtable flush and a
// journal merge.
const (
	maxHold  = 500 * time.Millisecond
	yieldGap = 20 * time.Millisecond
)

// errNoCache is a read-only lookup in a cache directory that does not
// exist yet: every lookup is a miss, and nothing is worth a warning.
var errNoCache = errors.New("no cache directory yet")

// session opens the store on first use and closes it when idle, so that no
// process holds the cache directory for a whole build. Lookups open it in
// cas's shared lookup mode, which any number of processes may hold at once;
// writes open it exclusively, and a writable store serves lookups too.
// (Most writes need no writable session: see cacheLayer.put.)
// Safe for concurrent use; every acquire is paired with a release.
type session struct {
	opts     cas.Options // Dir, LockWait; the mode is chosen per acquire
	canWrite bool        // the cache mode allows writes
	rep      Reporter

	mu       sync.Mutex
	cond     *sync.Cond
	st       *cas.Store
	writable bool
	opened   time.Time
	refs     int
	timer    *time.Timer
	yieldTo  time.Time // do not reopen before this
	warned   bool
	closed   bool // close was called: prefetch opens nothing
}

func newSession(o cas.Options, canWrite bool, rep Reporter) *session {
	s := &session{opts: o, canWrite: canWrite, rep: rep}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// acquire returns an open store, writable when write is set.
func (s *session) acquire(ctx context.Context, write bool) (*cas.Store, error) {
	if write && !s.canWrite {
		return nil, cas.ErrReadOnly
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.timer != nil {
			s.timer.Stop()
			s.timer = nil
		}
		if s.st != nil && (s.writable || !write) {
			s.refs++
			return s.st, nil
		}
		if s.st != nil && s.refs > 0 {
			s.cond.Wait() // a lookup session is in use; reopen writable after it
			continue
		}
		if s.st != nil {
			s.closeLocked()
		}
		if wait := time.Until(s.yieldTo); wait > 0 {
			time.Sleep(wait)
		}
		if err := s.openLocked(ctx, write, s.opts.LockWait); err != nil {
			return nil, err
		}
	}
}

// prefetch opens a lookup session in the background, so that a lookup that
// comes soon finds it open (an open costs about a millisecond, which a
// build that re-runs one task would otherwise wait for). It does not wait
// for another process's hold on the store: then the first lookup opens it
// as usual. Unused, it closes when idle, like any session. The channel is
// closed when the attempt is over.
func (s *session) prefetch() <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.mu.Lock()
		opened := !s.closed && s.st == nil && s.openLocked(context.Background(), false, -1) == nil
		if opened {
			s.refs++
		}
		s.mu.Unlock()
		if opened {
			s.release()
		}
	}()
	return done
}

// openLocked opens the store, waiting up to wait for another process's hold
// (cas.Options.LockWait).
func (s *session) openLocked(ctx context.Context, write bool, wait time.Duration) error {
	o := s.opts
	o.Lookup = !write
	o.LockWait = wait
	o.OnWait = func(pid int) {
		if !s.warned {
			s.warned = true
			s.rep.Warn(fmt.Sprintf("waiting for cache lock (pid %d)", pid))
		}
	}
	st, err := cas.Open(ctx, o)
	if !write && errors.Is(err, cas.ErrNotFound) {
		return errNoCache
	}
	if err != nil {
		return err
	}
	s.st, s.writable, s.opened = st, write, time.Now()
	return nil
}

func (s *session) closeLocked() error {
	err := s.st.Close()
	if s.writable && time.Since(s.opened) > maxHold {
		s.yieldTo = time.Now().Add(yieldGap)
	}
	s.st = nil
	s.cond.Broadcast()
	return err
}

func (s *session) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refs--
	if s.refs > 0 || s.st == nil {
		return
	}
	s.cond.Broadcast()
	if s.writable && time.Since(s.opened) > maxHold && s.st.Contended() {
		s.closeLocked()
		return
	}
	st := s.st
	s.timer = time.AfterFunc(idleClose, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.refs == 0 && s.st == st {
			s.closeLocked()
		}
	})
}

func (s *session) close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if s.st == nil {
		return nil
	}
	return s.closeLocked()
}
