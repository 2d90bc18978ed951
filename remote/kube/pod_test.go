package kube

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/rustypipe/rustypipe/exec"
	"github.com/rustypipe/rustypipe/exec/exectest"
)

func TestLabelValue(t *testing.T) {
	long := strings.Repeat("a", 70)
	tests := []struct{ in, want string }{
		{"build", "build"},
		{"TestConformance/Timeout", "TestConformance_Timeout"},
		{"vm:1234", "vm_1234"},
		{"-lead.and.trail-", "lead.and.trail"},
		{"héllo wörld", "h__llo_w__rld"},
		{"", ""},
		{"::", ""},
	}
	for _, tc := range tests {
		if got := labelValue(tc.in); got != tc.want {
			t.Errorf("labelValue(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	a, b := labelValue(long), labelValue(long+"b")
	if len(a) > 63 || len(b) > 63 || a == b {
		t.Errorf("long values %q and %q: want distinct values of at most 63 characters", a, b)
	}
	for _, in := range []string{long, "x/" + long, "TestA/B c:d", "ü" + long + "ü"} {
		if errs := validation.IsValidLabelValue(labelValue(in)); len(errs) > 0 {
			t.Errorf("labelValue(%q) = %q is not a label value: %v", in, labelValue(in), errs)
		}
	}
}

func TestPodName(t *testing.T) {
	for _, task := range []string{"build", "Test/With Spaces", strings.Repeat("x", 100), "", "---", "ü"} {
		n := podName(task)
		if errs := validation.IsDNS1123Label(n); len(errs) > 0 {
			t.Errorf("podName(%q) = %q is not a DNS label: %v", task, n, errs)
		}
		if !strings.HasPrefix(n, "rp-") {
			t.Errorf("podName(%q) = %q, want prefix rp-", task, n)
		}
	}
	if podName("a") == podName("a") {
		t.Error("podName returned the same name twice")
	}
}

func TestEscapeVars(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"$(HOME)", "$$(HOME)"},
		{"echo $$ $!", "echo $$$$ $$!"},
		{`'"$HOME\`, `'"$$HOME\`},
	}
	for _, tc := range tests {
		if got := escapeVars(tc.in); got != tc.want {
			t.Errorf("escapeVars(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestContainerEnv(t *testing.T) {
	got := containerEnv([]string{"PATH=/host/bin", "A=1", "HOME=/h", "B=$(A)", "A=2", "junk", "=x", "EMPTY="})
	want := []corev1.EnvVar{{Name: "A", Value: "2"}, {Name: "B", Value: "$$(A)"}, {Name: "EMPTY", Value: ""}}
	if !slices.Equal(got, want) {
		t.Errorf("containerEnv = %+v, want %+v", got, want)
	}
}

func testSpec() *exec.Spec {
	return &exec.Spec{
		Task: "build/all", RunID: "run:1", Script: `echo "$(date)" $HOME`, Shell: "bash",
		Env: []string{"CI=1", "PATH=/usr/bin"}, Workspace: "/ws", Dir: "sub/dir",
		Inputs: []string{"a.txt"}, Outputs: []string{"out/**"}, Grace: 1500 * time.Millisecond,
	}
}

func TestBuildPod(t *testing.T) {
	no := false
	cfg := &Config{
		ImagePullPolicy: PullNever,
		RunAsNonRoot:    &no,
		Resources:       corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}},
		NodeSelector:    map[string]string{"disk": "ssd"},
		Labels:          map[string]string{"team": "build"},
		Annotations:     map[string]string{"note": "x"},
	}
	deadline := time.Now().Add(10 * time.Second)
	pod, err := buildPod(cfg, podParams{
		name: "rp-x", namespace: "ns", spec: testSpec(), image: "img:1", helperImage: "helper:1",
		owner: "vm:42", deadline: deadline, withKeeper: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	sp := pod.Spec
	if pod.Name != "rp-x" || pod.Namespace != "ns" {
		t.Errorf("name = %s/%s", pod.Namespace, pod.Name)
	}
	if sp.RestartPolicy != corev1.RestartPolicyNever || sp.ShareProcessNamespace == nil || !*sp.ShareProcessNamespace {
		t.Errorf("restartPolicy %v, shareProcessNamespace %v", sp.RestartPolicy, sp.ShareProcessNamespace)
	}
	if *sp.TerminationGracePeriodSeconds != 2 {
		t.Errorf("terminationGracePeriodSeconds = %d, want 2 (1.5s rounded up)", *sp.TerminationGracePeriodSeconds)
	}
	if d := sp.ActiveDeadlineSeconds; d == nil || *d < 10+2+60-1 || *d > 10+2+60 {
		t.Errorf("activeDeadlineSeconds = %v, want about 72", d)
	}
	if sp.AutomountServiceAccountToken == nil || *sp.AutomountServiceAccountToken {
		t.Error("the service account token is mounted without a service account")
	}
	if sp.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault || *sp.SecurityContext.RunAsNonRoot {
		t.Errorf("pod security context = %+v", sp.SecurityContext)
	}
	if pod.Labels[LabelTask] != "build_all" || pod.Annotations[LabelTask] != "build/all" ||
		pod.Labels[LabelOwner] != "vm_42" || pod.Annotations[LabelOwner] != "vm:42" ||
		pod.Labels[LabelRunID] != "run_1" || pod.Labels["team"] != "build" || pod.Annotations["note"] != "x" {
		t.Errorf("labels %v, annotations %v", pod.Labels, pod.Annotations)
	}
	if sp.NodeSelector["disk"] != "ssd" {
		t.Errorf("nodeSelector = %v", sp.NodeSelector)
	}
	names := func(cs []corev1.Container) (n []string) {
		for _, c := range cs {
			n = append(n, c.Name)
		}
		return n
	}
	if got := names(sp.Containers); !slices.Equal(got, []string{"task", "keeper"}) {
		t.Errorf("containers = %v", got)
	}
	if len(sp.InitContainers) != 0 {
		t.Errorf("init containers = %v, want none", names(sp.InitContainers))
	}
	task := sp.Containers[0]
	if task.Image != "img:1" || sp.Containers[1].Image != "helper:1" {
		t.Errorf("images = %s, %s", task.Image, sp.Containers[1].Image)
	}
	wantCmd := []string{"sh", "-c", escapeVars(gateScript), "/workspace/sub/dir", "bash", "-c", `echo "$$(date)" $$HOME`}
	if !slices.Equal(task.Command, wantCmd) || task.Args != nil {
		t.Errorf("task command = %q, want %q", task.Command, wantCmd)
	}
	if task.WorkingDir != Workdir || !task.Stdin || !task.StdinOnce || task.TTY {
		t.Errorf("task workingDir %q stdin %v once %v tty %v", task.WorkingDir, task.Stdin, task.StdinOnce, task.TTY)
	}
	if !slices.Equal(task.Env, []corev1.EnvVar{{Name: "CI", Value: "1"}}) {
		t.Errorf("task env = %v", task.Env)
	}
	for _, c := range sp.Containers {
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("container %s security context = %+v", c.Name, sc)
		}
		if c.ImagePullPolicy != corev1.PullNever {
			t.Errorf("container %s pull policy = %q", c.Name, c.ImagePullPolicy)
		}
		if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != Workdir || c.VolumeMounts[0].Name != volumeWorkspace {
			t.Errorf("container %s mounts = %+v", c.Name, c.VolumeMounts)
		}
	}
	if q := sp.Containers[1].Resources.Limits[corev1.ResourceMemory]; q.Cmp(resource.MustParse("256Mi")) != 0 {
		t.Errorf("keeper memory limit = %v, want 256Mi when the task has a memory limit", q.String())
	}

	// Without outputs or deadline: one container, no deadline.
	s := testSpec()
	s.Dir, s.Inputs, s.Outputs = "", nil, nil
	pod, err = buildPod(&Config{}, podParams{name: "rp-y", spec: s, image: "img", helperImage: "img", owner: "vm:1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pod.Spec.Containers) != 1 || pod.Spec.ActiveDeadlineSeconds != nil {
		t.Errorf("minimal pod: containers %v, deadline %v", names(pod.Spec.Containers), pod.Spec.ActiveDeadlineSeconds)
	}
	if cmd := pod.Spec.Containers[0].Command; cmd[3] != Workdir || pod.Spec.SecurityContext.RunAsNonRoot != nil {
		t.Errorf("minimal pod: command %q, runAsNonRoot %v", cmd, pod.Spec.SecurityContext.RunAsNonRoot)
	}

	s.Shell = "fish"
	if _, err := buildPod(&Config{}, podParams{name: "rp-z", spec: s, image: "img"}); err == nil || !strings.Contains(err.Error(), `unknown shell "fish"`) {
		t.Errorf("buildPod with shell fish: %v", err)
	}
}

func TestBuildPodTemplate(t *testing.T) {
	cfg := &Config{PodTemplate: map[string]any{
		"metadata": map[string]any{"labels": map[string]any{"from": "template", LabelTask: "forged"}},
		"spec": map[string]any{
			"priorityClassName":     "low",
			"activeDeadlineSeconds": 5,
			"restartPolicy":         "Always",
			"shareProcessNamespace": false,
			"securityContext":       map[string]any{"runAsUser": 1000},
			"volumes":               []any{map[string]any{"name": "cache", "emptyDir": map[string]any{}}},
			"containers": []any{
				map[string]any{"name": "task", "image": "evil", "command": []any{"true"},
					"env":          []any{map[string]any{"name": "EXTRA", "value": "$(CI)"}},
					"volumeMounts": []any{map[string]any{"name": "cache", "mountPath": "/cache"}}},
				map[string]any{"name": "keeper", "resources": map[string]any{"limits": map[string]any{"cpu": "2"}}},
			},
			"initContainers": []any{map[string]any{"name": "prepare", "image": "other", "command": []any{"true"}}},
		},
	}}
	s := testSpec()
	s.Outputs = nil // no keeper container: its entry must not become a container
	pod, err := buildPod(cfg, podParams{name: "rp-t", namespace: "ns", spec: s, image: "img:1", helperImage: "img:1",
		owner: "vm:1", deadline: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	sp := pod.Spec
	if sp.PriorityClassName != "low" || *sp.SecurityContext.RunAsUser != 1000 {
		t.Errorf("template fields lost: priorityClassName %q, securityContext %+v", sp.PriorityClassName, sp.SecurityContext)
	}
	if sp.SecurityContext.SeccompProfile == nil {
		t.Error("the default seccomp profile was lost in the merge")
	}
	if *sp.ActiveDeadlineSeconds != 5 {
		t.Errorf("activeDeadlineSeconds = %d, want the template's shorter 5", *sp.ActiveDeadlineSeconds)
	}
	if sp.RestartPolicy != corev1.RestartPolicyNever || !*sp.ShareProcessNamespace {
		t.Errorf("restartPolicy %v shareProcessNamespace %v: the backend's must win", sp.RestartPolicy, *sp.ShareProcessNamespace)
	}
	if len(sp.Containers) != 1 || len(sp.InitContainers) != 1 || sp.InitContainers[0].Image != "other" {
		t.Fatalf("containers %d, init containers %+v; want the task and the template's init container", len(sp.Containers), sp.InitContainers)
	}
	task := sp.Containers[0]
	if task.Image != "img:1" || task.Command[0] != "sh" {
		t.Errorf("task image %q command %q: the backend's must win", task.Image, task.Command)
	}
	if !slices.Contains(task.Env, corev1.EnvVar{Name: "EXTRA", Value: "$(CI)"}) || !slices.Contains(task.Env, corev1.EnvVar{Name: "CI", Value: "1"}) {
		t.Errorf("task env = %v, want the task's and the template's", task.Env)
	}
	if len(task.VolumeMounts) != 2 {
		t.Errorf("task mounts = %+v, want the template's and the workspace", task.VolumeMounts)
	}
	if len(sp.Volumes) != 2 {
		t.Errorf("volumes = %+v", sp.Volumes)
	}
	if pod.Labels["from"] != "template" || pod.Labels[LabelTask] != "build_all" {
		t.Errorf("labels = %v", pod.Labels)
	}
}

func TestFilterTar(t *testing.T) {
	var src bytes.Buffer
	tw := tar.NewWriter(&src)
	add := func(h *tar.Header, body string) {
		h.Size = int64(len(body))
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, body)
	}
	add(&tar.Header{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755}, "")
	add(&tar.Header{Typeflag: tar.TypeDir, Name: "./out/", Mode: 0o755}, "")
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "./out/a.txt", Mode: 0o644}, "a\n")
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "out/secret.key", Mode: 0o600}, "no\n")
	add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "./out/l", Linkname: "a.txt"}, "")
	add(&tar.Header{Typeflag: tar.TypeLink, Name: "./out/h.txt", Linkname: "./out/a.txt"}, "")
	tw.Close()

	allow := exec.OutputMatcher([]string{"out/*.txt", "out/l"})
	var dst bytes.Buffer
	links, err := filterTar(&dst, &src, allow)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(links, []string{"out/h.txt"}) {
		t.Errorf("links = %q, want [out/h.txt]", links)
	}
	var got []string
	exectest.TarEntries(t, &dst, func(h *tar.Header, body []byte) {
		got = append(got, h.Name+"="+string(body)+h.Linkname)
	})
	if want := []string{"out/a.txt=a\n", "out/l=a.txt"}; !slices.Equal(got, want) {
		t.Errorf("filtered entries = %q, want %q", got, want)
	}

	if _, err := filterTar(io.Discard, strings.NewReader("not a tar archive at all, but long enough to fill a header block..."+strings.Repeat("x", 600)), allow); err == nil {
		t.Error("filterTar accepted garbage")
	}
}

func TestWriteInputs(t *testing.T) {
	ws := t.TempDir()
	write := func(rel, body string, mode os.FileMode) {
		p := filepath.Join(ws, filepath.FromSlash(rel))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("a.txt", "alpha", 0o644)
	write("tools/run.sh", "#!/bin/sh\n", 0o755)
	write("tools/lib/x", "x", 0o644)
	var buf bytes.Buffer
	if err := writeInputs(&buf, ws, "sub/dir", []string{"a.txt", "tools"}); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%tarRecord != 0 {
		t.Errorf("stream of %d bytes is not padded to whole %d-byte records", buf.Len(), tarRecord)
	}
	var got []string
	exectest.TarEntries(t, &buf, func(h *tar.Header, body []byte) {
		got = append(got, h.Name+" "+os.FileMode(h.Mode).String()+" "+string(body))
	})
	want := []string{
		"sub/ -rwxr-xr-x ", "sub/dir/ -rwxr-xr-x ", "a.txt -rw-r--r-- alpha",
		"tools/ -rwxr-xr-x ", "tools/lib/ -rwxr-xr-x ", "tools/lib/x -rw-r--r-- x", "tools/run.sh -rwxr-xr-x #!/bin/sh\n",
	}
	if !slices.Equal(got, want) {
		t.Errorf("entries:\n%q\nwant\n%q", got, want)
	}
	if err := writeInputs(io.Discard, ws, "", []string{"missing.txt"}); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("writeInputs of a missing input: %v, want a not-exist error", err)
	}
}

func TestStartProblem(t *testing.T) {
	waiting := func(reason, msg string) *corev1.Pod {
		p := &corev1.Pod{}
		p.Name = "rp-x"
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "task", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}}
		return p
	}
	unsched := &corev1.Pod{}
	unsched.Name = "rp-u"
	unsched.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/1 nodes are available"}}
	failed := &corev1.Pod{}
	failed.Name = "rp-f"
	failed.Status.Phase, failed.Status.Reason, failed.Status.Message = corev1.PodFailed, "Evicted", "low on memory"
	tests := []struct {
		name  string
		pod   *corev1.Pod
		want  string // "" for no problem
		fatal bool
	}{
		{"nil", nil, "", false},
		{"creating", waiting("ContainerCreating", ""), "", false},
		{"never pull", waiting("ErrImageNeverPull", `image "x" is not present`), `pod rp-x: ErrImageNeverPull: container "task": image "x" is not present`, true},
		{"invalid name", waiting("InvalidImageName", "bad"), "InvalidImageName", true},
		{"backoff", waiting("ImagePullBackOff", "retrying"), "ImagePullBackOff", false},
		{"config", waiting("CreateContainerConfigError", `secret "s" not found`), "CreateContainerConfigError", false},
		{"unschedulable", unsched, "pod rp-u: Unschedulable: 0/1 nodes are available", false},
		{"failed", failed, "pod rp-f: Evicted: low on memory", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, fatal := startProblem(tc.pod)
			if tc.want == "" {
				if p != nil {
					t.Errorf("problem %v, want none", p)
				}
				return
			}
			if p == nil || !strings.Contains(p.Error(), tc.want) || fatal != tc.fatal {
				t.Errorf("problem %v, fatal %v; want one containing %q, fatal %v", p, fatal, tc.want, tc.fatal)
			}
			if !errors.Is(p, ErrPodNotStarted) {
				t.Errorf("%v does not wrap ErrPodNotStarted", p)
			}
		})
	}
}

func TestIdentity(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	tests := []struct {
		image, task string
		tmpl        map[string]any
		want        string
	}{
		{image: "busybox:1", want: "kubernetes tag:busybox:1"},
		{image: "registry.example.com:5000/team/busybox:1.36", want: "kubernetes tag:registry.example.com:5000/team/busybox:1.36"},
		{image: "busybox@" + digest, want: "kubernetes image@" + digest},
		{image: "busybox:1.36@" + strings.ToUpper(digest[:7]) + digest[7:], want: "kubernetes tag:busybox:1.36@SHA256:" + strings.Repeat("ab", 32)},
		{image: "other/name:9@" + digest, want: "kubernetes image@" + digest},
		{image: "busybox:1", task: "alpine:3", want: "kubernetes tag:alpine:3"},
	}
	for _, tc := range tests {
		b, err := New(Config{Image: tc.image}, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := b.Identity(context.Background(), &exec.Spec{Image: tc.task})
		if err != nil || got != tc.want {
			t.Errorf("Identity(%q, task image %q) = %q, %v; want %q", tc.image, tc.task, got, err, tc.want)
		}
	}

	b1, _ := New(Config{Image: "busybox:1", PodTemplate: map[string]any{"securityContext": map[string]any{"runAsUser": 1000}}}, nil)
	b2, _ := New(Config{Image: "busybox:1", PodTemplate: map[string]any{"securityContext": map[string]any{"runAsUser": 1001}}}, nil)
	id1, _ := b1.Identity(context.Background(), &exec.Spec{})
	id2, _ := b2.Identity(context.Background(), &exec.Spec{})
	if !strings.HasPrefix(id1, "kubernetes tag:busybox:1 template:") || id1 == id2 {
		t.Errorf("identities with templates = %q, %q; want distinct ones with a template digest", id1, id2)
	}

	b, _ := New(Config{}, nil)
	if _, err := b.Identity(context.Background(), &exec.Spec{Task: "t"}); !errors.Is(err, exec.ErrStart) {
		t.Errorf("Identity without an image: %v, want an error wrapping exec.ErrStart", err)
	}
}
