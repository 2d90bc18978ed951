package hashing

import (
	"os"
	"strings"
	"sync"
	"time"
)

// The racy window is how close to the time a file is read its modification
// (or change) time may be before its stat data stops vouching for its
// content: a rewrite within the same tick of the file system's clock could
// leave them as they were. Git has the same rule ("racy git").
//
// On file systems of this machine that keep times to the nanosecond (ext4,
// XFS, Btrfs, tmpfs, overlayfs, F2FS, ZFS, bcachefs on Linux), the tick is
// the kernel's clock tick, at most 10 ms, and the window is ten times
// that. Elsewhere, and for a file whose change time has no sub-second part
// (such as ext4 with 128-byte inodes, which keeps whole seconds), it is
// 2 s, the coarsest granularity in common use (FAT's): network file
// systems take their times from the server's clock, which may differ from
// this one. RUSTYPIPE_RACY_WINDOW (a Go duration such as "2s") sets the
// window for every file instead.
const (
	fineRacyWindow   = 100 * time.Millisecond
	coarseRacyWindow = 2 * time.Second
)

var (
	// fineDevs records, per device, whether its file system keeps fine
	// times (fineFS), learnt at the first file of it that a memo stats.
	fineDevs sync.Map // uint64 → bool

	// racyOverride is RUSTYPIPE_RACY_WINDOW, or 0.
	racyOverride = sync.OnceValue(func() time.Duration { return parseRacyWindow(os.Getenv("RUSTYPIPE_RACY_WINDOW")) })
)

// parseRacyWindow reads a RUSTYPIPE_RACY_WINDOW value: a positive Go
// duration, else 0 (not set).
func parseRacyWindow(s string) time.Duration {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil || d <= 0 {
		return 0
	}
	return d
}

// noteFS learns whether the file system of dev, which holds path, keeps
// fine times, unless it is known already.
func noteFS(dev uint64, path string) {
	if _, ok := fineDevs.Load(dev); !ok {
		fineDevs.Store(dev, fineFS(path))
	}
}

// racyWindow is the racy window of a file on device dev whose change time
// is ctimeNs. A device not learnt through noteFS gets the coarse window.
func racyWindow(dev uint64, ctimeNs int64) time.Duration {
	if d := racyOverride(); d > 0 {
		return d
	}
	if ctimeNs%int64(time.Second) != 0 {
		if fine, ok := fineDevs.Load(dev); ok && fine.(bool) {
			return fineRacyWindow
		}
	}
	return coarseRacyWindow
}
