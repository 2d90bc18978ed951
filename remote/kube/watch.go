package kube

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
)

// errPodGone is returned by podWatch.wait once the pod has been deleted.
var errPodGone = errors.New("the pod was deleted")

// watchRetry is the pause before a watch that failed is opened again.
const watchRetry = time.Second

// podWatch follows one pod through a watch of its name, reopened from the
// last resource version it saw whenever the server ends it, until stop is
// called or the pod is deleted. Safe for concurrent use.
type podWatch struct {
	pods typedcorev1.PodInterface
	name string
	stop context.CancelFunc

	mu      sync.Mutex
	pod     *corev1.Pod   // the latest state seen
	gone    bool          // the pod was deleted
	err     error         // the watch is refused (no permission); retrying will not help
	changed chan struct{} // closed and replaced on every change
}

// watchPod starts following pod, as created (its resource version is where
// the watch starts). The watch outlives ctx's cancellation; call stop.
func watchPod(ctx context.Context, pods typedcorev1.PodInterface, pod *corev1.Pod) *podWatch {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w := &podWatch{pods: pods, name: pod.Name, stop: cancel, pod: pod, changed: make(chan struct{})}
	go w.loop(ctx, pod.ResourceVersion)
	return w
}

func (w *podWatch) set(pod *corev1.Pod, gone bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if pod != nil {
		w.pod = pod
	}
	w.gone = w.gone || gone
	close(w.changed)
	w.changed = make(chan struct{})
}

func (w *podWatch) loop(ctx context.Context, rv string) {
	sel := fields.OneTermEqualSelector("metadata.name", w.name).String()
	for ctx.Err() == nil {
		wi, err := w.pods.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: rv, AllowWatchBookmarks: true})
		if err != nil {
			switch {
			case apierrors.IsResourceExpired(err) || apierrors.IsGone(err):
				rv = w.resync(ctx)
			case apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err):
				w.mu.Lock()
				w.err = fmt.Errorf("watch pod %s: %w", w.name, apiError{err})
				w.mu.Unlock()
				w.set(nil, false)
				return
			default:
				sleep(ctx, watchRetry)
			}
			continue
		}
		expired, events := false, 0
		for ev := range wi.ResultChan() {
			events++
			switch ev.Type {
			case watch.Added, watch.Modified:
				if p, ok := ev.Object.(*corev1.Pod); ok {
					rv = p.ResourceVersion
					w.set(p, false)
				}
			case watch.Deleted:
				p, _ := ev.Object.(*corev1.Pod)
				w.set(p, true)
				wi.Stop()
				return
			case watch.Bookmark:
				if p, ok := ev.Object.(*corev1.Pod); ok {
					rv = p.ResourceVersion
				}
			case watch.Error:
				err := apierrors.FromObject(ev.Object)
				expired = apierrors.IsResourceExpired(err) || apierrors.IsGone(err)
			}
		}
		wi.Stop()
		if expired {
			rv = w.resync(ctx)
		} else if events == 0 {
			sleep(ctx, watchRetry) // a server that ends watches at once is not asked in a tight loop
		}
	}
}

// resync reads the pod after its watch's resource version expired, and
// returns the version to watch from; a pod that is not found is gone.
func (w *podWatch) resync(ctx context.Context) string {
	for ctx.Err() == nil {
		p, err := w.pods.Get(ctx, w.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			w.set(nil, true)
			w.stop()
			return ""
		}
		if err == nil {
			w.set(p, false)
			return p.ResourceVersion
		}
		sleep(ctx, watchRetry)
	}
	return ""
}

// wait calls check with the pod's latest state, now and after every
// change, until check reports done or an error. It returns the state check
// accepted, check's error, errPodGone (with the last state) once the pod is
// deleted and check did not accept its last state, or ctx's error.
func (w *podWatch) wait(ctx context.Context, check func(*corev1.Pod) (bool, error)) (*corev1.Pod, error) {
	for {
		w.mu.Lock()
		pod, gone, werr, changed := w.pod, w.gone, w.err, w.changed
		w.mu.Unlock()
		done, err := check(pod)
		if err != nil || done {
			return pod, err
		}
		if werr != nil {
			return pod, werr
		}
		if gone {
			return pod, errPodGone
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return pod, context.Cause(ctx)
		}
	}
}

// isGone reports whether the pod was seen deleted.
func (w *podWatch) isGone() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gone
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
