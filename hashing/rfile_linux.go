package hashing

import (
	"errors"
	"io"
	"io/fs"

	"golang.org/x/sys/unix"
)

// rfile is a file opened for hashing. On Linux it is a bare descriptor,
// which skips what an *os.File costs for every file hashed: an allocation
// with a cleanup, and a registration with Go's poller that a regular file
// always refuses (an epoll_ctl call that fails).
type rfile struct{ fd int }

func openR(path string) (rfile, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return rfile{-1}, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return rfile{fd}, nil
	}
}

// stat is statOf of the open file.
func (f rfile) stat() (fileStat, error) {
	var s unix.Stat_t
	for {
		err := unix.Fstat(f.fd, &s)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fileStat{}, &fs.PathError{Op: "fstat", Err: err}
		}
		return statOfUnix(&s), nil
	}
}

// read is io.Reader's Read: io.EOF at the end.
func (f rfile) read(b []byte) (int, error) {
	for {
		n, err := unix.Read(f.fd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, &fs.PathError{Op: "read", Err: err}
		}
		if n == 0 && len(b) > 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

func (f rfile) close() error { return unix.Close(f.fd) }
