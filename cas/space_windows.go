//go:build windows

package cas

import "golang.org/x/sys/windows"

// freeSpace returns the bytes available to us on the volume holding path,
// or -1 when unknown.
func freeSpace(path string) int64 {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return -1
	}
	var avail, total, free uint64
	if err := windows.GetDiskFreeSpaceEx(p, &avail, &total, &free); err != nil {
		return -1
	}
	return int64(avail)
}
