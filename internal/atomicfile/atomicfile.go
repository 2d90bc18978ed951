package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
)

// Write writes data to name with permissions perm (before the umask, as
// os.WriteFile), creating name's directory if needed (see the package
// comment).
func Write(name string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := createTemp(dir, filepath.Base(name), perm)
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), name)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// tempSeq numbers a process's temporary files; the pid tells processes
// apart.
var tempSeq atomic.Uint64

// createTemp creates a new file in dir named ".BASE.tmp-PID-N" with perm.
// os.CreateTemp would make it 0600 whatever the umask, and a chmod after
// it would ignore the umask.
func createTemp(dir, base string, perm os.FileMode) (*os.File, error) {
	prefix := filepath.Join(dir, "."+base+".tmp-"+strconv.Itoa(os.Getpid())+"-")
	for range 10000 { // names a crashed process of the same pid left behind
		f, err := os.OpenFile(prefix+strconv.FormatUint(tempSeq.Add(1), 10), os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if !errors.Is(err, fs.ErrExist) {
			return f, err
		}
	}
	return nil, &fs.PathError{Op: "createtemp", Path: prefix + "*", Err: fs.ErrExist}
}
