package backendkit

import (
	"fmt"
	"strconv"
	"strings"
)

// Owner returns the owner of a remote object created by the process pid of
// host: "host:pid".
func Owner(host string, pid int) string {
	return host + ":" + strconv.Itoa(pid)
}

// ParseOwner splits an owner at its last colon (a host name has none, but
// an IPv6 literal might). ok is false unless the host is not empty and the
// pid is a positive number.
func ParseOwner(owner string) (host string, pid int, ok bool) {
	i := strings.LastIndexByte(owner, ':')
	if i <= 0 {
		return "", 0, false
	}
	pid, err := strconv.Atoi(owner[i+1:])
	if err != nil || pid <= 0 {
		return "", 0, false
	}
	return owner[:i], pid, true
}

// ExitResult turns a shell's exit status into exec.Result's ExitCode and
// Signal. A shell killed by signal N reports 128+N; only when the backend
// stopped the task (stopped) is that read as a signal, since a task may
// also exit with such a code itself.
func ExitResult(code int64, stopped bool) (int, string) {
	if stopped && code > 128 && code <= 128+64 {
		return -1, SignalName(int(code - 128))
	}
	return int(code), ""
}

// SignalName names a signal number as Go's syscall.Signal.String does on
// Linux, whatever the local platform: "signal N" for the uncommon ones.
func SignalName(n int) string {
	switch n {
	case 1:
		return "hangup"
	case 2:
		return "interrupt"
	case 3:
		return "quit"
	case 6:
		return "aborted"
	case 9:
		return "killed"
	case 13:
		return "broken pipe"
	case 14:
		return "alarm clock"
	case 15:
		return "terminated"
	}
	return fmt.Sprintf("signal %d", n)
}
