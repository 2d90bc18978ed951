//go:build unix

package backendkit

import (
	"os"
	"os/exec"
	"testing"
)

func TestProcessAliveChild(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep command: %v", err)
	}
	pid := cmd.Process.Pid
	if !ProcessAlive(pid) {
		t.Errorf("ProcessAlive(%d) = false for a running child", pid)
	}
	cmd.Process.Kill()
	cmd.Wait() // reaped: the pid no longer exists
	if ProcessAlive(pid) {
		t.Errorf("ProcessAlive(%d) = true for a reaped child", pid)
	}
	if !ProcessAlive(os.Getppid()) {
		t.Error("ProcessAlive(parent) = false")
	}
}
