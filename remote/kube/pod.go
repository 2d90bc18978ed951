package kube

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"

	"github.com/rustypipe/rustypipe/exec"
)

// The labels every task pod carries. Label values are restricted (63
// characters of [A-Za-z0-9._-]), so each holds a sanitized value, and an
// annotation of the same key holds the exact one.
const (
	LabelRunID = "rustypipe.run-id" // Spec.RunID
	LabelTask  = "rustypipe.task"   // Spec.Task
	LabelOwner = "rustypipe.owner"  // "hostname:pid" of the rustypipe process that created it
)

// Workdir is the directory of every container of a task pod that stands for
// the workspace root: an emptyDir volume.
const Workdir = "/workspace"

// Names of the containers and the volume of a task pod, which a
// pod_template refers to.
const (
	containerTask   = "task"   // runs the script; its exit code is the task's
	containerKeeper = "keeper" // sleeps so that the outputs can be read after the task exited; only with outputs
	volumeWorkspace = "rustypipe-workspace"
)

// backstopMargin is added to a task's timeout and grace period for the
// pod's activeDeadlineSeconds: the deadline only matters when rustypipe
// died, and must never end a pod that rustypipe is still stopping itself.
const backstopMargin = 60 * time.Second

// gateScript is the task container's command, with the working directory
// as $0 and the task's shell and its arguments as "$@". It echoes every
// line Run sends through the attached stdin back on stdout and stderr until
// the line "go": Run sends probes until it has read one back on both
// streams, which proves that the attach receives the container's output
// (the runtime may connect stdin before it connects the output streams, and
// what a quick task printed in between was lost), and only then "go". Then
// it enters the working directory (made by the inputs' tar, so that it
// belongs to the task's user) and becomes the task's shell.
const gateScript = `while IFS= read -r line; do
[ "$line" = go ] && break
printf '%s\n' "$line"; printf '%s\n' "$line" >&2
done
[ "$line" = go ] || { echo "rustypipe: the task was not released" >&2; exit 125; }
cd -- "$0" || exit 125
exec "$@"`

// outputsScript is run in the keeper container with the workdir and the
// output roots as arguments: it writes a tar stream of the roots that
// exist to stdout, nothing when none does.
const outputsScript = `d=$1; shift
for p do shift; if [ -e "$d/$p" ] || [ -h "$d/$p" ]; then set -- "$@" "$p"; fi; done
[ $# -gt 0 ] || exit 0
cd "$d" && exec tar -c -f - "$@"`

// podParams is what one pod is built from.
type podParams struct {
	name        string
	namespace   string
	spec        *exec.Spec
	image       string    // the task's image
	helperImage string    // the image of the keeper container
	owner       string    // LabelOwner's exact value
	deadline    time.Time // the task's deadline; zero for none
	withKeeper  bool      // a keeper container stays up for the outputs
}

// buildPod returns the pod for one attempt: the defaults, cfg, then the
// pod template merged over them, then the fields the backend relies on.
func buildPod(cfg *Config, p podParams) (*corev1.Pod, error) {
	s := p.spec
	argv, err := shellCommand(s.Shell, s.Script)
	if err != nil {
		return nil, err
	}
	wd := Workdir
	if s.Dir != "" {
		wd = Workdir + "/" + s.Dir
	}
	cmd := append([]string{"sh", "-c", gateScript, wd}, argv...)
	grace := graceSeconds(s.Grace)
	secCtx := &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
	mount := corev1.VolumeMount{Name: volumeWorkspace, MountPath: Workdir}
	pull := corev1.PullPolicy(cfg.ImagePullPolicy)

	task := corev1.Container{
		Name:                     containerTask,
		Image:                    p.image,
		ImagePullPolicy:          pull,
		Command:                  escapeAll(cmd),
		WorkingDir:               Workdir,
		Env:                      containerEnv(s.Env),
		Resources:                *cfg.Resources.DeepCopy(),
		VolumeMounts:             []corev1.VolumeMount{mount},
		Stdin:                    true,
		StdinOnce:                true,
		SecurityContext:          secCtx.DeepCopy(),
		TerminationMessagePolicy: corev1.TerminationMessageReadFile,
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        p.name,
			Namespace:   p.namespace,
			Labels:      maps.Clone(cfg.Labels),
			Annotations: maps.Clone(cfg.Annotations),
		},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			ShareProcessNamespace:         ptr(true),
			TerminationGracePeriodSeconds: ptr(grace),
			EnableServiceLinks:            ptr(false),
			ServiceAccountName:            cfg.ServiceAccount,
			NodeSelector:                  maps.Clone(cfg.NodeSelector),
			Tolerations:                   slices.Clone(cfg.Tolerations),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   cfg.RunAsNonRoot,
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{task},
			Volumes: []corev1.Volume{{
				Name:         volumeWorkspace,
				VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}},
			}},
		},
	}
	if cfg.ServiceAccount == "" {
		// The task has no business with the cluster's API unless asked.
		pod.Spec.AutomountServiceAccountToken = ptr(false)
	}
	if !p.deadline.IsZero() {
		secs := int64(math.Ceil(time.Until(p.deadline).Seconds())) + grace + int64(backstopMargin/time.Second)
		pod.Spec.ActiveDeadlineSeconds = ptr(max(secs, 1))
	}
	helperRes := helperResources(cfg.Resources)
	if p.withKeeper {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{
			Name:            containerKeeper,
			Image:           p.helperImage,
			ImagePullPolicy: pull,
			// Ended by the pod's deletion; 2^31-1 seconds is the largest
			// sleep that every sleep implementation takes.
			Command:         []string{"sleep", "2147483647"},
			Resources:       *helperRes.DeepCopy(),
			VolumeMounts:    []corev1.VolumeMount{mount},
			SecurityContext: secCtx.DeepCopy(),
		})
	}
	want := pod.DeepCopy()
	if cfg.PodTemplate != nil {
		if pod, err = mergeTemplate(pod, cfg.PodTemplate, p.withKeeper); err != nil {
			return nil, fmt.Errorf("pod_template: %w", err)
		}
	}
	enforce(pod, want)
	setMeta(pod, LabelRunID, s.RunID)
	setMeta(pod, LabelTask, s.Task)
	setMeta(pod, LabelOwner, p.owner)
	return pod, nil
}

// helperResources are the requests and limits of the keeper container: small requests, and limits only when the task has some (a
// namespace's quota may demand them of every container).
func helperResources(task corev1.ResourceRequirements) corev1.ResourceRequirements {
	cpu, mem := resource.MustParse("10m"), resource.MustParse("16Mi")
	r := corev1.ResourceRequirements{Requests: corev1.ResourceList{}}
	if l, ok := task.Limits[corev1.ResourceCPU]; ok {
		r.Limits = corev1.ResourceList{corev1.ResourceCPU: l}
		if l.Cmp(cpu) < 0 {
			cpu = l
		}
	}
	if _, ok := task.Limits[corev1.ResourceMemory]; ok {
		if r.Limits == nil {
			r.Limits = corev1.ResourceList{}
		}
		r.Limits[corev1.ResourceMemory] = resource.MustParse("256Mi")
	}
	r.Requests[corev1.ResourceCPU] = cpu
	r.Requests[corev1.ResourceMemory] = mem
	return r
}

// templatePatch returns the pod template as a strategic merge patch of a
// Pod. A map with a "spec" or "metadata" key is a partial Pod; any other
// map is a partial PodSpec. Fields the Pod schema does not have are errors.
func templatePatch(tmpl map[string]any) ([]byte, error) {
	podShaped := tmpl
	_, hasSpec := tmpl["spec"]
	_, hasMeta := tmpl["metadata"]
	if hasSpec || hasMeta {
		for k := range tmpl {
			switch k {
			case "spec", "metadata", "apiVersion", "kind":
			default:
				return nil, fmt.Errorf("a partial Pod has only metadata and spec, not %q", k)
			}
		}
	} else {
		podShaped = map[string]any{"spec": tmpl}
	}
	raw, err := json.Marshal(podShaped)
	if err != nil {
		return nil, fmt.Errorf("cannot encode as JSON: %w", err)
	}
	var pod corev1.Pod
	if err := decodeStrict(podShaped, &pod); err != nil {
		return nil, err
	}
	return raw, nil
}

// mergeTemplate merges the template over pod as a strategic merge patch.
// An entry for the keeper container is dropped when the pod has none, so
// that it does not become a container of its own.
func mergeTemplate(pod *corev1.Pod, tmpl map[string]any, withKeeper bool) (*corev1.Pod, error) {
	raw, err := templatePatch(tmpl)
	if err != nil {
		return nil, err
	}
	var patch map[string]any
	if err := json.Unmarshal(raw, &patch); err != nil {
		return nil, err
	}
	if spec, ok := patch["spec"].(map[string]any); ok {
		dropNamed(spec, "containers", containerKeeper, !withKeeper)
		if raw, err = json.Marshal(patch); err != nil {
			return nil, err
		}
	}
	orig, err := json.Marshal(pod)
	if err != nil {
		return nil, err
	}
	merged, err := strategicpatch.StrategicMergePatch(orig, raw, corev1.Pod{})
	if err != nil {
		return nil, err
	}
	var out corev1.Pod
	if err := json.Unmarshal(merged, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// dropNamed removes the item named name from the list spec[key] when drop
// is set.
func dropNamed(spec map[string]any, key, name string, drop bool) {
	list, ok := spec[key].([]any)
	if !ok || !drop {
		return
	}
	kept := list[:0:0]
	for _, it := range list {
		if m, ok := it.(map[string]any); ok && m["name"] == name {
			continue
		}
		kept = append(kept, it)
	}
	spec[key] = kept
}

// enforce puts back on pod, after a template was merged over it, the
// fields of want that the backend relies on: identity, restart policy,
// shared process namespace, the deadline (the shorter one wins), the
// workspace volume, and the image, command, stdin and mounts of its own
// containers.
func enforce(pod, want *corev1.Pod) {
	pod.Name, pod.Namespace, pod.GenerateName = want.Name, want.Namespace, ""
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	pod.Spec.ShareProcessNamespace = ptr(true)
	if w := want.Spec.ActiveDeadlineSeconds; w != nil {
		if t := pod.Spec.ActiveDeadlineSeconds; t == nil || *w < *t {
			pod.Spec.ActiveDeadlineSeconds = ptr(*w)
		}
	}
	vi := slices.IndexFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == volumeWorkspace })
	if vi < 0 {
		pod.Spec.Volumes = append(pod.Spec.Volumes, want.Spec.Volumes[0])
	} else {
		pod.Spec.Volumes[vi] = want.Spec.Volumes[0]
	}
	fix := func(list []corev1.Container, w corev1.Container) {
		for i := range list {
			c := &list[i]
			if c.Name != w.Name {
				continue
			}
			c.Image, c.Command, c.Args = w.Image, w.Command, nil
			c.WorkingDir = w.WorkingDir
			c.Stdin, c.StdinOnce, c.TTY = w.Stdin, w.StdinOnce, false
			c.VolumeMounts = slices.DeleteFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
				return m.Name == volumeWorkspace || m.MountPath == Workdir
			})
			c.VolumeMounts = append(c.VolumeMounts, w.VolumeMounts...)
		}
	}
	for _, w := range want.Spec.Containers {
		fix(pod.Spec.Containers, w)
	}
	for _, w := range want.Spec.InitContainers {
		fix(pod.Spec.InitContainers, w)
	}
}

// setMeta sets the label key to a sanitized value and the annotation key to
// the exact one.
func setMeta(pod *corev1.Pod, key, value string) {
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Labels[key] = labelValue(value)
	pod.Annotations[key] = value
}

// labelValue turns s into a valid label value: characters other than
// [A-Za-z0-9._-] become "_", leading and trailing ones that are not
// alphanumeric are dropped, and a value longer than 63 characters keeps its
// first 54 and a hash of the whole, so that distinct long values stay
// distinct.
func labelValue(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			b[i] = '_'
		}
	}
	v := strings.TrimFunc(string(b), func(r rune) bool { return r > 0x7f || !isAlnum(byte(r)) })
	if len(v) > 63 {
		sum := sha256.Sum256([]byte(s))
		v = strings.TrimRightFunc(v[:54], func(r rune) bool { return !isAlnum(byte(r)) }) + "-" + hex.EncodeToString(sum[:4])
	}
	return v
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// podName returns a fresh pod name for a task: "rp-", up to 40 characters
// of the task's name as a DNS label, and 10 random characters.
func podName(task string) string {
	var b strings.Builder
	b.WriteString("rp-")
	dash := true
	for _, c := range []byte(strings.ToLower(task)) {
		if b.Len() >= 43 {
			break
		}
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteByte(c)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	if !dash {
		b.WriteByte('-')
	}
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var r [10]byte
	rand.Read(r[:])
	for _, x := range r {
		b.WriteByte(alphabet[int(x)%len(alphabet)])
	}
	return b.String()
}

// escapeVars escapes s for a container's command, args or env value, in
// which Kubernetes replaces $(NAME) with a variable and $$ with $: every $
// is doubled, so that the container gets s exactly.
func escapeVars(s string) string { return strings.ReplaceAll(s, "$", "$$") }

func escapeAll(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = escapeVars(a)
	}
	return out
}

// containerEnv returns the task container's environment: the task's
// without the host-only variables and without entries that are not
// KEY=VALUE (of a name given twice, the last value in the first place),
// each value escaped. The image's variables come under these.
func containerEnv(taskEnv []string) []corev1.EnvVar {
	env := make([]corev1.EnvVar, 0, len(taskEnv))
	at := make(map[string]int, len(taskEnv))
	for _, kv := range taskEnv {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || exec.HostOnlyEnv(k) {
			continue
		}
		if i, dup := at[k]; dup {
			env[i].Value = escapeVars(v)
			continue
		}
		at[k] = len(env)
		env = append(env, corev1.EnvVar{Name: k, Value: escapeVars(v)})
	}
	return env
}

// shellCommand returns the command that runs script with shell, "" being
// sh.
func shellCommand(shell, script string) ([]string, error) {
	if shell == "" {
		shell = "sh"
	}
	argv, ok := exec.ShellArgv(shell, script)
	if !ok || shell == "cmd" {
		return nil, fmt.Errorf("unknown shell %q for a pod (want sh, bash, pwsh or powershell)", shell)
	}
	return argv, nil
}

// graceSeconds rounds a grace period up to whole seconds, at least 1: a
// pod deleted with 0 would be removed from the API before its containers
// are stopped.
func graceSeconds(d time.Duration) int64 {
	return max(1, int64(math.Ceil(d.Seconds())))
}

func ptr[T any](v T) *T { return &v }
