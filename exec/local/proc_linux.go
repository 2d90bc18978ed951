package local

import (
	"bytes"
	"errors"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// leaderHeld is true where waitExit leaves the leader unreaped: its pid, and
// so the group id, cannot be reused until reap.
const leaderHeld = true

// waitExit blocks until the leader has exited, leaving it a zombie so that
// the group id stays reserved until reap.
func (g *group) waitExit() {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, g.pgid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			// Not expected: the process is our child and nothing else
			// reaps it. Fall back to reaping it now.
			_, _ = g.w.wait(g.cmd)
		}
		return
	}
}

// alive reports whether the group has a member that has not exited yet.
// Zombies do not count: an orphan's zombie waits for its reaper, which may
// be slow or absent (rustypipe as a container's PID 1), and can run nothing.
func (g *group) alive() bool {
	if !groupExists(g.pgid) {
		return false
	}
	return liveMember(g.pgid)
}

// liveMember scans /proc for a process of group pgid that is not a zombie.
// Without /proc it assumes there is one.
func liveMember(pgid int) bool {
	d, err := os.Open("/proc")
	if err != nil {
		return true
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return true
	}
	buf := make([]byte, 1024)
	for _, name := range names {
		if name == "" || name[0] < '0' || name[0] > '9' {
			continue
		}
		b, ok := readSmall("/proc/"+name+"/stat", buf)
		if !ok {
			continue // it exited while we looked
		}
		state, pgrp, ok := parseStat(b)
		if ok && pgrp == pgid && state != 'Z' && state != 'X' {
			return true
		}
	}
	return false
}

// readSmall reads a file that fits in buf.
func readSmall(path string, buf []byte) ([]byte, bool) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	n, err := f.Read(buf)
	if err != nil && n == 0 {
		return nil, false
	}
	return buf[:n], true
}

// parseStat returns the state and process group from the contents of
// /proc/PID/stat: "PID (COMM) STATE PPID PGRP ...", where COMM may hold
// spaces and parentheses, so fields are counted from the last ')'.
func parseStat(b []byte) (state byte, pgrp int, ok bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 3 || len(f[0]) != 1 {
		return 0, 0, false
	}
	pgrp, err := strconv.Atoi(string(f[2]))
	if err != nil {
		return 0, 0, false
	}
	return f[0][0], pgrp, true
}
