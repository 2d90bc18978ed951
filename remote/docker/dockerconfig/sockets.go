package dockerconfig

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Sockets are the paths of the engine's API socket, which no bind mount may
// expose to a task.
type Sockets []string

// EngineSockets returns the paths of the engine's API socket: the standard
// ones, and that of dockerHost (DOCKER_HOST's value) when it names a unix
// socket, each also with its symlinks resolved.
func EngineSockets(dockerHost string) Sockets {
	socks := Sockets{"/var/run/docker.sock", "/run/docker.sock"}
	if p, ok := strings.CutPrefix(dockerHost, "unix://"); ok && p != "" {
		socks = append(socks, p)
	}
	for _, p := range socks { // the range is over the three standard paths at most
		if r, err := filepath.EvalSymlinks(p); err == nil && r != p {
			socks = append(socks, r)
		}
	}
	return socks
}

// CheckSource refuses a bind-mount source that is the engine's socket, a
// directory that contains it, or a named pipe: any of them would hand the
// task control of the engine.
func (s Sockets) CheckSource(src string) error {
	if strings.HasPrefix(src, `\\.\pipe\`) || strings.HasPrefix(src, `//./pipe/`) {
		return fmt.Errorf("mount source %s is a named pipe; the engine's API is never mounted into a task", src)
	}
	cands := []string{filepath.Clean(src)}
	if r, err := filepath.EvalSymlinks(src); err == nil {
		cands = append(cands, r)
	}
	for _, c := range cands {
		for _, sock := range s {
			if rel, err := filepath.Rel(c, filepath.FromSlash(sock)); err == nil && (rel == "." || filepath.IsLocal(rel)) {
				return fmt.Errorf("mount source %s would expose the Docker socket %s; the engine's API is never mounted into a task", src, sock)
			}
		}
	}
	return nil
}

// CheckMounts refuses c's mounts whose absolute source CheckSource refuses;
// the error names the key. A relative source can only be checked once the
// workspace is known, by the backend's Run.
func (c *Config) CheckMounts(s Sockets) error {
	for i, m := range c.Mounts {
		if !IsHostAbs(m.Source) {
			continue
		}
		if err := s.CheckSource(m.Source); err != nil {
			return fmt.Errorf("docker: config key \"mounts\": item %d: %w", i, err)
		}
	}
	return nil
}

// IsHostAbs reports whether a mount source is an absolute path for the
// engine's host: absolute here, or rooted with "/".
func IsHostAbs(src string) bool {
	return filepath.IsAbs(src) || strings.HasPrefix(src, "/")
}
