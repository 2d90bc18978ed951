//go:build !(linux || openbsd || dragonfly || solaris || illumos || aix || darwin || ios || freebsd || netbsd)

package hashing

import "io/fs"

// hasCtime reports whether sysStat returns an inode change time here. On
// Windows and other systems the memo relies on size, mtime and mode only,
// as git does there.
const hasCtime = false

// sysStat returns zeros: no portable device, inode or change time here.
func sysStat(fs.FileInfo) (dev, ino uint64, ctimeNs int64) { return 0, 0, 0 }
