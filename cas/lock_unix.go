//go:build !windows

package cas

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// sharedLocks: read-only stores share the lock, as badger's read-only mode
// lets several processes read one directory.
const sharedLocks = true

// tryLock takes an flock without blocking. ok is false when another open
// file description holds a conflicting lock. flock on a descriptor that
// already holds a lock converts it (shared ⇄ exclusive).
func tryLock(f *os.File, exclusive bool) (ok bool, err error) {
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	for {
		err = unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if errors.Is(err, unix.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}

func unlock(f *os.File) { unix.Flock(int(f.Fd()), unix.LOCK_UN) }

// isReadOnlyErr reports errors meaning the directory cannot be written.
func isReadOnlyErr(err error) bool {
	return errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM)
}

// diskUsage is the space a file takes on disk: its allocated blocks, so
// that sparse files (badger maps its logs larger than their content) count
// for what they use.
func diskUsage(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512
	}
	return fi.Size()
}
