// Package external runs tasks through a helper executable that speaks the
// external-backend protocol: newline-delimited JSON over the helper's stdin
// and stdout, specified in docs/backend-protocol.md. Backend is the client
// side, linked into rustypipe, behind `type: external` (any command) and
// `type: docker` and `type: kubernetes` (the rustypipe-docker and
// rustypipe-kube helpers). Serve is the helper side, for helpers written in
// Go, and Main wraps it as a helper's whole main. The package imports only
// the standard library and exec, and does no work until a Backend is used,
// because every rustypipe invocation pays for what it links and
// initializes.
//
// # Client
//
// New starts nothing. The first Run or Identity starts the helper (looked
// for beside the running executable, then in PATH), in a process group of
// its own, and shakes hands: protocol version and the pipeline's options
// for the backend, which the helper may refuse with a message. A refusal, a
// version mismatch or a missing executable is kept and returned by every
// later call, as an error wrapping exec.ErrStart. One helper process serves
// all the runs of the Backend concurrently, each request with its own id.
//
// Invariants:
//   - Outputs never reach the workspace from the helper directly. Each Run
//     creates an empty staging directory and names it in the request; the
//     helper restores declared outputs there. After a result without error,
//     Run restores the staged regular files and symlinks that match
//     Spec.Outputs into Spec.OutputRoot() through exec.Restorer, which
//     refuses escaping paths and symlinks. Any other staged entry makes Run
//     fail and restore nothing. The staging directory is removed before Run
//     returns.
//   - Output is streamed: stdout and stderr arrive in chunks of at most
//     MaxChunk bytes and are written to the Spec's writers from Run's own
//     goroutine, so one writer given for both streams is never called
//     concurrently. Each run queues at most 64 chunks; a run whose writers
//     fall further behind makes the reading of the helper's messages wait
//     for them, which slows the other runs without deadlocking them.
//   - Run never returns before the helper's result, except when the helper
//     exits or does not answer a cancel within Spec.Grace plus a margin
//     (15 s): then Run fails, and whatever the helper sends later for that
//     run is dropped. Nothing is written to a Spec's writers after its Run
//     returned.
//   - A helper that exits (or breaks the protocol) fails every request in
//     flight with an error wrapping ErrHelperExited (or ErrProtocol) and
//     exec.ErrUnavailable, which quotes the last lines of its stderr; the
//     next call starts a new helper, at most once per call. Its stderr
//     otherwise goes to Options.Log.
//   - Close sends the shutdown message, closes the helper's stdin, and kills
//     the helper if it has not exited 10 s later.
//
// # Server
//
// Serve reads requests, runs each with the backend the handshake's config
// built, sends output and results as they come, and cancels what is still
// running at shutdown, at the end of its input (the client died) or when
// its ctx is done. Writes to the helper's stdout are serialized; requests
// are read by a goroutine that never waits for a run, so a cancel is acted
// on while output is being sent.
package external
