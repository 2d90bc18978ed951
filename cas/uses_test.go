package cas

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLookupRecordsUseThroughLog(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock()
	ctx := context.Background()
	s := openT(t, Options{Dir: dir, Clock: clock.Now})
	a := simpleAction(t, s, "x", []byte("o"), content(1, 50<<10))
	t0 := clock.Now()
	s.Close()
	logPath := filepath.Join(dir, versionDir, usesName)

	clock.Advance(3 * lastUsedInterval)
	l1 := openT(t, Options{Dir: dir, Clock: clock.Now, Lookup: true})
	if sharedLocks {
		// Lookups share the directory with each other and with read-only
		// stores.
		l2 := openT(t, Options{Dir: dir, Clock: clock.Now, Lookup: true, LockWait: -1})
		ro := openT(t, Options{Dir: dir, ReadOnly: true, LockWait: -1})
		if _, err := l2.GetAction(ctx, a.Key); err != nil {
			t.Fatal(err)
		}
		l2.Close()
		ro.Close()
	}
	if _, err := l1.GetAction(ctx, a.Key); err != nil {
		t.Fatal(err)
	}
	if err := l1.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(logPath); err != nil || !strings.Contains(string(b), hexKey(a.Key)) {
		t.Fatalf("use log = %q, %v; want the hit", b, err)
	}

	// A read-only store neither logs nor merges.
	clock.Advance(3 * lastUsedInterval)
	ro := openT(t, Options{Dir: dir, Clock: clock.Now, ReadOnly: true})
	if u := listKeys(t, ro)[a.Key].LastUsed; !u.Equal(t0) {
		t.Errorf("stored LastUsed = %v before the merge, want %v", u, t0)
	}
	if _, err := ro.GetAction(ctx, a.Key); err != nil {
		t.Fatal(err)
	}
	ro.Close()
	if b, _ := os.ReadFile(logPath); strings.Count(string(b), "\n") != 1+boolInt(sharedLocks) {
		t.Errorf("use log after a read-only hit:\n%s", b)
	}

	// The next writable store merges the log and removes it.
	rw := openT(t, Options{Dir: dir, Clock: clock.Now})
	if u := listKeys(t, rw)[a.Key].LastUsed; !u.Equal(t0.Add(3 * lastUsedInterval)) {
		t.Errorf("LastUsed after merge = %v, want %v", u, t0.Add(3*lastUsedInterval))
	}
	if _, err := os.Stat(logPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("use log not removed after merge: %v", err)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestParseUses(t *testing.T) {
	k1, k2 := key("1"), key("2")
	line := func(k [32]byte, n int64) string { return fmt.Sprintf("%s %d\n", hexKey(k), n) }
	cases := []struct {
		name string
		log  string
		want map[[32]byte]int64
	}{
		{"empty", "", map[[32]byte]int64{}},
		{"one", line(k1, 5), map[[32]byte]int64{k1: 5}},
		{"latest wins", line(k1, 9) + line(k1, 5) + line(k2, 7), map[[32]byte]int64{k1: 9, k2: 7}},
		{"cut short", line(k1, 5) + line(k2, 7)[:40], map[[32]byte]int64{k1: 5}},
		{"cut in the number", line(k1, 5) + hexKey(k2) + " ", map[[32]byte]int64{k1: 5}},
		{"garbage", "zz\x00\xff\n" + strings.Repeat("g", 64) + " 1\n" + line(k2, 3), map[[32]byte]int64{k2: 3}},
		{"negative time", line(k1, -5), map[[32]byte]int64{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := parseUses([]byte(c.log))
			if len(got) != len(c.want) {
				t.Fatalf("parseUses = %v, want %v", got, c.want)
			}
			for k, n := range c.want {
				if !got[k].Equal(time.Unix(0, n)) {
					t.Errorf("key %s: %v, want %d", fmtKey(k), got[k], n)
				}
			}
		})
	}
}
