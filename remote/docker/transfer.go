package docker

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/rustypipe/rustypipe/exec"
)

// copyInputs copies the working directory and s.Inputs into the container
// under the workdir, as one tar stream written while it is sent.
func (b *Backend) copyInputs(ctx context.Context, cli *client.Client, cid string, s *exec.Spec) error {
	if !filepath.IsAbs(s.Workspace) {
		return fmt.Errorf("workspace %q is not an absolute path", s.Workspace)
	}
	for _, in := range s.Inputs {
		if err := exec.CheckPath(in); err != nil {
			return fmt.Errorf("input: %w", err)
		}
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := writeInputs(pw, s.Workspace, b.cfg.Workdir, s.Dir, s.Inputs)
		pw.CloseWithError(err)
		done <- err
	}()
	_, err := cli.CopyToContainer(ctx, cid, client.CopyToContainerOptions{
		DestinationPath: "/",
		Content:         pr,
		CopyUIDGID:      b.cfg.User != "",
	})
	pr.CloseWithError(errPipeDone) // unblocks writeInputs if the copy failed early
	if werr := <-done; werr != nil && !errors.Is(werr, errPipeDone) {
		return werr // the local side failed first (a missing input): the engine only saw the stream end
	}
	if err != nil {
		if isContextErr(err) {
			return err
		}
		return engineError{err}
	}
	return nil
}

// errPipeDone closes the reading end of a pipe whose reader has finished,
// so that a writer still writing stops; it is never reported.
var errPipeDone = errors.New("docker: pipe reader done")

// writeInputs writes a tar stream to w, to be unpacked at the container's
// root: the directories of workdir from workdir down (so that they are the
// task user's with CopyUIDGID), the working directory dir, and each input
// file (following symlinks) or directory (recursively). Names are relative
// to "/".
func writeInputs(w io.Writer, workspace, workdir, dir string, inputs []string) error {
	tw := tar.NewWriter(w)
	base := strings.TrimPrefix(workdir, "/")
	seen := map[string]bool{}
	// addDirs adds rel (workspace-relative, "" for the workdir) and every
	// parent up to the workdir, parents first.
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

// copyOutputs copies the files matching s.Outputs from the container's
// workdir into the workspace, through exec.Restorer.
func (b *Backend) copyOutputs(ctx context.Context, cli *client.Client, cid string, s *exec.Spec) error {
	rs, err := exec.NewRestorer(s.OutputRoot())
	if err != nil {
		return err
	}
	defer rs.Close()
	allow := exec.OutputMatcher(s.Outputs)
	var links []string
	for _, root := range outputRoots(s.Outputs) {
		ls, err := b.copyOut(ctx, cli, cid, root, rs, allow)
		if err != nil {
			return err
		}
		links = append(links, ls...)
	}
	// A hard link in the engine's archive has no content of its own: copied
	// alone, the file comes as a regular one.
	for _, l := range links {
		if _, err := b.copyOut(ctx, cli, cid, l, rs, allow); err != nil {
			return err
		}
	}
	return nil
}

// copyOut copies the workspace-relative root ("" for the whole workdir)
// from the container and restores the declared outputs in it. It returns
// the declared outputs that came as hard links, which it did not restore.
// A root that does not exist in the container is no error: the task did
// not produce it.
func (b *Backend) copyOut(ctx context.Context, cli *client.Client, cid, root string, rs *exec.Restorer, allow func(string) bool) ([]string, error) {
	res, err := cli.CopyFromContainer(ctx, cid, client.CopyFromContainerOptions{SourcePath: path.Join(b.cfg.Workdir, root)})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil, nil
		}
		if isContextErr(err) {
			return nil, err
		}
		return nil, fmt.Errorf("copy %s from the container: %w", path.Join(b.cfg.Workdir, root), engineError{err})
	}
	top := path.Base(b.cfg.Workdir)
	if root != "" {
		top = path.Base(root)
	}
	pr, pw := io.Pipe()
	type filtered struct {
		links []string
		err   error
	}
	done := make(chan filtered, 1)
	go func() {
		links, err := filterTar(pw, res.Content, top, root, allow)
		pw.CloseWithError(err)
		done <- filtered{links, err}
	}()
	_, xerr := rs.ExtractTar(pr, allow)
	pr.CloseWithError(errPipeDone) // unblocks filterTar if ExtractTar stopped early
	res.Content.Close()
	f := <-done
	if xerr != nil {
		return nil, xerr
	}
	if f.err != nil && !errors.Is(f.err, errPipeDone) {
		return nil, f.err
	}
	return f.links, nil
}

// filterTar rewrites the engine's archive of a workdir path to workspace-
// relative names for ExtractTar: the engine names entries after the base
// name top of the path it archived, which stands for root. It keeps the
// regular files and symlinks that allow accepts, and entries of other types
// that allow accepts (for ExtractTar to refuse by name), drops directories
// (ExtractTar creates the parents it needs) and returns the accepted hard
// links instead of writing them. Content streams through; nothing is held
// in memory.
func filterTar(dst io.Writer, src io.Reader, top, root string, allow func(string) bool) ([]string, error) {
	tr := tar.NewReader(src)
	tw := tar.NewWriter(dst)
	var links []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return links, tw.Close()
		}
		if err != nil {
			return links, fmt.Errorf("read the container's archive: %w", err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		first, rest, _ := strings.Cut(name, "/")
		if first != top {
			return links, fmt.Errorf("the container's archive of %q holds %q", top, h.Name)
		}
		rel := rest
		if root != "" {
			rel = root
			if rest != "" {
				rel = root + "/" + rest
			}
		}
		if rel == "" || h.Typeflag == tar.TypeDir || !allow(rel) {
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

// outputRoots returns the workspace-relative paths to copy out of the
// container for the output globs: each glob's leading run of literal
// components (the whole pattern when it has no metacharacter), without
// those inside another root; "" stands for the whole workdir.
func outputRoots(patterns []string) []string {
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
