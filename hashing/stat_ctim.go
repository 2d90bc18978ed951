//go:build linux || openbsd || dragonfly || solaris || illumos || aix

package hashing

import (
	"io/fs"
	"syscall"
)

// hasCtime reports whether sysStat returns an inode change time here.
const hasCtime = true

// sysStat returns the device, inode and change time (ns) of fi, or zeros when
// fi does not come from the operating system.
func sysStat(fi fs.FileInfo) (dev, ino uint64, ctimeNs int64) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, 0
	}
	return uint64(st.Dev), uint64(st.Ino), st.Ctim.Nano()
}
