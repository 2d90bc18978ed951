package hashing

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func TestRacyWindow(t *testing.T) {
	const dev = 0xfee1
	t.Cleanup(func() { fineDevs.Delete(uint64(dev)) })
	ns := int64(1_700_000_000_123_456_789)
	whole := int64(1_700_000_000) * int64(time.Second)
	if w := racyWindow(dev, ns); w != coarseRacyWindow {
		t.Errorf("a device never learnt: %v, want the coarse window", w)
	}
	fineDevs.Store(uint64(dev), false)
	if w := racyWindow(dev, ns); w != coarseRacyWindow {
		t.Errorf("a coarse file system: %v", w)
	}
	fineDevs.Store(uint64(dev), true)
	if w := racyWindow(dev, ns); w != fineRacyWindow {
		t.Errorf("a fine file system: %v", w)
	}
	if w := racyWindow(dev, whole); w != coarseRacyWindow {
		t.Errorf("a change time of whole seconds on a fine file system: %v", w)
	}
	if w := racyWindow(dev, 0); w != coarseRacyWindow {
		t.Errorf("no change time: %v", w)
	}

	saved := racyOverride
	t.Cleanup(func() { racyOverride = saved })
	racyOverride = func() time.Duration { return 3 * time.Second }
	if w := racyWindow(dev, ns); w != 3*time.Second {
		t.Errorf("RUSTYPIPE_RACY_WINDOW=3s: %v", w)
	}
	for in, want := range map[string]time.Duration{"2s": 2 * time.Second, " 150ms ": 150 * time.Millisecond, "": 0, "0": 0, "-1s": 0, "soon": 0} {
		if got := parseRacyWindow(in); got != want {
			t.Errorf("parseRacyWindow(%q) = %v, want %v", in, got, want)
		}
	}
}

// Stat.Older waits out the window of the file's own file system.
func TestOlderUsesTheFileSystemsWindow(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "f", "x", 0o644, past) // the change time is now
	for _, fine := range []bool{false, true} {
		window := forceWindow(t, root, "f", fine)
		st, _, err := Lstat(filepath.Join(root, "f"))
		if err != nil {
			t.Fatal(err)
		}
		ctime := time.Unix(0, st.CtimeNs)
		if st.Older(ctime.Add(window)) {
			t.Errorf("fine=%v: older at the window's edge", fine)
		}
		if !st.Older(ctime.Add(window + time.Nanosecond)) {
			t.Errorf("fine=%v: not older after the window (%v)", fine, window)
		}
	}
}

func TestFineFS(t *testing.T) {
	if fineFS(filepath.Join(t.TempDir(), "missing")) {
		t.Error("a missing path counts as a fine file system")
	}
	if runtime.GOOS != "linux" {
		if fineFS(t.TempDir()) {
			t.Error("a fine file system outside Linux")
		}
		return
	}
	if _, err := os.Stat("/proc/self"); err == nil && fineFS("/proc/self") {
		t.Error("procfs counts as a fine file system")
	}
	t.Logf("the test's temporary directory is on a fine file system: %v", fineFS(t.TempDir()))
}
