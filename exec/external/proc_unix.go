//go:build unix

package external

import (
	osexec "os/exec"
	"syscall"
)

// detach puts the helper in a process group of its own, so that a
// terminal's Ctrl-C reaches rustypipe only; rustypipe passes it on as
// cancel messages, and the helper can stop its work in order.
func detach(cmd *osexec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}
