// Package docker is the exec.Backend that runs each task attempt in a fresh
// Docker container, through the engine's API (never the docker CLI). It
// imports only the exec tree from this module (and dockerconfig).
//
// rustypipe does not link this package, whose Engine API client would slow
// the start of every invocation: the rustypipe-docker helper serves
// HelperBackend over the external-backend protocol (package exec/external),
// and rustypipe checks the configuration with package dockerconfig only.
// The backend behaves the same in process and in the helper; the tests run
// it both ways.
//
// # Configuration
//
// A pipeline names its backends (`backends: {alpine: {type: docker, image:
// alpine:3.20}}`) and a task picks one (`backend: alpine`) and may override
// the image (`image:`, Spec.Image). ParseConfig decodes the options into a
// Config (both defined in dockerconfig); New validates it. The engine is DOCKER_HOST's (with
// DOCKER_TLS_VERIFY, DOCKER_CERT_PATH, DOCKER_API_VERSION) or the
// platform's default socket; Docker CLI contexts are not read. New does no
// I/O: the client is created and the API version negotiated on first use.
//
// # One attempt
//
// Run takes a slot of the backend's concurrency limit (Config.Concurrency,
// on top of the scheduler's global limit), removes once per Backend the
// containers that dead rustypipe processes left behind (Reap), resolves the
// image to its ID (pulling it as Config.Pull says, once per Backend), and
// creates a container from that ID:
//
//   - command: "<shell> -c <script>" for sh (the default) and bash, as the
//     image's entrypoint is replaced; pwsh, powershell and cmd as in the
//     local backend. A shell missing from the image is a start error.
//   - init: the engine's init process is PID 1 (docker run --init), so that
//     SIGTERM reaches the shell and orphans are reaped.
//   - working directory: Config.Workdir (default /workspace), which stands
//     for the workspace root, joined with Spec.Dir.
//   - environment: Spec.Env without the variables that describe the host —
//     PATH, HOME, USER, SHELL, TMPDIR and PWD — so that the image's PATH and
//     HOME apply; then Config.Env on top. The image's other variables stay
//     unless the task sets them.
//   - labels: LabelRunID, LabelTask and LabelOwner ("hostname:pid" of
//     rustypipe), and in a helper LabelHelper ("hostname:pid" of the
//     helper).
//   - user, network, CPU and memory limits from Config; Config.Mounts as
//     bind mounts, read-only unless ReadWrite, relative sources resolved
//     against the workspace.
//
// Inputs are copied in, not mounted: one tar stream, written while it is
// sent (CopyToContainer), holds the workdir, the working directory and every
// Spec.Inputs path (files follow symlinks; directories are copied whole).
// With Config.User the copies belong to that user. The container is then
// attached (stdout and stderr demultiplexed as they arrive, so one writer
// given for both is never called concurrently) and started. A non-zero exit
// is a Result. After an exit on its own, the files matching Spec.Outputs are
// copied out of the workdir (CopyFromContainer of each glob's literal
// prefix, entries renamed from the engine's base-name prefix to
// workspace-relative paths) and restored through exec.Restorer.ExtractTar
// with exec.OutputMatcher, streamed end to end: memory does not grow with
// the size of the outputs. Hard-linked outputs are fetched one by one.
// Outputs are copied whatever the exit code, never after a stop. The
// container is removed (with its anonymous volumes) before Run returns,
// whatever happened.
//
// With Config.MountWorkspace the workspace is bind-mounted read-write at the
// workdir instead, and nothing is copied. Files the task writes belong to
// the container's user, and the mount needs the engine on this host.
//
// # Cancellation
//
// When ctx is done, the container's init gets SIGTERM, which it passes to
// the shell; after Spec.Grace, or at once when Spec.Kill is closed, the
// container gets SIGKILL. Run then returns the Result and an error wrapping
// context.Cause(ctx). Only after such a stop is an exit status of 128+N read
// as signal N (ExitCode -1, Signal "terminated" or "killed"); otherwise the
// status is the task's exit code, except that a container the kernel killed
// for exceeding its memory limit is reported as killed. (The engine can
// report that after the exit; a task that exits with 128+9 otherwise is
// reported up to about 0.8 s later while the backend asks again.) A ctx done before
// the container started returns a nil Result; a half-made container is
// removed.
//
// # Identity and caching
//
// Backend implements exec.Identifier: "docker sha256:..." names the image's
// ID, not its tag, so retagging an image to other content invalidates the
// tasks that use it, and an unchanged image keeps their hits however it is
// tagged. User, workdir and env of the backend, when set, are appended
// (env as a digest), since they change what a task sees. The local
// backend's identity ("local linux/amd64") differs, so local and Docker
// tasks never share cache entries, and two Docker backends share them
// exactly when their identities are equal. The image is resolved once per
// Backend, shared by Identity and Run, so the key and the container agree
// even if the tag moves during a run. Network, CPU and memory limits and
// mounts are not part of the identity.
//
// The helper announces the protocol's identity capability and answers each
// identity request with Identity, which the client keeps per image: keys
// are the same whether the backend runs in process or in the helper. A
// helper started anew after one died resolves the images anew.
//
// # Safety
//
// The engine's socket is never mounted into a task: New and Run refuse a
// mount whose source is /var/run/docker.sock, /run/docker.sock, DOCKER_HOST's
// socket, a directory that contains one of them, or a named pipe. An image
// that is not present and cannot be pulled is an error wrapping
// ErrImageUnavailable and exec.ErrStart that names the image and gives the
// engine's reason in one line.
//
// # Leftovers
//
// A rustypipe process that dies without cleaning up leaves containers
// labelled with its host name and pid. Reap, called automatically before a
// Backend's first container, removes those whose process no longer runs on
// this host. In the helper, the owner is the helper's parent, rustypipe, so
// that nothing of a live rustypipe is removed; a helper that dies while its
// rustypipe lives leaves containers whose LabelHelper names a process that
// no longer runs, and the next helper (rustypipe starts one for the next
// attempt) removes those.
package docker
