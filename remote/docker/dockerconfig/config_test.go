package dockerconfig

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		opts map[string]any
		want Config
	}{
		{"empty", nil, Config{}},
		{"all keys", map[string]any{
			"type":            "docker",
			"image":           "alpine:3.20",
			"pull":            "never",
			"workdir":         "/src",
			"user":            "1000:1000",
			"network":         "none",
			"env":             map[string]any{"A": "x", "N": 3, "B": true, "F": 1.5},
			"cpus":            1.5,
			"memory":          "512MB",
			"mounts":          []any{"/cache:/cache", "rel/dir:/data:rw", map[string]any{"source": "/opt", "target": "/opt", "read_write": true}},
			"concurrency":     4,
			"mount_workspace": true,
		}, Config{
			Image: "alpine:3.20", Pull: "never", Workdir: "/src", User: "1000:1000", Network: "none",
			Env:  map[string]string{"A": "x", "N": "3", "B": "true", "F": "1.5"},
			CPUs: 1.5, Memory: 512 << 20,
			Mounts: []Mount{
				{Source: "/cache", Target: "/cache"},
				{Source: "rel/dir", Target: "/data", ReadWrite: true},
				{Source: "/opt", Target: "/opt", ReadWrite: true},
			},
			Concurrency: 4, MountWorkspace: true,
		}},
		{"numbers from JSON", map[string]any{"cpus": float64(2), "memory": float64(1 << 30), "concurrency": float64(2)},
			Config{CPUs: 2, Memory: 1 << 30, Concurrency: 2}},
		{"cpus as string", map[string]any{"cpus": "0.5"}, Config{CPUs: 0.5}},
		{"memory as int", map[string]any{"memory": 1048576}, Config{Memory: 1 << 20}},
		{"mount ro explicit", map[string]any{"mounts": []any{"/a:/b:ro"}}, Config{Mounts: []Mount{{Source: "/a", Target: "/b"}}}},
		{"windows source", map[string]any{"mounts": []any{`C:\data:/data`}}, Config{Mounts: []Mount{{Source: `C:\data`, Target: "/data"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.opts)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name    string
		opts    map[string]any
		wantKey string // the key the error must name
	}{
		{"unknown key", map[string]any{"imag": "x"}, `"imag"`},
		{"wrong type", map[string]any{"type": "ssh"}, `"type"`},
		{"image not string", map[string]any{"image": 3}, `"image"`},
		{"bad pull", map[string]any{"pull": "sometimes"}, `"pull"`},
		{"relative workdir", map[string]any{"workdir": "src"}, `"workdir"`},
		{"root workdir", map[string]any{"workdir": "/"}, `"workdir"`},
		{"unclean workdir", map[string]any{"workdir": "/a/../b"}, `"workdir"`},
		{"env not map", map[string]any{"env": []any{"A=1"}}, `"env"`},
		{"env value list", map[string]any{"env": map[string]any{"A": []any{}}}, `"env"`},
		{"env bad name", map[string]any{"env": map[string]any{"A=B": "x"}}, `"env"`},
		{"cpus zero", map[string]any{"cpus": 0}, `"cpus"`},
		{"cpus text", map[string]any{"cpus": "many"}, `"cpus"`},
		{"memory unit", map[string]any{"memory": "12 parsecs"}, `"memory"`},
		{"memory negative", map[string]any{"memory": -1}, `"memory"`},
		{"memory fraction", map[string]any{"memory": 1.5}, `"memory"`},
		{"mounts not list", map[string]any{"mounts": "/a:/b"}, `"mounts"`},
		{"mount no target", map[string]any{"mounts": []any{"/a"}}, `"mounts"`},
		{"mount relative target", map[string]any{"mounts": []any{"/a:b"}}, `"mounts"`},
		{"mount unknown key", map[string]any{"mounts": []any{map[string]any{"src": "/a"}}}, `"mounts"`},
		{"mount map no source", map[string]any{"mounts": []any{map[string]any{"target": "/a"}}}, `"mounts"`},
		{"concurrency fraction", map[string]any{"concurrency": 1.5}, `"concurrency"`},
		{"concurrency negative", map[string]any{"concurrency": -2}, `"concurrency"`},
		{"mount_workspace not bool", map[string]any{"mount_workspace": "yes"}, `"mount_workspace"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.opts)
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tc.wantKey) {
				t.Errorf("error %q does not name the key %s", err, tc.wantKey)
			}
		})
	}
}

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"1024", 1024},
		{"1k", 1 << 10},
		{"1KB", 1 << 10},
		{"1KiB", 1 << 10},
		{"512m", 512 << 20},
		{"512 MB", 512 << 20},
		{"1.5g", 3 << 29},
		{"2GiB", 2 << 30},
		{"1t", 1 << 40},
		{"100b", 100},
	}
	for _, tc := range tests {
		got, err := parseBytes(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "m", "1x", "-1m", "1.2.3k", "1 m b"} {
		if got, err := parseBytes(bad); err == nil {
			t.Errorf("parseBytes(%q) = %d, want an error", bad, got)
		}
	}
}

func TestParseBytesExact(t *testing.T) {
	for in, want := range map[string]int64{
		"9007199254740993":    1<<53 + 1, // not a float64
		"9223372036854775807": math.MaxInt64,
		"8388607t":            8388607 << 40,
	} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, big := range []string{"9223372036854775808", "8388608t", "99999999999999999999k"} {
		if got, err := parseBytes(big); err == nil || !strings.Contains(err.Error(), "too large") {
			t.Errorf("parseBytes(%q) = %d, %v; want an error saying it is too large", big, got, err)
		}
	}
}

// TestOptionsRoundTrip checks that the options rustypipe sends the helper,
// once through JSON as the protocol carries them, decode to the Config
// rustypipe parsed from YAML: the identity, and so every cache key, depends
// on it.
func TestOptionsRoundTrip(t *testing.T) {
	fromYAML := []map[string]any{
		nil,
		{"image": "alpine:3.20"},
		{
			"type": "docker", "image": "alpine:3.20", "pull": "always", "workdir": "/src",
			"user": "1000:1000", "network": "none",
			// Values JSON would not carry exactly as numbers: an integer
			// beyond float64's precision, and numbers that format alike.
			"env":    map[string]any{"BIG": uint64(12345678901234567891), "I64": int64(-9007199254740993), "N": 3, "F": 1.25, "B": false, "S": "x y", "E": ""},
			"cpus":   0.1,
			"memory": uint64(1<<53 + 1),
			"mounts": []any{"/cache:/cache", "rel/dir:/data:rw", `C:\data:/win`, map[string]any{"source": "/opt", "target": "/opt", "read_write": true}},

			"concurrency": 3, "mount_workspace": true,
		},
		{"cpus": "1.5", "memory": "1.5g", "env": map[string]any{}, "mounts": []any{}},
	}
	for i, opts := range fromYAML {
		want, err := Parse(opts)
		if err != nil {
			t.Fatalf("%d: Parse: %v", i, err)
		}
		raw, err := json.Marshal(want.Options())
		if err != nil {
			t.Fatalf("%d: encode Options: %v", i, err)
		}
		var sent map[string]any
		if err := json.Unmarshal(raw, &sent); err != nil {
			t.Fatal(err)
		}
		got, err := Parse(sent)
		if err != nil {
			t.Fatalf("%d: Parse(%s): %v", i, raw, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%d: through %s:\n got %+v\nwant %+v", i, raw, got, want)
		}
	}
}

func TestCheckMounts(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "run", "engine.sock")
	socks := EngineSockets("unix://" + sock)
	for _, src := range []string{"/var/run/docker.sock", "/run/docker.sock", "/var/run", "/run", "/", sock, filepath.Dir(sock), "//./pipe/docker_engine"} {
		c := Config{Mounts: []Mount{{Source: t.TempDir(), Target: "/ok"}, {Source: src, Target: "/m"}}}
		err := c.CheckMounts(socks)
		if err == nil || !strings.Contains(err.Error(), `config key "mounts": item 1`) {
			t.Errorf("CheckMounts with a mount of %s: %v, want a refusal naming the key and the item", src, err)
		}
	}
	if runtime.GOOS != "windows" {
		link := filepath.Join(t.TempDir(), "link")
		if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Dir(sock), link); err != nil {
			t.Fatal(err)
		}
		c := Config{Mounts: []Mount{{Source: link, Target: "/m"}}}
		if err := c.CheckMounts(socks); err == nil {
			t.Errorf("CheckMounts with a mount of %s, a symlink to the socket's directory: no error", link)
		}
	}
	// A relative source is left to the backend, which knows the workspace.
	c := Config{Mounts: []Mount{{Source: t.TempDir(), Target: "/a"}, {Source: "run", Target: "/r"}}}
	if err := c.CheckMounts(socks); err != nil {
		t.Errorf("CheckMounts: %v, want no error", err)
	}
}
