//go:build linux

package hashing

import (
	"errors"
	"io/fs"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// StatRoot stats paths relative to a directory opened once. On Linux each
// stat resolves only the relative path (fstatat on the directory) and
// allocates nothing, which is what checking thousands of files (the no-op
// record) spends its time on. Its Stats equal Lstat's.
type StatRoot struct {
	fd int
}

// OpenStatRoot opens root for StatRoot.Lstat; Close it when done.
func OpenStatRoot(root string) (*StatRoot, error) {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: root, Err: err}
	}
	return &StatRoot{fd: fd}, nil
}

// Close releases the directory.
func (r *StatRoot) Close() error { return unix.Close(r.fd) }

// Lstat is Lstat of root/rel, rel "/"-separated.
func (r *StatRoot) Lstat(rel string) (st Stat, exists bool, err error) {
	var s unix.Stat_t
	for {
		err = unix.Fstatat(r.fd, filepath.FromSlash(rel), &s, unix.AT_SYMLINK_NOFOLLOW)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if errors.Is(err, unix.ENOENT) {
		return Stat{}, false, nil
	}
	if err != nil {
		return Stat{}, false, &fs.PathError{Op: "lstat", Path: rel, Err: err}
	}
	return statOfUnix(&s).export(), true, nil
}

// statOfUnix is statOf of a stat buffer the kernel filled.
func statOfUnix(s *unix.Stat_t) fileStat {
	return fileStat{
		size:    s.Size,
		mtimeNs: s.Mtim.Nano(),
		ctimeNs: s.Ctim.Nano(),
		ino:     s.Ino,
		dev:     s.Dev,
		mode:    uint32(fileMode(s.Mode)),
	}
}

// fileMode converts st_mode as package os does.
func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & syscall.S_IFMT {
	case syscall.S_IFBLK:
		mode |= fs.ModeDevice
	case syscall.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFDIR:
		mode |= fs.ModeDir
	case syscall.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case syscall.S_IFLNK:
		mode |= fs.ModeSymlink
	case syscall.S_IFSOCK:
		mode |= fs.ModeSocket
	}
	if m&syscall.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&syscall.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&syscall.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}
