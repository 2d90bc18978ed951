//go:build unix

package cas

import (
	"io/fs"
	"syscall"
)

// fileIno is the file's inode number.
func fileIno(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
