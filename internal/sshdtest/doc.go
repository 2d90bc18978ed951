// Package sshdtest starts real OpenSSH servers (sshd -D) for tests: the SSH
// backend's own tests and the CLI scripts that run pipelines over SSH.
//
// Start(n) makes a temporary directory holding a user key, host keys, one
// sshd_config per server and a known_hosts file, then starts n servers on
// loopback addresses (127.0.0.2, 127.0.0.3, ... on Linux; 127.0.0.1
// elsewhere) with free ports, and waits until each accepts connections.
//
// Invariants:
//   - Each server has two host keys, ed25519 first and ECDSA second; the
//     fixture's known_hosts lists only the ed25519 key of each server that
//     Start made, so a client that offers algorithms known_hosts does not
//     list gets a false "changed key" (which the SSH backend must avoid).
//   - Every server accepts only the fixture's user key (IdentityFile), for
//     the local user (User), with no password or PAM.
//   - Each server sets its own TMPDIR for sessions (Server.TmpDir), which
//     tells the servers apart from inside a session.
//   - Nothing is written outside Dir; Fixture.Stop stops every server the
//     fixture started and removes Dir. Stop is safe to call more than once.
//
// The servers need a POSIX sshd (Available says whether there is one); on
// Windows Start always fails. Callers decide whether that is a skip or,
// with RUSTYPIPE_TEST_SSH=1, a failure.
//
// A Fixture is safe for concurrent use. This package is for tests only;
// nothing in the rustypipe binary imports it.
package sshdtest
