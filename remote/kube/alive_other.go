//go:build !unix

package kube

import "os"

// processAlive reports whether a process with this pid exists. On Windows
// os.FindProcess opens the process and fails when there is none; elsewhere
// a process is assumed alive, so that nothing is reaped by mistake.
func processAlive(pid int) bool {
	if pid == ownPid {
		return true
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	p.Release()
	return true
}
