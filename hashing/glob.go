package hashing

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/bmatcuk/doublestar/v4"
)

// stateDir is the workspace folder holding rustypipe's own state (store,
// runs, stat memo). Globs never match under it: `**` would otherwise hash
// the cache into every key and change the key on every run.
const stateDir = ".rustypipe"

// ExpandGlobs returns the files under root matched by any of patterns:
// relative "/"-separated paths, sorted and without duplicates. A pattern
// that matches nothing contributes nothing and is not an error; use
// ExpandGlobsUnmatched to learn which ones did. See ExpandGlobsUnmatched for
// the pattern rules.
func ExpandGlobs(root string, patterns []string) ([]string, error) {
	files, _, err := ExpandGlobsUnmatched(root, patterns)
	return files, err
}

// ExpandGlobsUnmatched is ExpandGlobs that also returns, in the order given,
// the patterns that matched no file.
//
// Patterns use doublestar syntax with "/" separators (`*`, `?`, `[a-z]`,
// `{a,b}`, `**` for any number of folders; `\` escapes). They are relative
// to root: an absolute pattern (leading "/" or "\", or a drive letter such
// as "C:") or one with a ".." segment is an error naming the pattern, as is
// a malformed one. "./" prefixes are ignored. Only files and symlinks are
// returned; directories are skipped (write "dir/**" for a folder's
// contents). Symlinks found while matching wildcards are returned, not
// followed; a symlink in the literal prefix of a pattern ("link/*.c") is
// followed, as the file system does. Nothing under .rustypipe/ is matched.
// A missing root or an unreadable directory is an error; a path through a
// file ("a.c/*") matches nothing.
func ExpandGlobsUnmatched(root string, patterns []string) (files, unmatched []string, err error) {
	return expandGlobs(root, workspaceFS{os.DirFS(root)}, patterns)
}

// globFS is the file system glob expansion reads.
type globFS interface {
	fs.FS
	fs.StatFS
	fs.ReadDirFS
}

func expandGlobs(root string, fsys globFS, patterns []string) (files, unmatched []string, err error) {
	if fi, err := os.Stat(root); err != nil {
		return nil, nil, fmt.Errorf("hashing: expand globs: %w", err)
	} else if !fi.IsDir() {
		return nil, nil, fmt.Errorf("hashing: expand globs: %s is not a directory", root)
	}
	seen := map[string]bool{}
	for _, p := range patterns {
		clean, err := cleanPattern(p)
		if err != nil {
			return nil, nil, fmt.Errorf("hashing: expand glob %q: %w", p, err)
		}
		var matches []string
		switch {
		case clean == ".": // root itself, a directory
		case !isGlob(clean):
			// A literal path (the common case: one named file) needs one
			// lstat, not a directory walk. Same rules: files and symlinks
			// only, nothing under .rustypipe/.
			if rec, ok := fsys.(*recordingFS); ok {
				rec.note(clean)
			}
			if fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(clean))); err == nil && !fi.IsDir() && !inStateDir(clean) {
				matches = []string{clean}
			}
		default:
			matches, err = doublestar.Glob(fsys, clean,
				doublestar.WithFilesOnly(), doublestar.WithNoFollow(), doublestar.WithFailOnIOErrors())
			if err != nil {
				return nil, nil, fmt.Errorf("hashing: expand glob %q: %w", p, err)
			}
		}
		if len(matches) == 0 {
			unmatched = append(unmatched, p)
		}
		for _, m := range matches {
			if !seen[m] {
				seen[m] = true
				files = append(files, m)
			}
		}
	}
	slices.Sort(files)
	return files, unmatched, nil
}

// isGlob reports whether a clean pattern has wildcards (or escapes); one
// without names a single path, which is looked up rather than walked.
func isGlob(clean string) bool { return strings.ContainsAny(clean, `*?[{\`) }

// LiteralPath returns the path a pattern without wildcards names, cleaned
// as Memo.Expand and ExpandGlobs clean it; ok is false for a glob or an
// invalid pattern.
func LiteralPath(pattern string) (rel string, ok bool) {
	clean, err := cleanPattern(pattern)
	if err != nil || isGlob(clean) {
		return "", false
	}
	return clean, true
}

// cleanPattern validates p and returns the form handed to doublestar.
func cleanPattern(p string) (string, error) {
	switch {
	case p == "":
		return "", errors.New("empty pattern")
	case isAbsPattern(p):
		return "", errors.New("pattern is absolute; patterns are relative to the workspace")
	case slices.Contains(strings.Split(p, "/"), ".."):
		return "", errors.New(`pattern contains ".."; patterns may not leave the workspace`)
	case !doublestar.ValidatePattern(p):
		return "", doublestar.ErrBadPattern
	}
	return path.Clean(p), nil
}

// isAbsPattern reports whether p is absolute on any platform, so that a
// pipeline means the same thing everywhere.
func isAbsPattern(p string) bool {
	if strings.HasPrefix(p, "/") || strings.HasPrefix(p, `\`) || filepath.IsAbs(p) {
		return true
	}
	return len(p) >= 2 && p[1] == ':' && ('a' <= p[0] && p[0] <= 'z' || 'A' <= p[0] && p[0] <= 'Z')
}

// workspaceFS hides stateDir from glob expansion.
type workspaceFS struct{ fsys fs.FS }

func inStateDir(name string) bool {
	return name == stateDir || strings.HasPrefix(name, stateDir+"/")
}

// notExist reports a path under a file ("a.c/x") as missing rather than as
// an I/O error, so that such a pattern merely matches nothing.
func notExist(op, name string, err error) error {
	if errors.Is(err, syscall.ENOTDIR) {
		return &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return err
}

func (w workspaceFS) Open(name string) (fs.File, error) {
	if inStateDir(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	f, err := w.fsys.Open(name)
	return f, notExist("open", name, err)
}

func (w workspaceFS) Stat(name string) (fs.FileInfo, error) {
	if inStateDir(name) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	fi, err := fs.Stat(w.fsys, name)
	return fi, notExist("stat", name, err)
}

func (w workspaceFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if inStateDir(name) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	ents, err := fs.ReadDir(w.fsys, name)
	if name == "." {
		ents = slices.DeleteFunc(ents, func(e fs.DirEntry) bool { return e.Name() == stateDir })
	}
	return ents, notExist("readdir", name, err)
}

// Expand digests the files that patterns match under root (see
// ExpandGlobsUnmatched for the rules), sorted by path and without
// duplicates. A pattern without wildcards, the common case of one named
// file, costs a single lstat: it is not walked as a glob. Safe for
// concurrent use.
func (m *Memo) Expand(root string, patterns []string) ([]FileEntry, error) {
	out, _, err := m.expand(root, patterns, -1)
	return out, err
}

// ExpandContent is Expand that also returns, beside each entry, the
// content of the regular files of at most limit bytes that it read to
// hash them: exactly the bytes their digests cover. The others (files the
// memo answered, larger files, symlinks) have nil.
func (m *Memo) ExpandContent(root string, patterns []string, limit int64) ([]FileEntry, [][]byte, error) {
	return m.expand(root, patterns, limit)
}

// expand is Expand keeping the content of files of at most keep bytes
// (keep < 0: none).
func (m *Memo) expand(root string, patterns []string, keep int64) ([]FileEntry, [][]byte, error) {
	type found struct {
		e       FileEntry
		content []byte
	}
	var (
		all   []found
		globs []string
		seen  = map[string]bool{}
	)
	for _, p := range patterns {
		clean, err := cleanPattern(p)
		if err != nil {
			return nil, nil, fmt.Errorf("hashing: expand glob %q: %w", p, err)
		}
		if isGlob(clean) {
			globs = append(globs, p)
			continue
		}
		if clean == "." || inStateDir(clean) || seen[clean] {
			continue
		}
		full := filepath.Join(root, filepath.FromSlash(clean))
		fi, err := os.Lstat(full)
		if err != nil || fi.IsDir() {
			continue // a missing file or a directory matches nothing
		}
		e, content, err := m.digestInfo(full, clean, fi, keep)
		if err != nil {
			return nil, nil, fmt.Errorf("hashing: digest %s: %w", clean, err)
		}
		seen[clean] = true
		all = append(all, found{e, content})
	}
	if len(globs) > 0 {
		paths, err := ExpandGlobs(root, globs)
		if err != nil {
			return nil, nil, err
		}
		for _, rel := range paths {
			if seen[rel] {
				continue
			}
			e, content, err := m.digest(root, rel, keep)
			if err != nil {
				return nil, nil, err
			}
			seen[rel] = true
			all = append(all, found{e, content})
		}
	}
	if len(all) == 0 {
		return nil, nil, nil
	}
	slices.SortFunc(all, func(a, b found) int { return strings.Compare(a.e.Path, b.e.Path) })
	out := make([]FileEntry, len(all))
	var contents [][]byte
	if keep >= 0 {
		contents = make([][]byte, len(all))
	}
	for i, f := range all {
		out[i] = f.e
		if contents != nil {
			contents[i] = f.content
		}
	}
	return out, contents, nil
}

// Probe is one path that glob expansion looked at, and what is there now:
// Exists false for a missing path, else its Stat (a directory's changes
// when an entry is added, removed or renamed in it).
type Probe struct {
	Path   string
	Exists bool
	Stat   Stat
}

// ExpandGlobsProbed is ExpandGlobs that also returns every path the
// expansion read or looked up, with its stat data taken after the
// expansion: if none of them changes, the same patterns match the same
// paths. ok is false when a probed path is a symlink, whose target could
// change what matches without changing the link; the probes then cannot
// stand for the expansion.
func ExpandGlobsProbed(root string, patterns []string) (files []string, probes []Probe, ok bool, err error) {
	rec := &recordingFS{workspaceFS: workspaceFS{os.DirFS(root)}, seen: map[string]bool{}}
	files, _, err = expandGlobs(root, rec, patterns)
	if err != nil {
		return nil, nil, false, err
	}
	names := make([]string, 0, len(rec.seen))
	for n := range rec.seen {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		st, exists, err := Lstat(filepath.Join(root, filepath.FromSlash(n)))
		if err != nil {
			return nil, nil, false, err
		}
		if exists && fs.FileMode(st.Mode)&fs.ModeSymlink != 0 {
			return files, nil, false, nil
		}
		probes = append(probes, Probe{Path: n, Exists: exists, Stat: st})
	}
	return files, probes, true, nil
}

// recordingFS notes every path glob expansion opens, stats or lists.
type recordingFS struct {
	workspaceFS
	mu   sync.Mutex
	seen map[string]bool
}

func (r *recordingFS) note(name string) {
	r.mu.Lock()
	r.seen[name] = true
	r.mu.Unlock()
}

func (r *recordingFS) Open(name string) (fs.File, error) {
	r.note(name)
	return r.workspaceFS.Open(name)
}

func (r *recordingFS) Stat(name string) (fs.FileInfo, error) {
	r.note(name)
	return r.workspaceFS.Stat(name)
}

func (r *recordingFS) ReadDir(name string) ([]fs.DirEntry, error) {
	r.note(name)
	return r.workspaceFS.ReadDir(name)
}
