//go:build linux || darwin || freebsd

package cas

import "golang.org/x/sys/unix"

// freeSpace returns the bytes available to us on the file system holding
// path, or -1 when unknown.
func freeSpace(path string) int64 {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return -1
	}
	return int64(st.Bavail) * int64(st.Bsize)
}
