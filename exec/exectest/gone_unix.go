//go:build unix

package exectest

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// ProcessGone reports whether pid is gone: no such process, or a zombie
// that only waits for its reaper. It fits Options.PIDCheck where sh's $$
// and $! are process ids of this machine.
func ProcessGone(t *testing.T, pid int) bool {
	t.Helper()
	err := syscall.Kill(pid, 0)
	if errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, rerr := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if rerr != nil {
		return errors.Is(rerr, fs.ErrNotExist) && runtime.GOOS == "linux"
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	return len(f) > 0 && (f[0] == "Z" || f[0] == "X")
}
