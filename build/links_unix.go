//go:build unix

package build

import (
	"os"
	"syscall"
)

// linksCounted reports whether linkCount works here.
const linksCounted = true

// linkCount is the number of hard links to the file fi describes.
func linkCount(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 0
}
