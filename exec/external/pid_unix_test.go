//go:build unix

package external_test

import "github.com/rustypipe/rustypipe/exec/exectest"

// pidCheck is exectest.ProcessGone: the tasks' pids are this machine's.
var pidCheck = exectest.ProcessGone
