//go:build linux

package cmd

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

func init() {
	scriptCmds["flipblob"] = cmdFlipBlob
	scriptCmds["crashloop"] = cmdCrashLoop
	scriptCmds["dirsize"] = cmdDirSize
	scriptCmds["overlap"] = cmdOverlap
	scriptCmds["tmpfs"] = cmdTmpfs
	scriptCmds["garbage"] = cmdGarbage
	scriptConds["tmpfs"] = canMountTmpfs
}

// flipblob DIR flips one byte in the middle of the largest blob file below
// DIR (a cache directory).
func cmdFlipBlob(ts *testscript.TestScript, neg bool, args []string) {
	var files []string
	filepath.Walk(ts.MkAbs(args[0]), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && strings.Contains(p, string(filepath.Separator)+"blobs"+string(filepath.Separator)) {
			files = append(files, p)
		}
		return nil
	})
	if len(files) == 0 {
		ts.Fatalf("flipblob: no blob files under %s", args[0])
	}
	sort.Slice(files, func(i, j int) bool { return size(files[i]) > size(files[j]) })
	f, err := os.OpenFile(files[0], os.O_RDWR, 0)
	ts.Check(err)
	defer f.Close()
	off := size(files[0]) / 2
	b := make([]byte, 1)
	_, err = f.ReadAt(b, off)
	ts.Check(err)
	b[0] ^= 0xff
	_, err = f.WriteAt(b, off)
	ts.Check(err)
	ts.Logf("flipped byte %d of %s", off, files[0])
}

func size(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// crashloop N ARGS... runs `rustypipe ARGS...` N times, each time sending
// SIGKILL after a random delay of up to 400 ms, so that rustypipe dies at
// random points, cache writes included.
func cmdCrashLoop(ts *testscript.TestScript, neg bool, args []string) {
	n, err := strconv.Atoi(args[0])
	ts.Check(err)
	bin, err := exec.LookPath("rustypipe")
	if p := ts.Getenv("PATH"); p != "" {
		for _, dir := range filepath.SplitList(p) {
			if c := filepath.Join(dir, "rustypipe"); size(c) > 0 {
				bin, err = c, nil
				break
			}
		}
	}
	ts.Check(err)
	killed := 0
	for i := 0; i < n; i++ {
		cmd := exec.Command(bin, args[1:]...)
		cmd.Dir = ts.Getenv("WORK")
		cmd.Env = append(os.Environ(), "PATH="+ts.Getenv("PATH"), "RUSTYPIPE_CACHE_DIR="+ts.Getenv("RUSTYPIPE_CACHE_DIR"), "CI=true")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		ts.Check(cmd.Start())
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Duration(rand.IntN(400)) * time.Millisecond):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			killed++
		}
	}
	ts.Logf("crashloop: %d of %d runs killed", killed, n)
	if killed == 0 {
		ts.Fatalf("crashloop: no run was killed; the workload is too short to test anything")
	}
}

// dirsize DIR MAX checks that the disk space used by DIR (allocated blocks,
// as du counts them) is at most MAX (a size such as 2MiB).
func cmdDirSize(ts *testscript.TestScript, neg bool, args []string) {
	limit, err := parseSizeArg(args[1])
	ts.Check(err)
	var used int64
	filepath.Walk(ts.MkAbs(args[0]), func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				used += st.Blocks * 512
			}
		}
		return nil
	})
	ts.Logf("dirsize: %s uses %d bytes (limit %d)", args[0], used, limit)
	if (used <= limit) == neg {
		ts.Fatalf("dirsize: %s uses %d bytes, limit %d", args[0], used, limit)
	}
}

func parseSizeArg(s string) (int64, error) {
	mult := int64(1)
	for suf, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if strings.HasSuffix(s, suf) {
			s, mult = strings.TrimSuffix(s, suf), m
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n * mult, err
}

// overlap A B: each file holds "START END" in nanoseconds; the two
// intervals must overlap (both tasks were running at the same time).
func cmdOverlap(ts *testscript.TestScript, neg bool, args []string) {
	read := func(f string) (int64, int64) {
		parts := strings.Fields(ts.ReadFile(f))
		if len(parts) != 2 {
			ts.Fatalf("overlap: %s: want START END, got %q", f, parts)
		}
		a, _ := strconv.ParseInt(parts[0], 10, 64)
		b, _ := strconv.ParseInt(parts[1], 10, 64)
		return a, b
	}
	s1, e1 := read(args[0])
	s2, e2 := read(args[1])
	if (s1 < e2 && s2 < e1) == neg {
		ts.Fatalf("overlap: [%d,%d] and [%d,%d]: overlap=%v", s1, e1, s2, e2, !neg)
	}
}

// tmpfs DIR SIZE [ro|rw]: mounts a tmpfs of SIZE at DIR (unmounted when
// the script ends), or remounts it read-only or read-write. It needs root;
// without it the script is skipped, unless CI requires everything.
func cmdTmpfs(ts *testscript.TestScript, neg bool, args []string) {
	dir := ts.MkAbs(args[0])
	if len(args) == 2 && (args[1] == "ro" || args[1] == "rw") {
		ts.Check(syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_REMOUNT|flagRO(args[1]), ""))
		return
	}
	os.MkdirAll(dir, 0o755)
	ts.Check(syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+args[1]))
	ts.Defer(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
}

// canMountTmpfs answers the [tmpfs] script condition. In CI a machine that
// cannot mount is an error, so fault tests are never skipped there.
func canMountTmpfs() (bool, error) {
	dir, err := os.MkdirTemp("", "rp-tmpfs-probe")
	if err != nil {
		return false, err
	}
	defer os.Remove(dir)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		if os.Getenv("CI") != "" {
			return false, fmt.Errorf("cannot mount a tmpfs, which the fault tests need in CI: %w", err)
		}
		return false, nil
	}
	syscall.Unmount(dir, 0)
	return true, nil
}

func flagRO(mode string) uintptr {
	if mode == "ro" {
		return syscall.MS_RDONLY
	}
	return 0
}

// garbage DIR damages every file below DIR: each is cut to half its size
// and random bytes are appended.
func cmdGarbage(ts *testscript.TestScript, neg bool, args []string) {
	n := 0
	filepath.Walk(ts.MkAbs(args[0]), func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		ts.Check(os.Truncate(p, fi.Size()/2))
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		ts.Check(err)
		junk := make([]byte, 256)
		for i := range junk {
			junk[i] = byte(rand.IntN(256))
		}
		f.Write(junk)
		f.Close()
		n++
		return nil
	})
	ts.Logf("garbage: damaged %d files", n)
}
