package exec

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// OutputRoots returns the workspace-relative paths a remote backend copies
// back for the output globs: each glob's leading run of literal components
// (the whole pattern when it has no metacharacter), sorted, without
// duplicates and without those inside another root; "" stands for the
// whole working area.
func OutputRoots(patterns []string) []string {
	var roots []string
	for _, p := range patterns {
		var lit []string
		for _, c := range strings.Split(p, "/") {
			if strings.ContainsAny(c, `*?[]{}\`) {
				break
			}
			lit = append(lit, c)
		}
		roots = append(roots, strings.Join(lit, "/"))
	}
	slices.Sort(roots)
	roots = slices.Compact(roots)
	var kept []string
	for _, r := range roots {
		inside := slices.ContainsFunc(kept, func(k string) bool {
			return k == "" || strings.HasPrefix(r, k+"/")
		})
		if !inside {
			kept = append(kept, r)
		}
	}
	return kept
}

// FilterOutputTar rewrites a remote archive of output paths to
// workspace-relative names for Restorer.ExtractTar. rename maps an entry's
// name in src to its workspace-relative "/"-separated name ("" or "." to
// skip the entry), or fails for a name that does not belong in the
// archive. FilterOutputTar keeps the regular files and symlinks that allow
// accepts, and entries of other types that allow accepts (for ExtractTar to
// refuse by name), drops directories (ExtractTar creates the parents it
// needs) and returns the accepted hard links instead of writing them: a
// hard link has no content of its own, so the caller fetches each one again
// alone, when it comes as a regular file. Content streams through; nothing
// is held in memory. A read error wraps the tar reader's error.
func FilterOutputTar(dst io.Writer, src io.Reader, rename func(name string) (string, error), allow func(rel string) bool) ([]string, error) {
	tr := tar.NewReader(src)
	tw := tar.NewWriter(dst)
	var links []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return links, tw.Close()
		}
		if err != nil {
			return links, fmt.Errorf("read the remote archive: %w", err)
		}
		rel, err := rename(h.Name)
		if err != nil {
			return links, err
		}
		if rel == "" || rel == "." || h.Typeflag == tar.TypeDir || !allow(rel) {
			continue
		}
		if h.Typeflag == tar.TypeLink {
			links = append(links, rel)
			continue
		}
		out := &tar.Header{
			Typeflag: h.Typeflag,
			Name:     rel,
			Linkname: h.Linkname,
			Mode:     h.Mode,
			ModTime:  h.ModTime,
		}
		if h.Typeflag == tar.TypeReg {
			out.Size = h.Size
		}
		if err := tw.WriteHeader(out); err != nil {
			return links, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := io.Copy(tw, tr); err != nil {
				return links, err
			}
		}
	}
}

// WriteInputTar writes to w a tar stream of a task's inputs for a remote
// working area, with entry names under the "/"-separated prefix base ("" for
// names relative to the working area itself): the working area's own entry
// (only when base is not ""), the working directory dir and its parents,
// and each workspace-relative input file (following symlinks) or directory
// (recursively, not following symlinks to directories), with the parents
// of each. Directories are written mode 0755, files with their permission
// bits. It ends the archive but adds no padding. Errors name the input; a
// missing input's error wraps fs.ErrNotExist.
func WriteInputTar(w io.Writer, workspace, base, dir string, inputs []string) error {
	tw := tar.NewWriter(w)
	seen := map[string]bool{}
	if base == "" {
		seen[""] = true // the working area itself exists already
	}
	// addDirs adds rel (workspace-relative, "" for the working area) and
	// every parent up to the working area, parents first.
	var addDirs func(rel string) error
	addDirs = func(rel string) error {
		if seen[rel] {
			return nil
		}
		if rel != "" {
			parent := path.Dir(rel)
			if parent == "." {
				parent = ""
			}
			if err := addDirs(parent); err != nil {
				return err
			}
		}
		seen[rel] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: path.Join(base, rel) + "/", Mode: 0o755})
	}
	if err := addDirs(dir); err != nil {
		return err
	}
	addFile := func(rel string, fi fs.FileInfo, abs string) error {
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("input %s is not a regular file or directory", rel)
		}
		parent := path.Dir(rel)
		if parent == "." {
			parent = ""
		}
		if err := addDirs(parent); err != nil {
			return err
		}
		f, err := os.Open(abs)
		if err != nil {
			return fmt.Errorf("input: %w", err)
		}
		defer f.Close()
		err = tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeReg,
			Name:     path.Join(base, rel),
			Mode:     int64(fi.Mode().Perm()),
			Size:     fi.Size(),
			ModTime:  fi.ModTime(),
		})
		if err != nil {
			return err
		}
		if _, err := io.CopyN(tw, f, fi.Size()); err != nil {
			return fmt.Errorf("input %s: %w (did it change while it was copied?)", rel, err)
		}
		return nil
	}
	for _, in := range inputs {
		abs := filepath.Join(workspace, filepath.FromSlash(in))
		fi, err := os.Stat(abs)
		if err != nil {
			return fmt.Errorf("input: %w", err)
		}
		if !fi.IsDir() {
			if err := addFile(in, fi, abs); err != nil {
				return err
			}
			continue
		}
		err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return fmt.Errorf("input: %w", err)
			}
			r, err := filepath.Rel(workspace, p)
			if err != nil {
				return fmt.Errorf("input %s: %w", p, err)
			}
			rel := filepath.ToSlash(r)
			fi, err := os.Stat(p)
			if err != nil {
				return fmt.Errorf("input: %w", err)
			}
			if fi.IsDir() {
				if d.Type()&fs.ModeSymlink != 0 {
					return nil // a symlink to a directory: not followed, as WalkDir does not
				}
				return addDirs(rel)
			}
			return addFile(rel, fi, p)
		})
		if err != nil {
			return err
		}
	}
	return tw.Close()
}

// RestoreOutputs brings a remote task's declared outputs back into
// s.OutputRoot() through a Restorer. fetch archives the workspace-relative
// paths paths ("" for the whole working area) remotely and extracts the
// stream with rs.ExtractTar(…, allow), typically through FilterOutputTar;
// it returns the accepted hard links it did not restore. RestoreOutputs
// calls it once with OutputRoots(s.Outputs), then once per hard link
// alone, when the file comes as a regular one. A path that does not exist
// remotely must be no error for fetch: the task did not produce it.
func RestoreOutputs(s *Spec, fetch func(paths []string, rs *Restorer, allow func(rel string) bool) (links []string, err error)) error {
	rs, err := NewRestorer(s.OutputRoot())
	if err != nil {
		return err
	}
	defer rs.Close()
	allow := OutputMatcher(s.Outputs)
	links, err := fetch(OutputRoots(s.Outputs), rs, allow)
	if err != nil {
		return err
	}
	for _, l := range links {
		if _, err := fetch([]string{l}, rs, allow); err != nil {
			return err
		}
	}
	return nil
}
