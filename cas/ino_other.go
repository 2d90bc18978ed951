//go:build !unix

package cas

import "io/fs"

// fileIno is 0 where the platform has no inode numbers; size and mtime
// still bind the key filter to its index.
func fileIno(fs.FileInfo) uint64 { return 0 }
