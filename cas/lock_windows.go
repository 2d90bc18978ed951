//go:build windows

package cas

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// sharedLocks: badger has no read-only mode on Windows, so a read-only
// store opens the index writable and needs the lock to itself.
const sharedLocks = false

// lockOffset is where the locked byte range starts: far past the pid
// record, because a locked range cannot be read by other processes.
const lockOffset = 1 << 31

func tryLock(f *os.File, exclusive bool) (ok bool, err error) {
	flags := uint32(windows.LOCKFILE_FAIL_IMMEDIATELY)
	if exclusive {
		flags |= windows.LOCKFILE_EXCLUSIVE_LOCK
	}
	ol := &windows.Overlapped{Offset: lockOffset}
	err = windows.LockFileEx(windows.Handle(f.Fd()), flags, 0, 1, 0, ol)
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) || errors.Is(err, windows.ERROR_IO_PENDING) {
		return false, nil
	}
	return err == nil, err
}

func unlock(f *os.File) {
	ol := &windows.Overlapped{Offset: lockOffset}
	windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, ol)
}

// isReadOnlyErr reports errors meaning the directory cannot be written.
func isReadOnlyErr(err error) bool {
	return errors.Is(err, os.ErrPermission) || errors.Is(err, windows.ERROR_WRITE_PROTECT)
}

// diskUsage is the space a file takes on disk; Windows reports no block
// count through os.FileInfo, so its size stands for it.
func diskUsage(fi os.FileInfo) int64 { return fi.Size() }
