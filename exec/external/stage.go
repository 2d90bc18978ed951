package external

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/rustypipe/rustypipe/exec"
)

// maxRefusals bounds how many refused staging entries an error lists.
const maxRefusals = 5

// restoreOutputs restores what the helper staged in dir into
// s.OutputRoot(). It first checks every entry: each must be a regular file
// or a symlink, pass exec.CheckPath, match s.Outputs, and a symlink must
// point inside the workspace; directories only hold them. If anything is
// refused, nothing is restored and the error names the refused entries.
// Then every entry is written through exec.Restorer, which checks paths
// and link targets again and never writes through a symlink. Files are read
// through an os.Root of dir, so a helper that swaps a file for a symlink
// meanwhile cannot make the client read outside dir.
func restoreOutputs(s *exec.Spec, dir string) error {
	type entry struct {
		rel    string
		target string // of a symlink
		link   bool
	}
	allow := exec.OutputMatcher(s.Outputs)
	var entries []entry
	var refused []error
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if err := exec.CheckPath(rel); err != nil {
			refused = append(refused, err)
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		e := entry{rel: rel}
		switch t := d.Type(); {
		case t.IsDir():
			return nil
		case t.IsRegular():
		case t&fs.ModeSymlink != 0:
			e.link = true
			if e.target, err = os.Readlink(p); err != nil {
				return err
			}
		default:
			refused = append(refused, fmt.Errorf("%s is not a regular file, directory or symlink (%v)", rel, t))
			return nil
		}
		if !allow(rel) {
			refused = append(refused, fmt.Errorf("%s is not a declared output", rel))
			return nil
		}
		if e.link {
			if err := checkLinkTarget(rel, e.target); err != nil {
				refused = append(refused, err)
				return nil
			}
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return fmt.Errorf("read staging directory: %w", err)
	}
	if len(refused) > 0 {
		n := len(refused)
		if n > maxRefusals {
			refused = append(refused[:maxRefusals], fmt.Errorf("and %d more", n-maxRefusals))
		}
		return fmt.Errorf("refused %d staged entries, restored nothing: %w", n, errors.Join(refused...))
	}
	if len(entries) == 0 {
		return nil
	}
	src, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("open staging directory: %w", err)
	}
	defer src.Close()
	rs, err := exec.NewRestorer(s.OutputRoot())
	if err != nil {
		return err
	}
	defer rs.Close()
	for _, e := range entries {
		if e.link {
			if err := rs.Symlink(e.rel, e.target); err != nil {
				return err
			}
			continue
		}
		if err := restoreFile(src, rs, e.rel); err != nil {
			return err
		}
	}
	return nil
}

// restoreFile copies the regular file rel of src into rs.
func restoreFile(src *os.Root, rs *exec.Restorer, rel string) error {
	f, err := src.Open(filepath.FromSlash(rel))
	if err != nil {
		return fmt.Errorf("open staged %s: %w", rel, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat staged %s: %w", rel, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("staged %s changed into %v while it was restored", rel, fi.Mode().Type())
	}
	_, err = rs.WriteFile(rel, fi.Mode().Perm(), f)
	return err
}

// checkLinkTarget refuses a symlink target that is absolute or, resolved
// from rel's directory, leaves the workspace. exec.Restorer.Symlink makes
// the same check when it writes; checking first lets a refusal restore
// nothing.
func checkLinkTarget(rel, target string) error {
	if target == "" || strings.HasPrefix(target, "/") || strings.ContainsRune(target, '\\') || (len(target) >= 2 && target[1] == ':') {
		return fmt.Errorf("%w: symlink %s -> %q", exec.ErrUnsafePath, rel, target)
	}
	joined := path.Join(path.Dir(rel), target)
	if joined == ".." || strings.HasPrefix(joined, "../") {
		return fmt.Errorf("%w: symlink %s -> %q points outside", exec.ErrUnsafePath, rel, target)
	}
	return nil
}
