// Package hashing names content and work. A Digest is the BLAKE3-256 hash of
// content (a file, a symlink target, a blob, an output manifest); a Key is the
// BLAKE3-256 hash of a task's recipe, everything that can change what the task
// produces. Raw []byte hashes never leave this package: other packages hold
// Digest and Key values.
//
// The package is pure: it imports no other rustypipe package. The build
// package maps a pipeline task into a Recipe and calls TaskKey; this file is
// the specification of that recipe.
//
// # Key recipe v1
//
// A Key is BLAKE3-256 (unkeyed, 32 bytes of output) over a sequence of
// records. Each record has a label, a name and a value, all strings, and is
// framed as
//
//	uvarint(len(label)) ‖ label ‖ uvarint(len(name)) ‖ name ‖ uvarint(len(value)) ‖ value
//
// where uvarint is the unsigned LEB128 encoding of encoding/binary
// (binary.AppendUvarint) and lengths count bytes. Framing makes the stream
// unambiguous: no choice of values can make two different recipes produce the
// same bytes. Nothing separates records; nothing follows the last one.
//
// Records are written in this order. Name is empty unless stated.
//
//  1. version: value "rustypipe key v1" (KeyVersion). The salt comes first so
//     that a stored preimage carries its own version and `rustypipe explain`
//     shows a version bump as a changed record.
//  2. command: the command after interpolation, byte for byte.
//  3. shell: the shell that runs it, as configured (e.g. "bash").
//  4. dir: the working directory relative to the workspace, "/"-separated,
//     after path.Clean ("" and "./" become ".").
//  5. env: one record per declared variable (pipeline env, task env and
//     interpolation vars, as merged by the caller); name is the variable,
//     value its value. Sorted by name, byte-wise.
//  6. input: one record per input file; name is the path relative to the
//     workspace with "/" separators; value is "<mode> <digest>": the
//     canonical mode in octal, at least 4 digits ("0644", "0755", or
//     "120000" for a symlink), a space, the content digest in lowercase hex.
//     Sorted by path, then mode, then digest.
//  7. output: one record per declared output glob, as written; value is
//     empty. Sorted byte-wise, duplicates removed (declaring a glob twice
//     means the same thing).
//  8. dep: one record per dependency; name is the dependency's task name;
//     value is its output manifest digest in lowercase hex. Sorted by name,
//     then digest.
//  9. env_identity: the backend's environment identity: for the local
//     backend "local <GOOS>/<GOARCH>", for Docker and Kubernetes the image
//     digest (not the tag, which moves).
//  10. cache_key: the task's cache_key salt, "" when unset.
//
// Single records (version, command, shell, dir, env_identity, cache_key) are
// always written, even when empty; repeated records (env, input, output, dep)
// may be absent. A nil and an empty map or slice give the same key.
//
// Canonical mode: an input's mode contributes only "symlink", "executable"
// (any x bit set: 0755) or "regular" (0644). Other permission bits follow the
// umask of whoever checked the files out and would split the cache between
// machines for no change in output.
//
// A symlink is not followed: its digest is that of its target string, with
// "\" turned into "/", and its mode is ModeSymlink.
//
// # Output manifest v1
//
// What dependents hash is not the upstream's key but its output manifest
// digest (Manifest.Digest), so that an upstream that re-ran and produced the
// same bytes does not invalidate its dependents (early cutoff). It uses the
// same framing, with records in this order:
//
//  1. version: value "rustypipe manifest v1" (ManifestVersion).
//  2. stdout: value the digest of the task's stdout, lowercase hex.
//  3. file: one record per output file; name is its path, value is
//     "<mode> <digest>" as for input records. Sorted by path, then mode,
//     then digest.
//
// # Deliberately excluded
//
//   - Retries, retry policy and timeouts: they decide whether a run is
//     accepted, not what a successful run produces; a failed, timed-out or
//     cancelled run is never cached.
//   - continue_on_fail: it steers the scheduler after a failure, which is
//     never cached.
//   - Description and the position of the task in the pipeline file:
//     documentation only.
//   - The task's own name: renaming a task does not change what it does, and
//     two identical tasks may share work. (A dependency's name is hashed: it
//     ties each manifest digest to the upstream it came from, so two
//     upstreams swapping their outputs changes the key.)
//   - The backend's name and host names (SSH host, Docker daemon, Kubernetes
//     context): where a task runs does not change its result; what it runs
//     in does, and that is env_identity.
//   - Image tags: the image digest is hashed instead, since a tag can move.
//   - The absolute workspace path, the user, timestamps, mtimes, inodes and
//     non-executable permission bits: they differ between checkouts and
//     machines and would make the cache unshareable.
//   - Undeclared variables of rustypipe's own environment: only declared env
//     is part of the recipe; a task that reads undeclared variables is not
//     reproducible, and the cache cannot see what it read.
//   - Worker count, log settings and other run options.
//
// Any change to what is hashed, to the labels, the order, the framing or the
// value formats is a new recipe: bump KeyVersion (or ManifestVersion) so that
// old cache entries miss rather than alias, and update this specification
// and testdata/golden_key.txt (go test ./hashing -update).
//
// # Stat memo
//
// Memo avoids re-reading unchanged files across runs. It trusts a remembered
// digest only when the file's size, mtime (ns), mode, and, where the platform
// has them, inode, device and ctime are all unchanged, and only when the
// mtime was strictly older than the read time minus the racy window ("racy
// git" rule): 100 ms on Linux file systems that keep nanosecond times from
// the kernel's clock (ext4, XFS, Btrfs, tmpfs, overlayfs, F2FS, ZFS,
// bcachefs) for a file whose change time has a sub-second part, else 2 s,
// the coarsest common timestamp granularity (FAT's), which also covers a
// network file system's clock; RUSTYPIPE_RACY_WINDOW sets it for every
// file (racy.go). Entries whose mtime is within the window of the memo
// file's own write time are distrusted on load, which guards against a
// wall clock ahead of the file system's. A
// racy, changing or special file is always re-read. The memo file is
// versioned and checksummed; anything unreadable is discarded, never trusted.
// A racy file can neither match a trusted entry nor get one, so a lazy memo
// (NewLazyMemo) hashes it without reading the memo file at all, and
// SaveIfWorthwhile leaves the file alone when the only changes are a few
// digests of small files.
//
// # Debugging
//
// Preimage.WriteTo prints every record of a key, one per line; the caller
// prints it when RUSTYPIPE_DEBUG contains keyhash. DiffPreimages compares a
// stored preimage with a new one for `rustypipe explain`.
package hashing
