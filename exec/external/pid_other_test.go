//go:build !unix

package external_test

import "testing"

// pidCheck is nil where sh's $$ and $! need not be process ids of the
// platform.
var pidCheck func(t *testing.T, pid int) bool
