package local_test

import "testing"

// pidCheck is nil on Windows: the conformance suite's pids come from sh,
// whose $$ and $! need not be Windows process ids.
var pidCheck func(t *testing.T, pid int) bool
