package docker

import "github.com/rustypipe/rustypipe/remote/docker/dockerconfig"

// Pull policies, the values of Config.Pull.
const (
	PullMissing = dockerconfig.PullMissing // pull only when the image is not present locally (the default)
	PullAlways  = dockerconfig.PullAlways  // pull once per Backend before the image is first used
	PullNever   = dockerconfig.PullNever   // never pull; a missing image is an error
)

// DefaultWorkdir is the directory inside the container that stands for the
// workspace root when Config.Workdir is empty.
const DefaultWorkdir = dockerconfig.DefaultWorkdir

// Config is a Docker backend's configuration, as written under a named
// backend of a pipeline (`backends: {NAME: {type: docker, ...}}`). It is
// defined in package dockerconfig, which rustypipe uses to check it without
// linking the Engine API client.
type Config = dockerconfig.Config

// Mount is a bind mount of a host path into the task's containers.
type Mount = dockerconfig.Mount

// ParseConfig decodes a backend's options as decoded from YAML or JSON into
// a Config; see dockerconfig.Parse for the keys and values. Its errors name
// the key.
func ParseConfig(opts map[string]any) (Config, error) {
	return dockerconfig.Parse(opts)
}
