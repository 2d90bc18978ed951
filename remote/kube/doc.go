// Package kube is the exec.Backend that runs each task attempt in an
// ephemeral Kubernetes pod, through client-go. It imports only exec from
// this module. rustypipe links it into its own helper executable,
// rustypipe-kube, spoken to through the external-backend protocol, so that
// client-go stays out of the main binary.
//
// # Configuration
//
// A pipeline names its backends (`backends: {k8s: {type: kubernetes,
// image: ...}}`) and a task picks one and may override the image
// (Spec.Image). ParseConfig decodes the options into a Config; New
// validates it and does no I/O: the kubeconfig is resolved as kubectl does
// (Config.Kubeconfig, KUBECONFIG, ~/.kube/config, in-cluster) on first use,
// so that Identity works without a cluster.
//
// # One attempt
//
// Run takes a slot of the backend's concurrency limit (Config.Concurrency;
// the slot is held until the pod is gone), deletes once per Backend the
// pods that dead rustypipe processes left behind (Reap), and creates one
// pod:
//
//   - restartPolicy Never; shareProcessNamespace, so that the pause process
//     is PID 1 and the task's shell dies of SIGTERM as it would on a host;
//     no service links; no service account token unless
//     Config.ServiceAccount is set.
//   - activeDeadlineSeconds, when ctx has a deadline: the time left, the
//     grace period and a minute. It only matters when rustypipe died; Run
//     stops the task itself at the deadline.
//   - labels LabelRunID, LabelTask and LabelOwner, sanitized to valid label
//     values, and annotations of the same keys holding the exact values;
//     Config.Labels and Config.Annotations too.
//   - a security context that passes the Pod Security "restricted" profile
//     when the image allows it: no privilege escalation, all capabilities
//     dropped, the RuntimeDefault seccomp profile, and runAsNonRoot as
//     Config.RunAsNonRoot says (unset by default: many images run as root).
//   - Config.Resources on the task container, Config.NodeSelector and
//     Config.Tolerations, then Config.PodTemplate merged over the whole
//     (strategic merge: containers by name), then the fields the backend
//     relies on put back (names, restart policy, process namespace, images,
//     commands, stdin, the workspace volume; the shorter deadline wins).
//
// The pod has an emptyDir volume at Workdir that stands for the workspace
// root, and one or two containers:
//
//   - "task": `sh -c GATE WORKDIR/DIR SHELL -c SCRIPT`, stdin open once.
//     The gate reads one line, enters the working directory and execs the
//     task's shell. Once the container runs, Run execs `tar -x` in it and
//     streams one tar of the working directory and every Spec.Inputs path
//     (files follow symlinks, directories are copied whole), written while
//     it is sent: no shared volume, nothing held in memory, and the files
//     belong to the task's user. Run then attaches to the container (stdout
//     and stderr stay separate and live, which the logs API does not
//     offer everywhere) and only then sends the line, so that no output
//     comes before the attach; Result.Started is that moment. The output
//     is written to Spec.Stdout and Spec.Stderr as it arrives, from one
//     goroutine at a time, to the last byte: the attach ends after the
//     container's streams are drained. Since the streaming path can still
//     drop the end of the output without an error, Run then checks what
//     arrived against the container's log and recovers what is missing
//     from it, or fails the task (see output.go). The exit code is the
//     container's terminated state, as the kubelet reports it.
//   - "keeper", when the task declares outputs: `sleep` that keeps the pod
//     up after the task exited, so that Run can exec `tar -c` of the
//     outputs' literal prefixes in it and restore the declared outputs from
//     the stream into Spec.OutputRoot() through exec.Restorer.ExtractTar
//     with exec.OutputMatcher. Hard-linked outputs are fetched one by one.
//     Outputs are copied whatever the exit code, never after a stop.
//
// The task's image needs sh and, for inputs, tar; the keeper runs
// Config.HelperImage, by default the task's image, which then needs sh,
// tar and sleep (busybox has them). Every value put into a command or the
// environment has its "$" doubled, so that Kubernetes' $(VAR) expansion
// leaves it as it was.
//
// The environment is Spec.Env without the variables that describe the
// host (PATH, HOME, USER, SHELL, TMPDIR, PWD), so that the image's PATH and
// HOME apply; Kubernetes adds HOSTNAME and the KUBERNETES_SERVICE_*
// variables.
//
// # Start failures
//
// The pod is followed by a watch (reopened from its resource version when
// the server ends it). A container waiting with ErrImageNeverPull or
// InvalidImageName, or a pod that failed, ends the attempt at once; any
// other problem (unschedulable, image pull back-off, a missing secret) is
// logged when it changes, and ends the attempt once the task container has
// not run for Config.StartTimeout since the pod's creation. The error wraps
// exec.ErrStart and ErrPodNotStarted and names the reason Kubernetes gave;
// a pod the API server refuses (quota, admission) fails at once with the
// server's message.
//
// # Cancellation and clean-up
//
// When ctx is done, the pod is deleted with the task's grace period
// (rounded up to whole seconds): the kubelet sends SIGTERM to the
// containers, then SIGKILL. When Spec.Kill is closed first, Run execs
// `kill -KILL -1` in the task container (the kubelet does not shorten a
// stop in progress) and deletes the pod again with one second. Run waits for the task container's exit status
// and returns the Result (an exit of 128+N after a stop reads as signal N)
// and an error wrapping context.Cause(ctx). A ctx done before the task was
// released returns a nil Result. The pod is deleted whatever happened;
// after a stop or a failed start Run waits until it is gone.
//
// A rustypipe process that dies without cleaning up leaves pods whose
// LabelOwner names its host and pid. Reap, called before a Backend's first
// pod, deletes those whose process no longer runs on this host.
//
// # Identity and caching
//
// Backend implements exec.Identifier with the image reference: its digest
// when it has one ("kubernetes image@sha256:..."), else the reference as
// written ("kubernetes tag:busybox:1.36"), which a registry may move to
// other content: pinning by digest is what makes a key reproducible. A
// pod template adds a digest of itself. Resources, node selection, labels
// and the namespace are not part of the identity.
package kube
