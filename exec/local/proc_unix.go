//go:build unix

package local

import (
	"errors"
	"os"
	osexec "os/exec"
	"syscall"
)

// defaultShell runs scripts when Spec.Shell is "".
const defaultShell = "sh"

// group is a started task's process group: the shell is its leader, and the
// group's id is the shell's pid.
type group struct {
	cmd  *osexec.Cmd
	pgid int
	w    waitOnce
}

// prepare makes the shell the leader of a new process group.
func prepare(cmd *osexec.Cmd, _, _ string) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

func newGroup(cmd *osexec.Cmd) (*group, error) {
	return &group{cmd: cmd, pgid: cmd.Process.Pid}, nil
}

// signal sends sig to every member of the group. Where the leader may have
// been reaped already, it first checks that the group still exists, which
// narrows (but cannot close) the window in which its id could be reused.
func (g *group) signal(sig syscall.Signal) {
	if !leaderHeld && syscall.Kill(-g.pgid, 0) == syscall.ESRCH {
		return
	}
	_ = syscall.Kill(-g.pgid, sig)
}

// terminate sends SIGTERM to the group, and SIGCONT so that stopped members
// can act on it.
func (g *group) terminate() {
	g.signal(syscall.SIGTERM)
	g.signal(syscall.SIGCONT)
}

// kill sends SIGKILL to the group.
func (g *group) kill() { g.signal(syscall.SIGKILL) }

// reap waits for the leader and returns its state.
func (g *group) reap() (*os.ProcessState, error) { return g.w.wait(g.cmd) }

func (g *group) release() {}

// exitStatus maps the leader's state to Result.ExitCode and Result.Signal.
func exitStatus(st *os.ProcessState, _, _ bool) (int, string) {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -1, ws.Signal().String()
	}
	return st.ExitCode(), ""
}

// groupExists reports whether any process, a zombie included, is in group
// pgid.
func groupExists(pgid int) bool {
	err := syscall.Kill(-pgid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
