//go:build unix

package kube

import (
	"errors"
	"syscall"
)

// processAlive reports whether a process with this pid exists. A process
// that belongs to another user (EPERM) exists; only ESRCH means gone.
func processAlive(pid int) bool {
	if pid == ownPid {
		return true
	}
	err := syscall.Kill(pid, 0)
	return err == nil || !errors.Is(err, syscall.ESRCH)
}
