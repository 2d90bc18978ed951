//go:build !unix

package build

import "os"

// linksCounted reports whether linkCount works here: not on this platform,
// where runs keep copies of their own of the pipeline file.
const linksCounted = false

// linkCount is not available here.
func linkCount(os.FileInfo) uint64 { return 0 }
