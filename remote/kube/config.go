package kube

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/rustypipe/rustypipe/exec/backendkit"
)

// Image pull policies, the values of Config.ImagePullPolicy.
const (
	PullAlways       = string(corev1.PullAlways)
	PullIfNotPresent = string(corev1.PullIfNotPresent)
	PullNever        = string(corev1.PullNever)
)

// DefaultStartTimeout is how long a pod may take from its creation until
// its task starts when Config.StartTimeout is 0: long enough to pull a
// large image or wait for a cluster autoscaler to add a node, short enough
// that a pod that can never be scheduled fails the task in minutes.
const DefaultStartTimeout = 5 * time.Minute

// Config is a Kubernetes backend's configuration, as written under a named
// backend of a pipeline (`backends: {NAME: {type: kubernetes, ...}}`).
type Config struct {
	Kubeconfig string // kubeconfig file; "" resolves as kubectl does (KUBECONFIG, ~/.kube/config, in-cluster)
	Context    string // kubeconfig context; "" is the current one
	Namespace  string // namespace of the pods; "" is the context's, else "default"

	Image           string // the default image; a task's `image` (Spec.Image) overrides it
	ImagePullPolicy string // PullAlways, PullIfNotPresent, PullNever or "" (the cluster's default)
	HelperImage     string // image of the keeper container that copies the outputs out (needs sh, tar, sleep); "" is the task's image
	ServiceAccount  string // the pods' service account; "" is the namespace's default, without a mounted token

	Resources    corev1.ResourceRequirements // requests and limits of the task's container
	NodeSelector map[string]string           // the pods' node selector
	Tolerations  []corev1.Toleration         // the pods' tolerations
	Labels       map[string]string           // extra labels of every pod
	Annotations  map[string]string           // extra annotations of every pod

	// PodTemplate is a partial Pod ({metadata, spec}) or PodSpec merged over
	// the pod the backend builds, as a strategic merge patch: containers
	// merge by name ("task"; "keeper" when the task has outputs).
	PodTemplate map[string]any

	RunAsNonRoot *bool         // the pods' securityContext.runAsNonRoot; nil leaves it unset
	Concurrency  int           // at most this many pods of this backend at once; 0 is no limit of its own
	StartTimeout time.Duration // from pod creation until the task starts; 0 is DefaultStartTimeout
	Owner        string        // "hostname:pid" of the rustypipe process the pods belong to; "" is this process
}

// ParseConfig decodes a backend's options as decoded from YAML or JSON: a
// map from key to string, number, bool, list or map. The keys are those of
// Config in snake_case (kubeconfig, context, namespace, image,
// image_pull_policy, helper_image, service_account, resources,
// node_selector, tolerations, labels, annotations, pod_template,
// run_as_non_root, concurrency, start_timeout, owner), plus an optional
// "type" that must be "kubernetes". Unknown keys, values of the wrong type
// and invalid values are errors that name the key.
//
// resources is {requests: {cpu: 500m, memory: 1Gi}, limits: {...}} as in a
// Pod; tolerations is a list of Kubernetes tolerations; pod_template is a
// partial Pod or PodSpec whose fields are checked against the Pod schema
// (an unknown field is an error). image_pull_policy is Always,
// IfNotPresent or Never, in any case. start_timeout is a duration ("90s",
// "5m") or a number of seconds. kubeconfig may start with "~/".
func ParseConfig(opts map[string]any) (Config, error) {
	var c Config
	o := backendkit.NewOptions("kube", opts)
	o.Type("kubernetes")
	o.Field("kubeconfig", func(v any) error {
		s, err := backendkit.AsString(v)
		if err == nil {
			c.Kubeconfig, err = expandHome(s)
		}
		return err
	})
	o.String("context", &c.Context)
	o.String("namespace", &c.Namespace)
	o.String("image", &c.Image)
	o.Field("image_pull_policy", func(v any) error {
		s, err := backendkit.AsString(v)
		c.ImagePullPolicy = normalizePullPolicy(s)
		return err
	})
	o.String("helper_image", &c.HelperImage)
	o.String("service_account", &c.ServiceAccount)
	o.Field("resources", func(v any) error { return decodeStrict(v, &c.Resources) })
	o.StringMap("node_selector", &c.NodeSelector)
	o.Field("tolerations", func(v any) error { return decodeStrict(v, &c.Tolerations) })
	o.StringMap("labels", &c.Labels)
	o.StringMap("annotations", &c.Annotations)
	o.Field("pod_template", func(v any) (err error) { c.PodTemplate, err = backendkit.AsMap(v); return err })
	o.Field("run_as_non_root", func(v any) error {
		b, err := backendkit.AsBool(v)
		if err == nil {
			c.RunAsNonRoot = &b
		}
		return err
	})
	o.Int("concurrency", &c.Concurrency)
	o.Field("start_timeout", func(v any) (err error) { c.StartTimeout, err = asDuration(v); return err })
	o.String("owner", &c.Owner)
	if err := o.Err(); err != nil {
		return Config{}, err
	}
	if err := c.validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// validate checks what ParseConfig and New both need right; its errors name
// the YAML key.
func (c *Config) validate() error {
	keyErr := func(key, format string, a ...any) error {
		return fmt.Errorf("kube: config key %q: %s", key, fmt.Sprintf(format, a...))
	}
	if c.Namespace != "" {
		if errs := validation.IsDNS1123Label(c.Namespace); len(errs) > 0 {
			return keyErr("namespace", "%q is not a namespace name: %s", c.Namespace, strings.Join(errs, "; "))
		}
	}
	switch c.ImagePullPolicy {
	case "", PullAlways, PullIfNotPresent, PullNever:
	default:
		return keyErr("image_pull_policy", "%q is not one of Always, IfNotPresent, Never", c.ImagePullPolicy)
	}
	for key, img := range map[string]string{"image": c.Image, "helper_image": c.HelperImage} {
		if strings.ContainsAny(img, " \t\r\n") {
			return keyErr(key, "%q is not an image reference", img)
		}
	}
	if c.ServiceAccount != "" {
		if errs := validation.IsDNS1123Subdomain(c.ServiceAccount); len(errs) > 0 {
			return keyErr("service_account", "%q is not a service account name: %s", c.ServiceAccount, strings.Join(errs, "; "))
		}
	}
	if err := checkLabels("labels", c.Labels, true); err != nil {
		return err
	}
	if err := checkLabels("node_selector", c.NodeSelector, false); err != nil {
		return err
	}
	for k := range c.Annotations {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return keyErr("annotations", "%q is not an annotation key: %s", k, strings.Join(errs, "; "))
		}
		if isReserved(k) {
			return keyErr("annotations", "%q is reserved for rustypipe", k)
		}
	}
	if c.PodTemplate != nil {
		if _, err := templatePatch(c.PodTemplate); err != nil {
			return keyErr("pod_template", "%v", err)
		}
	}
	if c.Concurrency < 0 {
		return keyErr("concurrency", "%d must not be negative", c.Concurrency)
	}
	if c.StartTimeout < 0 {
		return keyErr("start_timeout", "%v must not be negative", c.StartTimeout)
	}
	if c.Owner != "" {
		if _, _, ok := backendkit.ParseOwner(c.Owner); !ok {
			return keyErr("owner", "%q is not hostname:pid", c.Owner)
		}
	}
	return nil
}

// checkLabels checks label keys and values; reserved refuses the keys that
// rustypipe sets itself.
func checkLabels(key string, m map[string]string, reserved bool) error {
	for k, v := range m {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return fmt.Errorf("kube: config key %q: %q is not a label key: %s", key, k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return fmt.Errorf("kube: config key %q: %s: %q is not a label value: %s", key, k, v, strings.Join(errs, "; "))
		}
		if reserved && isReserved(k) {
			return fmt.Errorf("kube: config key %q: %q is reserved for rustypipe", key, k)
		}
	}
	return nil
}

// isReserved reports whether a label or annotation key is one that the
// backend sets on every pod.
func isReserved(k string) bool {
	return k == LabelRunID || k == LabelTask || k == LabelOwner
}

// normalizePullPolicy accepts the pull policies in any case.
func normalizePullPolicy(s string) string {
	for _, p := range []string{PullAlways, PullIfNotPresent, PullNever} {
		if strings.EqualFold(s, p) {
			return p
		}
	}
	return s
}

// expandHome replaces a leading "~/" with the user's home directory.
func expandHome(p string) (string, error) {
	rest, ok := strings.CutPrefix(p, "~/")
	if !ok {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, filepath.FromSlash(rest)), nil
}

// decodeStrict converts v, as decoded from YAML or JSON, into the
// Kubernetes type that dst points to, refusing fields the type does not
// have.
func decodeStrict(v any, dst any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("cannot encode as JSON: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return err
	}
	return nil
}

// asDuration accepts a Go duration string or a number of seconds.
func asDuration(v any) (time.Duration, error) {
	switch v := v.(type) {
	case string:
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration such as 90s or 5m", v)
		}
		return d, nil
	case int, int64, uint64, float64:
		f, _ := strconv.ParseFloat(fmt.Sprint(v), 64)
		if f < 0 || math.IsNaN(f) || f > math.MaxInt64/float64(time.Second) {
			return 0, fmt.Errorf("%v is not a number of seconds", v)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	return 0, fmt.Errorf("want a duration such as 90s or a number of seconds, got %s", backendkit.TypeName(v))
}
