package docker

import (
	"context"
	"errors"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/rustypipe/rustypipe/exec/backendkit"
)

// The labels every task container carries, LabelHelper only when the
// backend runs in a helper (HelperBackend).
const (
	LabelRunID  = "rustypipe.run-id" // Spec.RunID
	LabelTask   = "rustypipe.task"   // Spec.Task
	LabelOwner  = "rustypipe.owner"  // "hostname:pid" of the rustypipe process the container belongs to
	LabelHelper = "rustypipe.helper" // "hostname:pid" of the rustypipe-docker helper that created it
)

// Reap removes the task containers left behind by processes of this host
// that are gone (crashed, killed with SIGKILL): every container, running or
// not, whose LabelOwner names this host name and a pid that no longer runs,
// or whose LabelHelper does (a helper that died while its rustypipe lives:
// nothing else would ever remove its containers). Containers of live
// processes, this one included, and of other hosts are left alone. It
// returns how many containers it removed, and the errors of the removals
// that failed joined together. Run calls it once, before its first
// container; it is safe for concurrent use.
func (b *Backend) Reap(ctx context.Context) (int, error) {
	cli, err := b.client()
	if err != nil {
		return 0, err
	}
	list, err := cli.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("label", LabelOwner),
	})
	if err != nil {
		return 0, fmt.Errorf("docker: reap: list containers: %w", err)
	}
	removed := 0
	var errs []error
	for _, c := range list.Items {
		if !b.abandoned(c.Labels[LabelOwner]) && !b.abandoned(c.Labels[LabelHelper]) {
			continue
		}
		_, err := cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("docker: reap: remove container %.12s of task %q: %w", c.ID, c.Labels[LabelTask], err))
			continue
		}
		if err == nil {
			removed++
		}
	}
	return removed, errors.Join(errs...)
}

// abandoned reports whether owner ("hostname:pid", a label's value) names
// a process of this host that no longer runs. An empty or malformed value
// is not abandoned.
func (b *Backend) abandoned(owner string) bool {
	host, pid, ok := backendkit.ParseOwner(owner)
	return ok && host == b.hostname && !backendkit.ProcessAlive(pid)
}
