package hashing

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Stat is the stat data the memo trusts a digest under: size, modification
// and change times, inode, device and mode (type included). Two Stats of a
// path are equal only if nothing wrote the file in between, unless it was
// written within the file system's timestamp granularity of the first
// (see Older).
type Stat struct {
	Size    int64
	MtimeNs int64
	CtimeNs int64 // 0 where the platform has none
	Ino     uint64
	Dev     uint64
	Mode    uint32
}

func (s fileStat) export() Stat {
	return Stat{Size: s.size, MtimeNs: s.mtimeNs, CtimeNs: s.ctimeNs, Ino: s.ino, Dev: s.dev, Mode: s.mode}
}

// Lstat returns the Stat of the file at path without following a final
// symlink; exists is false when there is no such file.
func Lstat(path string) (st Stat, exists bool, err error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Stat{}, false, nil
	}
	if err != nil {
		return Stat{}, false, err
	}
	return statOf(fi).export(), true, nil
}

// Older reports whether the file's modification and change times are both
// more than the racy window (racy.go) before t: a later write then must
// change them. The window is the fine one only for a device that a memo
// has statted a file of in this process.
func (s Stat) Older(t time.Time) bool {
	limit := t.Add(-racyWindow(s.Dev, s.CtimeNs)).UnixNano()
	return s.MtimeNs < limit && s.CtimeNs < limit
}

// Confirm returns the file's current Stat when the memo holds a trusted
// digest for it under exactly that Stat and the digest is d: the file is
// the content that d names, as far as stat data can tell.
func (m *Memo) Confirm(root, rel string, d Digest) (Stat, bool) {
	full := filepath.Join(root, filepath.FromSlash(rel))
	fi, err := os.Lstat(full)
	if err != nil || !fi.Mode().IsRegular() {
		return Stat{}, false
	}
	st := statOf(fi)
	noteFS(st.dev, full)
	m.Load()
	m.mu.Lock()
	e, ok := m.entries[full]
	ok = ok && e.trusted && e.st == st && e.digest == d
	m.mu.Unlock()
	if !ok {
		return Stat{}, false
	}
	return st.export(), true
}
