//go:build !linux

package hashing

import "os"

// rfile is a file opened for hashing (see rfile_linux.go).
type rfile struct{ f *os.File }

func openR(path string) (rfile, error) {
	f, err := os.Open(path)
	return rfile{f}, err
}

// stat is statOf of the open file.
func (f rfile) stat() (fileStat, error) {
	fi, err := f.f.Stat()
	if err != nil {
		return fileStat{}, err
	}
	return statOf(fi), nil
}

func (f rfile) read(b []byte) (int, error) { return f.f.Read(b) }
func (f rfile) close() error               { return f.f.Close() }
