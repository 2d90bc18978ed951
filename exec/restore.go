package exec

import (
	"archive/tar"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// ErrUnsafePath is wrapped by every refusal to write outside the workspace.
var ErrUnsafePath = errors.New("path escapes the workspace")

// CheckPath reports whether rel is a clean, relative, "/"-separated path
// that stays inside the workspace on every platform: not empty, not
// absolute, no drive letter, no backslash, no "..", no "." components.
func CheckPath(rel string) error {
	switch {
	case rel == "" || rel == ".":
		return fmt.Errorf("%w: empty path", ErrUnsafePath)
	case strings.HasPrefix(rel, "/"):
		return fmt.Errorf("%w: %q is absolute", ErrUnsafePath, rel)
	case strings.ContainsRune(rel, '\\'):
		return fmt.Errorf("%w: %q contains a backslash", ErrUnsafePath, rel)
	case len(rel) >= 2 && rel[1] == ':':
		return fmt.Errorf("%w: %q has a drive letter", ErrUnsafePath, rel)
	case strings.ContainsRune(rel, 0):
		return fmt.Errorf("%w: %q contains NUL", ErrUnsafePath, rel)
	}
	for _, part := range strings.Split(rel, "/") {
		if part == ".." {
			return fmt.Errorf("%w: %q contains \"..\"", ErrUnsafePath, rel)
		}
		if part == "" || part == "." {
			return fmt.Errorf("%w: %q is not clean", ErrUnsafePath, rel)
		}
	}
	return nil
}

// Restorer writes files into a workspace through an os.Root, so that no
// path, symlink or race can make it write outside. A file is written to a
// temporary name beside its target and renamed over it, so readers never
// see half a file and an existing symlink at the target is replaced, never
// written through. Safe for concurrent use.
type Restorer struct {
	root *os.Root
}

// NewRestorer opens the workspace directory.
func NewRestorer(workspace string) (*Restorer, error) {
	r, err := os.OpenRoot(workspace)
	if err != nil {
		return nil, fmt.Errorf("restore: open workspace: %w", err)
	}
	return &Restorer{root: r}, nil
}

// Close releases the workspace handle.
func (r *Restorer) Close() error { return r.root.Close() }

// WriteFile writes src to rel with the given permission bits and returns
// the number of bytes written. On any error nothing is left at rel that was
// not there before (the temporary file is removed).
func (r *Restorer) WriteFile(rel string, perm fs.FileMode, src io.Reader) (int64, error) {
	if err := CheckPath(rel); err != nil {
		return 0, err
	}
	if dir := path.Dir(rel); dir != "." {
		if err := r.root.MkdirAll(dir, 0o755); err != nil {
			return 0, fmt.Errorf("restore %s: %w", rel, err)
		}
	}
	tmp := tempName(rel)
	f, err := r.root.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm.Perm()|0o200)
	if err != nil {
		return 0, fmt.Errorf("restore %s: %w", rel, err)
	}
	n, err := io.Copy(f, src)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = r.root.Chmod(tmp, perm.Perm())
	}
	if err == nil {
		err = r.root.Rename(tmp, rel)
	}
	if err != nil {
		r.root.Remove(tmp)
		return 0, fmt.Errorf("restore %s: %w", rel, err)
	}
	return n, nil
}

// Symlink makes rel a symlink to target, replacing what is there. The
// target must be relative and, resolved from rel's directory, stay inside
// the workspace.
func (r *Restorer) Symlink(rel, target string) error {
	if err := CheckPath(rel); err != nil {
		return err
	}
	if err := checkLinkTarget(rel, target); err != nil {
		return err
	}
	if dir := path.Dir(rel); dir != "." {
		if err := r.root.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("restore %s: %w", rel, err)
		}
	}
	tmp := tempName(rel)
	if err := r.root.Symlink(target, tmp); err != nil {
		return fmt.Errorf("restore %s: %w", rel, err)
	}
	if err := r.root.Rename(tmp, rel); err != nil {
		r.root.Remove(tmp)
		return fmt.Errorf("restore %s: %w", rel, err)
	}
	return nil
}

func checkLinkTarget(rel, target string) error {
	if target == "" || strings.HasPrefix(target, "/") || strings.ContainsRune(target, '\\') || (len(target) >= 2 && target[1] == ':') {
		return fmt.Errorf("%w: symlink %s -> %q", ErrUnsafePath, rel, target)
	}
	joined := path.Join(path.Dir(rel), target)
	if joined == ".." || strings.HasPrefix(joined, "../") {
		return fmt.Errorf("%w: symlink %s -> %q points outside", ErrUnsafePath, rel, target)
	}
	return nil
}

func tempName(rel string) string {
	var b [6]byte
	rand.Read(b[:])
	return path.Join(path.Dir(rel), ".rustypipe-tmp-"+hex.EncodeToString(b[:])+"-"+path.Base(rel))
}

// ExtractTar restores the regular files, directories and symlinks of a tar
// stream into the workspace. Every entry must pass CheckPath and allow (the
// declared outputs); anything else is refused with an error naming it, and
// entries of other types (devices, hard links) are refused too. It returns
// the restored paths. The stream is read once, never held in memory.
func (r *Restorer) ExtractTar(src io.Reader, allow func(rel string) bool) ([]string, error) {
	tr := tar.NewReader(src)
	var done []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return done, nil
		}
		if err != nil {
			return done, fmt.Errorf("restore: read tar: %w", err)
		}
		name := strings.TrimPrefix(strings.TrimSuffix(h.Name, "/"), "./")
		if name == "" || name == "." {
			continue
		}
		if err := CheckPath(name); err != nil {
			return done, err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := r.root.MkdirAll(name, 0o755); err != nil {
				return done, fmt.Errorf("restore %s: %w", name, err)
			}
			continue
		case tar.TypeReg:
			if !allow(name) {
				return done, fmt.Errorf("restore: %s is not a declared output", name)
			}
			if _, err := r.WriteFile(name, fs.FileMode(h.Mode).Perm(), tr); err != nil {
				return done, err
			}
		case tar.TypeSymlink:
			if !allow(name) {
				return done, fmt.Errorf("restore: %s is not a declared output", name)
			}
			if err := r.Symlink(name, h.Linkname); err != nil {
				return done, err
			}
		default:
			return done, fmt.Errorf("restore: %s: unsupported entry type %q", name, h.Typeflag)
		}
		done = append(done, name)
	}
}
