package kube

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestParseConfig(t *testing.T) {
	yes := true
	tests := []struct {
		name  string
		opts  map[string]any
		check func(t *testing.T, c Config)
		err   string // substring of the error; "" means no error
	}{
		{name: "empty", opts: map[string]any{}, check: func(t *testing.T, c Config) {
			if c.Image != "" || c.Concurrency != 0 || c.RunAsNonRoot != nil || c.PodTemplate != nil {
				t.Errorf("zero config expected, got %+v", c)
			}
		}},
		{name: "scalars", opts: map[string]any{
			"type": "kubernetes", "kubeconfig": "/k/config", "context": "ci", "namespace": "builds",
			"image": "busybox:1.36", "image_pull_policy": "ifnotpresent", "helper_image": "busybox@sha256:" + strings.Repeat("a", 64),
			"service_account": "builder", "run_as_non_root": true, "concurrency": 4.0, "owner": "ci-host:42",
		}, check: func(t *testing.T, c Config) {
			want := Config{Kubeconfig: "/k/config", Context: "ci", Namespace: "builds", Image: "busybox:1.36",
				ImagePullPolicy: PullIfNotPresent, HelperImage: "busybox@sha256:" + strings.Repeat("a", 64),
				ServiceAccount: "builder", RunAsNonRoot: &yes, Concurrency: 4, Owner: "ci-host:42"}
			if c.Kubeconfig != want.Kubeconfig || c.Context != want.Context || c.Namespace != want.Namespace ||
				c.Image != want.Image || c.ImagePullPolicy != want.ImagePullPolicy || c.HelperImage != want.HelperImage ||
				c.ServiceAccount != want.ServiceAccount || c.RunAsNonRoot == nil || !*c.RunAsNonRoot ||
				c.Concurrency != want.Concurrency || c.Owner != want.Owner {
				t.Errorf("got %+v, want %+v", c, want)
			}
		}},
		{name: "start_timeout string", opts: map[string]any{"start_timeout": "90s"}, check: func(t *testing.T, c Config) {
			if c.StartTimeout != 90*time.Second {
				t.Errorf("StartTimeout = %v, want 90s", c.StartTimeout)
			}
		}},
		{name: "start_timeout seconds", opts: map[string]any{"start_timeout": 2.5}, check: func(t *testing.T, c Config) {
			if c.StartTimeout != 2500*time.Millisecond {
				t.Errorf("StartTimeout = %v, want 2.5s", c.StartTimeout)
			}
		}},
		{name: "resources", opts: map[string]any{"resources": map[string]any{
			"requests": map[string]any{"cpu": "500m", "memory": "1Gi"},
			"limits":   map[string]any{"memory": 2147483648},
		}}, check: func(t *testing.T, c Config) {
			if q := c.Resources.Requests[corev1.ResourceCPU]; q.Cmp(resource.MustParse("500m")) != 0 {
				t.Errorf("cpu request = %v", q.String())
			}
			if q := c.Resources.Limits[corev1.ResourceMemory]; q.Cmp(resource.MustParse("2Gi")) != 0 {
				t.Errorf("memory limit = %v", q.String())
			}
		}},
		{name: "maps and tolerations", opts: map[string]any{
			"node_selector": map[string]any{"kubernetes.io/arch": "amd64"},
			"labels":        map[string]any{"team": "build", "version": 2},
			"annotations":   map[string]any{"example.com/note": "hello world"},
			"tolerations":   []any{map[string]any{"key": "dedicated", "operator": "Equal", "value": "ci", "effect": "NoSchedule"}},
		}, check: func(t *testing.T, c Config) {
			if c.NodeSelector["kubernetes.io/arch"] != "amd64" || c.Labels["version"] != "2" || c.Annotations["example.com/note"] != "hello world" {
				t.Errorf("maps = %v %v %v", c.NodeSelector, c.Labels, c.Annotations)
			}
			if len(c.Tolerations) != 1 || c.Tolerations[0].Key != "dedicated" || c.Tolerations[0].Effect != corev1.TaintEffectNoSchedule {
				t.Errorf("tolerations = %+v", c.Tolerations)
			}
		}},
		{name: "pod_template spec", opts: map[string]any{"pod_template": map[string]any{"priorityClassName": "low"}}, check: func(t *testing.T, c Config) {
			if c.PodTemplate["priorityClassName"] != "low" {
				t.Errorf("PodTemplate = %v", c.PodTemplate)
			}
		}},
		{name: "pod_template pod", opts: map[string]any{"pod_template": map[string]any{
			"metadata": map[string]any{"labels": map[string]any{"a": "b"}},
			"spec":     map[string]any{"containers": []any{map[string]any{"name": "task", "env": []any{map[string]any{"name": "X", "value": "1"}}}}},
		}}},

		{name: "unknown key", opts: map[string]any{"imagee": "x"}, err: `unknown config key "imagee"`},
		{name: "wrong type", opts: map[string]any{"type": "docker"}, err: `config key "type": is "docker", want "kubernetes"`},
		{name: "image not a string", opts: map[string]any{"image": 3}, err: `config key "image": want a string, got a number`},
		{name: "bad pull policy", opts: map[string]any{"image_pull_policy": "sometimes"}, err: `config key "image_pull_policy": "sometimes" is not one of`},
		{name: "bad namespace", opts: map[string]any{"namespace": "Build_NS"}, err: `config key "namespace"`},
		{name: "bad label key", opts: map[string]any{"labels": map[string]any{"a b": "c"}}, err: `config key "labels": "a b" is not a label key`},
		{name: "bad label value", opts: map[string]any{"labels": map[string]any{"a": "b c"}}, err: `config key "labels": a: "b c" is not a label value`},
		{name: "reserved label", opts: map[string]any{"labels": map[string]any{LabelOwner: "me"}}, err: `"rustypipe.owner" is reserved`},
		{name: "reserved annotation", opts: map[string]any{"annotations": map[string]any{LabelTask: "x"}}, err: `config key "annotations": "rustypipe.task" is reserved`},
		{name: "resources unknown field", opts: map[string]any{"resources": map[string]any{"request": map[string]any{}}}, err: `config key "resources": json: unknown field "request"`},
		{name: "bad quantity", opts: map[string]any{"resources": map[string]any{"limits": map[string]any{"cpu": "lots"}}}, err: `config key "resources"`},
		{name: "tolerations not a list", opts: map[string]any{"tolerations": "all"}, err: `config key "tolerations"`},
		{name: "pod_template unknown field", opts: map[string]any{"pod_template": map[string]any{"nodeSelektor": map[string]any{}}}, err: `config key "pod_template": json: unknown field "nodeSelektor"`},
		{name: "pod_template stray key", opts: map[string]any{"pod_template": map[string]any{"spec": map[string]any{}, "status": map[string]any{}}}, err: `config key "pod_template": a partial Pod has only metadata and spec, not "status"`},
		{name: "negative concurrency", opts: map[string]any{"concurrency": -1}, err: `config key "concurrency": -1 must not be negative`},
		{name: "fractional concurrency", opts: map[string]any{"concurrency": 1.5}, err: `config key "concurrency": want a whole number`},
		{name: "bad duration", opts: map[string]any{"start_timeout": "soon"}, err: `config key "start_timeout": "soon" is not a duration`},
		{name: "bad owner", opts: map[string]any{"owner": "host"}, err: `config key "owner": "host" is not hostname:pid`},
		{name: "run_as_non_root string", opts: map[string]any{"run_as_non_root": "yes"}, err: `config key "run_as_non_root": want true or false`},
		{name: "image with space", opts: map[string]any{"image": "busy box"}, err: `config key "image": "busy box" is not an image reference`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig(tc.opts)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseConfig error = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
			if _, err := New(c, nil); err != nil {
				t.Errorf("New refuses what ParseConfig accepted: %v", err)
			}
		})
	}
}

func TestParseConfigHome(t *testing.T) {
	t.Setenv("HOME", "/home/someone")
	t.Setenv("USERPROFILE", "/home/someone")
	c, err := ParseConfig(map[string]any{"kubeconfig": "~/.kube/ci"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(c.Kubeconfig, ".kube/ci") && !strings.HasSuffix(c.Kubeconfig, `.kube\ci`) || strings.HasPrefix(c.Kubeconfig, "~") {
		t.Errorf("Kubeconfig = %q, want it under the home directory", c.Kubeconfig)
	}
}
