// Package dag holds the task graph and its scheduler.
//
// A Graph is built once from node names and dependency lists (Build), checked
// for duplicate names, unknown dependencies and cycles, and never changes
// afterwards; Select cuts out the part needed for some targets. Nodes are
// dense ints 0..Len()-1 so that per-node state is kept in slices, not maps.
//
// Walk runs a visit function over the graph with a bounded pool of worker
// goroutines (never one goroutine per node). It keeps a count of unfinished
// dependencies per node and a ready queue ordered by priority: the longest
// remaining path, measured in WalkOptions.Weights, from the node down to a
// node with no dependents, ties broken by lower id. With one worker the order
// is deterministic and is what Order returns.
//
// Invariants of Walk:
//
//   - Each node is visited at most once.
//   - A node is visited only after every one of its dependencies was visited
//     and either Succeeded or Failed with ContinueOnFail true for it.
//   - At most Workers visits (runtime.NumCPU() when Workers <= 0) run at once.
//   - Once the walk's context is done (cancelled by the caller or by
//     FailFast), no new visit starts; visits already running see their
//     context cancelled.
//   - Walk returns only after every visit it started has returned and every
//     OnSkip call has returned; every returned Outcome has a final status
//     (never Pending).
//   - A Skipped node's Cause is a Failed node upstream of it, and no node is
//     both visited and Skipped.
//   - A panic in visit is recovered: the node is Failed with a *PanicError,
//     and the walk goes on.
//
// How a visit's result is classified: nil is Succeeded; a panic is Failed; an
// error returned while the walk's context is cancelled is Cancelled (the
// cancellation, not the task, is to blame); any other error is Failed. Nodes
// left unstarted when the walk stops are Cancelled, except those already
// Skipped because of a failure upstream.
//
// Graph methods are safe for concurrent use. Walk may be called concurrently
// on the same Graph; each call has its own state.
package dag
