// Package backendkit holds the small helpers that remote backends (docker,
// kube, ssh) share and that know nothing of any one of them: decoding a
// backend's option map as decoded from YAML or JSON, the owner of a remote
// object ("host:pid") and whether that process still runs, and reading a
// shell's exit status.
//
// Invariants:
//   - Standard library only; nothing here talks to a remote service.
//   - Option decoding is deterministic: of several bad keys, the first in
//     sorted order is reported, and every error names its key.
//   - ParseOwner(Owner(h, p)) returns h, p, true for every host h without
//     being empty and every pid p > 0.
//   - ProcessAlive never reports a live process gone; where it cannot tell
//     it reports alive, so that a reaper removes nothing by mistake.
package backendkit
