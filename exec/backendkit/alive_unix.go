//go:build unix

package backendkit

import (
	"errors"
	"os"
	"syscall"
)

// ProcessAlive reports whether a process with this pid exists on this
// host. This process is always alive. A process that belongs to another
// user (EPERM) exists; only ESRCH means gone.
func ProcessAlive(pid int) bool {
	if pid == os.Getpid() {
		return true
	}
	err := syscall.Kill(pid, 0)
	return err == nil || !errors.Is(err, syscall.ESRCH)
}
