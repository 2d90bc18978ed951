//go:build !unix

package backendkit

import "os"

// ProcessAlive reports whether a process with this pid exists on this
// host. This process is always alive. On Windows os.FindProcess opens the
// process and fails when there is none; elsewhere a process is assumed
// alive, so that nothing is reaped by mistake.
func ProcessAlive(pid int) bool {
	if pid == os.Getpid() {
		return true
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	p.Release()
	return true
}
