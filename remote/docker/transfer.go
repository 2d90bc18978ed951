package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
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
// task user's with CopyUIDGID), the working directory dir, and each input.
// Names are relative to "/".
func writeInputs(w io.Writer, workspace, workdir, dir string, inputs []string) error {
	return exec.WriteInputTar(w, workspace, strings.TrimPrefix(workdir, "/"), dir, inputs)
}

// copyOutputs copies the files matching s.Outputs from the container's
// workdir into the workspace, through exec.Restorer.
func (b *Backend) copyOutputs(ctx context.Context, cli *client.Client, cid string, s *exec.Spec) error {
	return exec.RestoreOutputs(s, func(roots []string, rs *exec.Restorer, allow func(string) bool) ([]string, error) {
		var links []string
		for _, root := range roots {
			ls, err := b.copyOut(ctx, cli, cid, root, rs, allow)
			if err != nil {
				return nil, err
			}
			links = append(links, ls...)
		}
		return links, nil
	})
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
// relative names for ExtractTar, through exec.FilterOutputTar: the engine
// names entries after the base name top of the path it archived, which
// stands for root.
func filterTar(dst io.Writer, src io.Reader, top, root string, allow func(string) bool) ([]string, error) {
	return exec.FilterOutputTar(dst, src, func(raw string) (string, error) {
		name := strings.TrimSuffix(strings.TrimPrefix(raw, "./"), "/")
		first, rest, _ := strings.Cut(name, "/")
		if first != top {
			return "", fmt.Errorf("the container's archive of %q holds %q", top, raw)
		}
		if root == "" {
			return rest, nil
		}
		if rest == "" {
			return root, nil
		}
		return root + "/" + rest, nil
	}, allow)
}
