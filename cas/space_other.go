//go:build !linux && !darwin && !freebsd && !windows

package cas

// freeSpace returns -1: free space is not known on this platform.
func freeSpace(string) int64 { return -1 }
