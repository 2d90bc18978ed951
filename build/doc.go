// Package build runs a loaded pipeline: for each task it renders the command,
// computes the key, looks the key up, dispatches misses to a backend with
// retries and timeouts, stores results and writes run records under
// .rustypipe/runs/<run-id>/.
//
// Invariants:
//   - Nothing runs before the whole pipeline has validated.
//   - A task that failed, timed out or was cancelled leaves no cache entry.
//   - Every attempt of every task is in the task's log with a header.
package build
