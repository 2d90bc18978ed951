package external

import (
	osexec "os/exec"
	"syscall"
)

// detach starts the helper in a console process group of its own, so that
// Ctrl+C reaches rustypipe only; rustypipe passes it on as cancel messages,
// and the helper can stop its work in order.
func detach(cmd *osexec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: syscall.CREATE_NEW_PROCESS_GROUP}
}
