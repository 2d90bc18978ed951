// Package dockerconfig decodes and checks the options of a Docker backend
// (`backends: {NAME: {type: docker, ...}}`). It is separate from package
// docker, which links the Engine API client, so that rustypipe can refuse a
// bad configuration before a build starts, naming the key and the position
// in the pipeline file, without linking that client: the backend itself
// runs in the rustypipe-docker helper.
//
// Parse decodes the options as decoded from YAML or JSON into a Config;
// Config.Options encodes a Config back into options that Parse decodes to
// an equal Config, also after a round trip through JSON, so that the
// helper, which receives them as JSON, runs with exactly the configuration
// rustypipe checked (the backend's identity, and so every cache key,
// depends on it). CheckMounts refuses a mount that would expose the
// engine's socket to a task.
//
// Invariants:
//   - Imports only the standard library and exec/backendkit.
//   - Every error names the YAML key it is about.
//   - Parse does no I/O; CheckMounts only reads DOCKER_HOST's socket path
//     and resolves symlinks of the local file system.
package dockerconfig
