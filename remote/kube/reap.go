package kube

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rustypipe/rustypipe/exec/backendkit"
)

// Owner returns LabelOwner's exact value for the process pid of host:
// "host:pid".
func Owner(host string, pid int) string {
	return backendkit.Owner(host, pid)
}

// Reap deletes the task pods of the backend's namespace that rustypipe
// processes of this host left behind when they died (crashed, killed with
// SIGKILL): every pod labelled LabelOwner whose owner (the annotation of
// the same key) names this host and a pid that no longer runs. Pods of
// live processes, of this backend's owner, and of other hosts are left
// alone. Pods are deleted with their own grace period. It returns how many
// pods it deleted, and the errors of the deletions that failed joined
// together. Run calls it once, before its first pod; it is safe for
// concurrent use.
func (b *Backend) Reap(ctx context.Context) (int, error) {
	cl, err := b.client()
	if err != nil {
		return 0, err
	}
	return b.reap(ctx, cl)
}

func (b *Backend) reap(ctx context.Context, cl *client) (int, error) {
	list, err := cl.pods().List(ctx, metav1.ListOptions{LabelSelector: LabelOwner})
	if err != nil {
		return 0, fmt.Errorf("kube: reap: list pods in namespace %s: %w", cl.ns, apiError{err})
	}
	deleted := 0
	var errs []error
	for _, p := range list.Items {
		owner := p.Annotations[LabelOwner]
		host, pid, ok := backendkit.ParseOwner(owner)
		if !ok || host != b.hostname || owner == b.owner || p.DeletionTimestamp != nil || backendkit.ProcessAlive(pid) {
			continue
		}
		err := cl.pods().Delete(ctx, p.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &p.UID},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("kube: reap: delete pod %s of task %q: %w", p.Name, p.Annotations[LabelTask], apiError{err}))
			continue
		}
		if err == nil {
			deleted++
		}
	}
	return deleted, errors.Join(errs...)
}
