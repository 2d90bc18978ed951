package kube

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// containerStatus returns the status of the (init) container name, nil
// when the kubelet has not reported one yet.
func containerStatus(pod *corev1.Pod, name string) *corev1.ContainerStatus {
	if pod == nil {
		return nil
	}
	for _, list := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// fatalWaiting are container waiting reasons that no retry of the kubelet
// mends: the pod is given up at once.
var fatalWaiting = map[string]bool{
	"ErrImageNeverPull": true, // not present, and the pull policy is Never
	"InvalidImageName":  true,
}

// quietWaiting are the waiting reasons of a container that is on its way.
var quietWaiting = map[string]bool{
	"":                  true,
	"ContainerCreating": true,
	"PodInitializing":   true,
}

// startProblem returns why pod is not on its way to running its task, if
// anything is wrong: a fatal problem ends the wait at once; another one
// (a pod not scheduled yet, an image pull being retried, a missing secret)
// is what the wait reports should it time out.
func startProblem(pod *corev1.Pod) (problem *podError, fatal bool) {
	if pod == nil {
		return nil, false
	}
	if pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded {
		reason := pod.Status.Reason
		if reason == "" {
			reason = "pod " + string(pod.Status.Phase)
		}
		return &podError{pod: pod.Name, reason: reason, msg: pod.Status.Message}, true
	}
	for _, list := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses} {
		for _, st := range list {
			w := st.State.Waiting
			if w == nil || quietWaiting[w.Reason] {
				continue
			}
			p := &podError{pod: pod.Name, reason: w.Reason, msg: fmt.Sprintf("container %q: %s", st.Name, w.Message)}
			if w.Message == "" {
				p.msg = fmt.Sprintf("container %q", st.Name)
			}
			return p, fatalWaiting[w.Reason]
		}
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			reason := c.Reason
			if reason == "" {
				reason = "Unschedulable"
			}
			return &podError{pod: pod.Name, reason: reason, msg: c.Message}, false
		}
	}
	return nil, false
}

// exitResult turns a container's exit status into Result's ExitCode and
// Signal. A shell killed by signal N is reported as 128+N; only when Run
// stopped the pod is that read as a signal, since a task may also exit with
// such a code itself.
func exitResult(code int32, stopped bool) (int, string) {
	if stopped && code > 128 && code <= 128+64 {
		return -1, signalName(int(code - 128))
	}
	return int(code), ""
}

// signalName names a signal as Go's syscall.Signal.String does on Linux.
func signalName(n int) string {
	switch n {
	case 1:
		return "hangup"
	case 2:
		return "interrupt"
	case 3:
		return "quit"
	case 6:
		return "aborted"
	case 9:
		return "killed"
	case 13:
		return "broken pipe"
	case 14:
		return "alarm clock"
	case 15:
		return "terminated"
	}
	return fmt.Sprintf("signal %d", n)
}
