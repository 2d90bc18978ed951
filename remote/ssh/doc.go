// Package ssh is the SSH backend: it runs tasks on a pool of remote hosts
// over golang.org/x/crypto/ssh and implements exec.Backend and
// exec.Identifier. It imports only exec from this module and passes the
// shared conformance suite, exec/exectest, against real OpenSSH servers.
//
// # Configuration
//
// ParseConfig decodes a pipeline's backend options (type: ssh, hosts,
// user, port, identity_file, known_hosts, host_key_policy, remote_dir,
// concurrency_per_host, identity) into a Config; New checks it, resolves
// each host entry ("user@host:port", or an alias of ~/.ssh/config with its
// HostName, User, Port and IdentityFile) and loads the keys. Precedence:
// the entry, then the backend's user and port, then ~/.ssh/config, then
// the local user name and port 22. The system-wide ssh_config is not read.
// Keys come from identity_file, the alias's IdentityFile, or else
// ~/.ssh/id_ed25519, id_ecdsa and id_rsa; a key that needs a passphrase is
// usable only through ssh-agent (SSH_AUTH_SOCK), whose keys are offered
// after the files'. Agent forwarding is never requested.
//
// # Host keys
//
// Every connection checks the host key with x/crypto/ssh/knownhosts
// against known_hosts (default ~/.ssh/known_hosts). An unknown host is
// refused with its key's fingerprint and how to trust it; a changed or
// revoked key is refused with a warning that it may be an attack. Both
// errors are *HostKeyError and wrap ErrHostKey. Under host_key_policy
// accept-new, the key of a host known_hosts does not list is appended to
// the file (created 0600 if needed) and enforced from then on, as
// OpenSSH's StrictHostKeyChecking=accept-new; a changed key is still
// refused. The client offers only the host key algorithms of the keys
// known_hosts holds for the host, so that a host with several key types
// does not present one that is not listed and look changed.
//
// # Running a task
//
// Each host has one connection, made on first use, kept alive with
// keepalive@openssh.com requests, and shared by its tasks, one SSH session
// each. A task takes a slot on the least-loaded host that has one free
// (concurrency_per_host per host; ties go to the host listed first) and
// waits while every host is full. Then:
//
//  1. One session runs a fixed /bin/sh script. It prints the process group
//     id on stderr, makes <remote_dir>/<random>-<task> (mode 0700) and
//     extracts into it a tar stream sent on stdin: ctl/task.sh (the command
//     line and environment) and the inputs under ws/. It then replaces
//     itself with the task's shell under `env -i`, in ws/<Spec.Dir>.
//  2. stdout and stderr are copied to the Spec's writers as they arrive.
//     What precedes a start marker with a random token (output of the
//     remote login shell's startup files, set-up errors) is not the task's
//     and is dropped, or quoted in the error when the set-up fails.
//  3. The exit status (or signal) of the session is the task's.
//  4. A second session kills what is left of the task's process group,
//     lists the files under the declared outputs' fixed prefixes, receives
//     the paths that match exec.OutputMatcher(Spec.Outputs), and returns
//     them as a tar stream, which exec.Restorer.ExtractTar writes into the
//     workspace: the same path-safe restore as the cache, so nothing can be
//     written outside the workspace or that was not declared. It then
//     removes the run directory.
//
// The task's stdin is empty. Input files are sent as regular files with
// their permission bits (a symlink is sent as its target's content).
//
// # Environment
//
// Spec.Env is the task's complete environment as computed on the local
// machine, so its PATH, HOME, USER, LOGNAME, SHELL and TMPDIR describe this
// machine. On the host these six come from the remote login instead (when
// set there), and every other variable of Spec.Env is passed as it is; no
// other remote variable reaches the task. The server's AcceptEnv is not
// involved.
//
// # Stopping
//
// Many servers ignore SSH signal requests, so the backend signals process
// groups itself. The task's shell leads its own process group: sshd starts
// each session with setsid(), and on a server that does not, the script
// restarts itself under setsid(1). When ctx is done, a second session sends
// SIGTERM (and SIGCONT) to the group; when Spec.Grace has passed or
// Spec.Kill is closed, SIGKILL. Run returns once the task's shell has
// exited and the rest of its group has been killed, so no process of the
// task remains on the host. Outputs of a stopped task are not brought
// back. Unlike the local backend, members of a group whose leader exited
// on SIGTERM get no more of the grace period: they are killed at once.
//
// # Failures
//
// A host that cannot be reached (or whose key or authentication is
// refused, or whose uname differs from the pool's) is reported once
// through the log function and skipped for a minute; the other hosts take
// its tasks. When no host is usable, or a connection is lost while a task
// runs, Run's error wraps ErrConnect, which the caller may retry; a task's
// own non-zero exit is a Result, never an error. ErrHostKey and ErrAuth
// mark refusals that a retry does not fix. A task whose connection was
// lost may go on running on the host, and its run directory stays under
// remote_dir.
//
// # Identity
//
// Backend.Identity, which goes into task keys, is "ssh " followed by the
// host's `uname -sm` (probed once per connection), and " identity=" and
// the identity key when it is set: "ssh Linux x86_64 identity=gcc-12".
// The host name is not part of it, so identical hosts share cache entries.
// All hosts of a backend must be alike: a host whose uname differs from
// the first one probed is skipped with a warning. Differences uname does
// not show (compilers, libraries) belong in the identity key.
//
// # Remote requirements
//
// A POSIX host whose login shell accepts sh syntax (sh, bash, dash, ksh,
// zsh), with /bin/sh, env, mkdir, rm, kill, uname, find with -print0, and
// a tar that reads NUL-separated names (GNU tar or bsdtar). Each running
// task can hold two sessions at once, so concurrency_per_host should stay
// at or below half the server's MaxSessions (10 by default in OpenSSH).
package ssh
