package dockerconfig

import (
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"

	"github.com/rustypipe/rustypipe/exec/backendkit"
)

// Pull policies, the values of Config.Pull.
const (
	PullMissing = "missing" // pull only when the image is not present locally (the default)
	PullAlways  = "always"  // pull once per Backend before the image is first used
	PullNever   = "never"   // never pull; a missing image is an error
)

// DefaultWorkdir is the directory inside the container that stands for the
// workspace root when Config.Workdir is empty.
const DefaultWorkdir = "/workspace"

// Config is a Docker backend's configuration, as written under a named
// backend of a pipeline (`backends: {NAME: {type: docker, ...}}`).
type Config struct {
	Image   string // the default image; a task's `image` (Spec.Image) overrides it
	Pull    string // PullMissing (""), PullAlways or PullNever
	Workdir string // absolute path inside the container that holds the workspace; "" is DefaultWorkdir
	User    string // user[:group] the task runs as; "" is the image's user
	Network string // the container's network mode ("none", "host", a network name); "" is the engine's default

	Env    map[string]string // set in the container on top of the task's environment
	CPUs   float64           // CPU quota, e.g. 1.5; 0 is no limit
	Memory int64             // memory limit in bytes; 0 is no limit
	Mounts []Mount           // extra bind mounts, read-only unless ReadWrite

	Concurrency    int  // at most this many containers of this backend at once; 0 is no limit of its own
	MountWorkspace bool // bind-mount the workspace at Workdir instead of copying inputs in and outputs out
}

// Mount is a bind mount of a host path into the task's containers.
type Mount struct {
	Source    string // host path; a relative one is relative to the workspace
	Target    string // absolute path inside the container
	ReadWrite bool   // mount read-write; the default is read-only
}

// Parse decodes a backend's options as decoded from YAML or JSON: a map
// from key to string, number, bool, list or map. The keys are those of
// Config in snake_case (image, pull, env, workdir, user, network, cpus,
// memory, mounts, concurrency, mount_workspace), plus an optional "type"
// that must be "docker". Unknown keys and values of the wrong type are
// errors that name the key; so are the values Validate refuses.
//
// memory is a number of bytes or a string with a unit: "512MB", "1.5g",
// "256MiB" (k, m, g, t with an optional b or ib; all are powers of 1024, as
// for `docker run --memory`). cpus is a number or a numeric string. env
// values may be strings, numbers or booleans. mounts is a list whose items
// are either "source:target[:ro|rw]" or a map with the keys source, target
// and read_write.
func Parse(opts map[string]any) (Config, error) {
	var c Config
	o := backendkit.NewOptions("docker", opts)
	o.Type("docker")
	o.String("image", &c.Image)
	o.String("pull", &c.Pull)
	o.Field("env", func(v any) (err error) { c.Env, err = asEnv(v); return err })
	o.String("workdir", &c.Workdir)
	o.String("user", &c.User)
	o.String("network", &c.Network)
	o.Field("cpus", func(v any) (err error) { c.CPUs, err = asCPUs(v); return err })
	o.Field("memory", func(v any) (err error) { c.Memory, err = asBytes(v); return err })
	o.Field("mounts", func(v any) (err error) { c.Mounts, err = asMounts(v); return err })
	o.Int("concurrency", &c.Concurrency)
	o.Bool("mount_workspace", &c.MountWorkspace)
	if err := o.Err(); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Options returns c as backend options that Parse decodes to a Config
// equal to c, also after they have been encoded to JSON and decoded again:
// strings, booleans, env values as strings, mounts as maps, and numbers
// that JSON carries exactly (memory as a string of bytes). Zero fields are
// left out. It is the form in which rustypipe hands a checked
// configuration to the rustypipe-docker helper.
func (c Config) Options() map[string]any {
	opts := map[string]any{}
	set := func(key, v string) {
		if v != "" {
			opts[key] = v
		}
	}
	set("image", c.Image)
	set("pull", c.Pull)
	set("workdir", c.Workdir)
	set("user", c.User)
	set("network", c.Network)
	if c.Env != nil {
		env := make(map[string]any, len(c.Env))
		for k, v := range c.Env {
			env[k] = v
		}
		opts["env"] = env
	}
	if c.CPUs != 0 {
		opts["cpus"] = strconv.FormatFloat(c.CPUs, 'g', -1, 64)
	}
	if c.Memory != 0 {
		opts["memory"] = strconv.FormatInt(c.Memory, 10)
	}
	if c.Mounts != nil {
		mounts := make([]any, len(c.Mounts))
		for i, m := range c.Mounts {
			mounts[i] = map[string]any{"source": m.Source, "target": m.Target, "read_write": m.ReadWrite}
		}
		opts["mounts"] = mounts
	}
	if c.Concurrency != 0 {
		opts["concurrency"] = c.Concurrency
	}
	if c.MountWorkspace {
		opts["mount_workspace"] = true
	}
	return opts
}

// Validate checks the fields of c that Parse cannot check by their type
// alone; its errors name the YAML key. The backend checks a Config it did
// not get from Parse with it.
func (c *Config) Validate() error {
	switch c.Pull {
	case "", PullMissing, PullAlways, PullNever:
	default:
		return fmt.Errorf("docker: config key \"pull\": %q is not one of missing, always, never", c.Pull)
	}
	if c.Workdir != "" {
		if !path.IsAbs(c.Workdir) || path.Clean(c.Workdir) != c.Workdir || c.Workdir == "/" {
			return fmt.Errorf("docker: config key \"workdir\": %q must be a clean absolute path other than /", c.Workdir)
		}
	}
	if c.CPUs < 0 || math.IsNaN(c.CPUs) || math.IsInf(c.CPUs, 0) {
		return fmt.Errorf("docker: config key \"cpus\": %v must be a positive number", c.CPUs)
	}
	if c.Memory < 0 {
		return fmt.Errorf("docker: config key \"memory\": %d must not be negative", c.Memory)
	}
	if c.Concurrency < 0 {
		return fmt.Errorf("docker: config key \"concurrency\": %d must not be negative", c.Concurrency)
	}
	for k := range c.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("docker: config key \"env\": %q is not a variable name", k)
		}
	}
	for i, m := range c.Mounts {
		if m.Source == "" {
			return fmt.Errorf("docker: config key \"mounts\": item %d has no source", i)
		}
		if !path.IsAbs(m.Target) || m.Target == "/" {
			return fmt.Errorf("docker: config key \"mounts\": item %d: target %q must be an absolute path inside the container other than /", i, m.Target)
		}
	}
	return nil
}

func asEnv(v any) (map[string]string, error) {
	m, ok := v.(map[string]any)
	if !ok {
		if v == nil {
			return nil, nil
		}
		return nil, fmt.Errorf("want a map of NAME: value, got %s", backendkit.TypeName(v))
	}
	env := make(map[string]string, len(m))
	for k, val := range m {
		s, ok := backendkit.ScalarString(val)
		if !ok {
			return nil, fmt.Errorf("%s: want a string, number or boolean, got %s", k, backendkit.TypeName(val))
		}
		env[k] = s
	}
	return env, nil
}

func asCPUs(v any) (float64, error) {
	var f float64
	switch v := v.(type) {
	case int:
		f = float64(v)
	case int64:
		f = float64(v)
	case uint64:
		f = float64(v)
	case float64:
		f = v
	case string:
		var err error
		if f, err = strconv.ParseFloat(strings.TrimSpace(v), 64); err != nil {
			return 0, fmt.Errorf("%q is not a number", v)
		}
	default:
		return 0, fmt.Errorf("want a number, got %s", backendkit.TypeName(v))
	}
	if f <= 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%v must be a positive number", v)
	}
	return f, nil
}

// byteUnits maps a lower-case unit suffix to its multiplier. As for
// `docker run --memory`, every unit is a power of 1024.
var byteUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40,
}

func asBytes(v any) (int64, error) {
	switch v := v.(type) {
	case int:
		if v >= 0 {
			return int64(v), nil
		}
	case int64:
		if v >= 0 {
			return v, nil
		}
	case uint64:
		if v <= math.MaxInt64 {
			return int64(v), nil
		}
	case float64:
		if v >= 0 && v == math.Trunc(v) && v < math.MaxInt64 {
			return int64(v), nil
		}
	case string:
		return parseBytes(v)
	default:
		return 0, fmt.Errorf("want a size such as 512MB, got %s", backendkit.TypeName(v))
	}
	return 0, fmt.Errorf("%v is not a size in bytes", v)
}

// parseBytes parses a size such as "512MB", "1.5g" or "1024".
func parseBytes(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(t)
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	mult, ok := byteUnits[unit]
	if ok && num != "" && !strings.Contains(num, ".") {
		// A whole number is taken exactly, so that Options' "<bytes>"
		// comes back unchanged however large.
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n > math.MaxInt64/mult {
			return 0, fmt.Errorf("%q is too large", s)
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || f < 0 {
		return 0, fmt.Errorf("%q is not a size such as 512MB, 1.5g or 1048576", s)
	}
	n := f * float64(mult)
	if n >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(n), nil
}

func asMounts(v any) ([]Mount, error) {
	list, ok := v.([]any)
	if !ok {
		if v == nil {
			return nil, nil
		}
		return nil, fmt.Errorf("want a list, got %s", backendkit.TypeName(v))
	}
	mounts := make([]Mount, 0, len(list))
	for i, item := range list {
		var m Mount
		var err error
		switch item := item.(type) {
		case string:
			m, err = parseMountString(item)
		case map[string]any:
			m, err = parseMountMap(item)
		default:
			err = fmt.Errorf("want \"source:target[:ro|rw]\" or a map, got %s", backendkit.TypeName(item))
		}
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", i, err)
		}
		mounts = append(mounts, m)
	}
	return mounts, nil
}

// parseMountString parses "source:target[:ro|rw]". The target is what
// follows the last colon (after an optional mode), so a Windows source with
// a drive letter works.
func parseMountString(s string) (Mount, error) {
	rest, m := s, Mount{}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		switch rest[i+1:] {
		case "rw":
			m.ReadWrite = true
			rest = rest[:i]
		case "ro":
			rest = rest[:i]
		}
	}
	i := strings.LastIndexByte(rest, ':')
	if i <= 0 || i == len(rest)-1 {
		return Mount{}, fmt.Errorf("%q: want source:target[:ro|rw]", s)
	}
	m.Source, m.Target = rest[:i], rest[i+1:]
	return m, nil
}

func parseMountMap(item map[string]any) (Mount, error) {
	var m Mount
	for k, v := range item {
		var err error
		switch k {
		case "source":
			m.Source, err = backendkit.AsString(v)
		case "target":
			m.Target, err = backendkit.AsString(v)
		case "read_write":
			m.ReadWrite, err = backendkit.AsBool(v)
		default:
			return Mount{}, fmt.Errorf("unknown key %q (want source, target, read_write)", k)
		}
		if err != nil {
			return Mount{}, fmt.Errorf("%s: %w", k, err)
		}
	}
	return m, nil
}
