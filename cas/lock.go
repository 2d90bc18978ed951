package cas

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// dirLock is the lock on a cache directory: an advisory lock on the file
// v1/lock, exclusive for a writer and shared for read-only stores where
// the platform allows it. An exclusive holder writes its pid into the file
// so that a waiting process can name it; it empties the file on release.
//
// The lock is our own, taken before badger's, so that badger's lock error
// is never what a user sees.
//
// A process that waits for the lock says so on a second file, v1/lockwait
// (markWaiting), which the holder can ask about (contended).
type dirLock struct {
	f         *os.File // nil when no lock file could be opened (read-only directory)
	exclusive bool
	writable  bool // f is open for writing

	waitPath string     // v1/lockwait
	waitMu   sync.Mutex // guards waitF
	waitF    *os.File   // the holder's descriptor of waitPath, opened by contended
}

// lockWaitPath is the waiting mark beside the lock file at path.
func lockWaitPath(path string) string { return filepath.Join(filepath.Dir(path), lockWaitName) }

// acquireLock takes the lock at path for the cache directory dir. It
// retries while another process holds it: after lockPollFirst it calls
// onWait once with the holder's pid, then backs off up to lockPollMax until
// ctx is done or wait has passed (wait 0: no limit; wait < 0: no waiting).
func acquireLock(ctx context.Context, path, dir string, exclusive bool, wait time.Duration, onWait func(pid int)) (*dirLock, error) {
	if !sharedLocks {
		exclusive = true
	}
	l := &dirLock{exclusive: exclusive, waitPath: lockWaitPath(path)}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err == nil {
		l.writable = true
	} else if !exclusive && isReadOnlyErr(err) {
		f, err = os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			// A read-only directory without a lock file was never
			// written by rustypipe as a writer; badger's own shared
			// lock still guards the index.
			return l, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cas: lock %s: %w", dir, err)
	}
	l.f = f

	start := time.Now()
	delay := 10 * time.Millisecond
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	waited := false
	var mark *os.File // held while waiting: see markWaiting
	defer func() { unmarkWaiting(mark) }()
	for {
		ok, err := tryLock(f, exclusive)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("cas: lock %s: %w", dir, err)
		}
		if ok {
			break
		}
		if mark == nil && wait >= 0 {
			mark = markWaiting(l.waitPath)
		}
		if !waited && onWait != nil && time.Since(start) >= lockPollFirst {
			waited = true
			onWait(holderPID(path))
		}
		if wait < 0 {
			f.Close()
			return nil, &LockedError{Dir: dir, PID: holderPID(path)}
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-timeout:
			t.Stop()
			f.Close()
			return nil, &LockedError{Dir: dir, PID: holderPID(path)}
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, fmt.Errorf("%w (%w)", &LockedError{Dir: dir, PID: holderPID(path)}, context.Cause(ctx))
		}
		delay = min(delay*2, lockPollMax)
		if !waited && onWait != nil {
			// Poll again right at the OnWait moment.
			delay = min(delay, max(time.Millisecond, lockPollFirst-time.Since(start)))
		}
	}
	if exclusive {
		l.writePID()
	}
	return l, nil
}

// markWaiting tells the holder of the lock that this process waits for
// it: it takes a shared lock on the file at path (v1/lockwait) and returns
// it, to be released with unmarkWaiting when the wait is over. A writable
// holder asks (contended) before it keeps the lock past its turn. nil when
// the file cannot be opened or locked: the holder then still yields at its
// next idle moment.
func markWaiting(path string) *os.File {
	f, err := openMark(path)
	if err != nil {
		return nil
	}
	if ok, err := tryLock(f, false); !ok || err != nil {
		f.Close()
		return nil
	}
	return f
}

func unmarkWaiting(f *os.File) {
	if f != nil {
		unlock(f)
		f.Close()
	}
}

func openMark(path string) (*os.File, error) { return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666) }

// contended reports whether another process waits for this lock: whether
// it holds a lock on the waiting mark. The mark is opened on first use and
// kept until release; an error counts as contended.
func (l *dirLock) contended() bool {
	l.waitMu.Lock()
	defer l.waitMu.Unlock()
	if l.waitF == nil {
		f, err := openMark(l.waitPath)
		if err != nil {
			return true
		}
		l.waitF = f
	}
	ok, err := tryLock(l.waitF, true)
	if ok && err == nil {
		unlock(l.waitF)
		return false
	}
	return true
}

// writePID records our pid for processes that wait on the lock. It is a
// courtesy: failing to write it changes nothing else.
func (l *dirLock) writePID() {
	if l.f == nil || !l.writable {
		return
	}
	if err := l.f.Truncate(0); err == nil {
		l.f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
}

// holderPID reads the pid an exclusive holder wrote; 0 when unknown.
func holderPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n <= 0 {
		return 0
	}
	return n
}

// canWrite reports whether the lock can be upgraded to exclusive.
func (l *dirLock) canWrite() bool { return l.f != nil && l.writable }

// upgrade converts a shared lock to an exclusive one without waiting.
func (l *dirLock) upgrade() error {
	if l.f == nil {
		return ErrReadOnly
	}
	if l.exclusive {
		return nil
	}
	ok, err := tryLock(l.f, true)
	if err != nil {
		return err
	}
	if !ok {
		return ErrLocked
	}
	l.exclusive = true
	l.writePID()
	return nil
}

// downgrade converts an exclusive lock taken by upgrade back to shared.
func (l *dirLock) downgrade() {
	if l.f == nil || !l.exclusive || !sharedLocks {
		return
	}
	l.f.Truncate(0)
	if ok, err := tryLock(l.f, false); ok && err == nil {
		l.exclusive = false
	}
}

// release empties the pid record and drops the lock. Safe to call twice.
func (l *dirLock) release() {
	if l == nil {
		return
	}
	l.waitMu.Lock()
	if l.waitF != nil {
		l.waitF.Close()
		l.waitF = nil
	}
	l.waitMu.Unlock()
	if l.f == nil {
		return
	}
	if l.exclusive && l.writable {
		l.f.Truncate(0)
	}
	unlock(l.f)
	l.f.Close()
	l.f = nil
}
