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
