// Package exec defines the Backend interface that runs one attempt of one
// task, the plain-data Spec and Result types, and, in exec/local, the local
// backend. Every backend passes the conformance suite in exec/exectest.
// Remote backends share the tar streams of inputs and outputs
// (WriteInputTar, OutputRoots, FilterOutputTar, RestoreOutputs, Restorer),
// the errors StartError and StopError, and, in exec/backendkit, option
// decoding and owner bookkeeping.
//
// Invariants:
//   - A backend starts nothing after ctx is done and leaves no process behind
//     when Run returns.
//   - A non-zero exit is a Result, not an error; errors are for attempts that
//     could not start or were stopped.
//   - Output streams are copied as they are produced, never buffered whole.
package exec
