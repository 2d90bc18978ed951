//go:build !unix && !windows

package external

import osexec "os/exec"

// detach does nothing where there are no process groups.
func detach(cmd *osexec.Cmd) {}
