package build

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/rustypipe/rustypipe/hashing"
)

func TestNoopRecordRoundTripAndDamage(t *testing.T) {
	rec := &noopRecord{
		stamp: "v1 /bin/rustypipe 123 456", file: "rustypipe.yaml", targets: "a\x00b",
		pipeline: hashing.DigestBytes([]byte("tasks: []")),
		env:      []noopEnv{{name: "HOME", value: "/root", set: true}, {name: "UNSET"}},
		tasks:    []noopTask{{name: "a", file: "a", key: hashing.Key{1}, nfiles: 2}, {name: "b/c", file: "b_c-1234", key: hashing.Key{2}, nfiles: 1, first: 2, index: 1}},
		files: []noopFileRec{
			{path: "in/a.txt", kind: noopFile, st: hashing.Stat{Size: 5, MtimeNs: -1, CtimeNs: 1 << 62, Ino: 7, Dev: 8, Mode: 0o644}},
			{path: "missing", kind: noopAbsent},
			{path: "dir", kind: noopDir},
		},
	}
	data := rec.encode()
	got, err := decodeNoop(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, rec) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, rec)
	}
	for i := range data { // a record cut short or with any byte changed is refused
		if _, err := decodeNoop(data[:i]); err == nil {
			t.Fatalf("a record cut to %d of %d bytes decoded", i, len(data))
		}
		bad := append([]byte(nil), data...)
		bad[i] ^= 0x20
		if _, err := decodeNoop(bad); err == nil {
			t.Fatalf("a record with byte %d changed decoded", i)
		}
	}
}

// checkFiles finds every changed file, whether or not it returned early,
// and a full match only when nothing changed.
func TestCheckFiles(t *testing.T) {
	dir := t.TempDir()
	const n = 3*fileCheckChunk + 5
	var files []noopFileRec
	for i := range n {
		rel := fmt.Sprintf("f%d", i)
		if err := os.WriteFile(filepath.Join(dir, rel), []byte(rel), 0o644); err != nil {
			t.Fatal(err)
		}
		st, _, err := hashing.Lstat(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, noopFileRec{path: rel, kind: noopFile, st: st})
	}
	files = append(files, noopFileRec{path: "absent", kind: noopAbsent}, noopFileRec{path: ".", kind: noopDir})

	c, same := checkFiles(dir, files)
	if got := c.results(); !same || slices.Contains(got, false) {
		t.Fatalf("nothing changed: allUnchanged=%v, results %v", same, got)
	}

	// Changes early, in the middle and last: the first makes checkFiles
	// return early; the others are found in the background.
	changed := map[int]bool{1: true, fileCheckChunk + 3: true, n - 1: true}
	for i := range changed {
		if err := os.Remove(filepath.Join(dir, files[i].path)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "absent"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	changed[n] = true
	c, same = checkFiles(dir, files)
	if same {
		t.Fatal("changed files reported unchanged")
	}
	for i, ok := range c.results() {
		if ok == changed[i] {
			t.Errorf("file %d (%s): unchanged=%v, want %v", i, files[i].path, ok, !changed[i])
		}
	}
}

// A task with a file the check has already found changed is answered
// without waiting for the check to finish; any other task waits for it.
func TestUnchangedTaskAnswersKnownChangesAtOnce(t *testing.T) {
	c := &fileCheck{out: make([]bool, 10), done: make(chan struct{}), changed: []int{5}}
	p := &NoopPartial{check: c}
	answered := make(chan bool)
	go func() { answered <- p.unchangedTask(&noopTask{first: 4, nfiles: 3}) }()
	select {
	case got := <-answered:
		if got {
			t.Fatal("a task with a changed file reported unchanged")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("unchangedTask waited for the check although the task's file was known changed")
	}

	// A task whose files are not among the changed ones so far waits.
	go func() { answered <- p.unchangedTask(&noopTask{first: 6, nfiles: 4}) }()
	select {
	case <-answered:
		t.Fatal("unchangedTask answered before the check finished")
	case <-time.After(50 * time.Millisecond):
	}
	for i := range c.out {
		c.out[i] = i != 5
	}
	close(c.done)
	if !<-answered {
		t.Fatal("a task with unchanged files reported changed")
	}
	if p.unchangedTask(&noopTask{first: 0, nfiles: 5}) != true || p.unchangedTask(&noopTask{first: 5, nfiles: 1}) != false {
		t.Fatal("answers after the check disagree with its results")
	}
}

// keyString gives each task of a decoded record its key in hex, as
// Key.String does; a task that is not the record's own gets it too.
func TestNoopKeyString(t *testing.T) {
	rec := &noopRecord{stamp: "s", file: "f"}
	for i := range 5 {
		rec.tasks = append(rec.tasks, noopTask{name: fmt.Sprint("t", i), file: fmt.Sprint("t", i), key: hashing.Key(hashing.DigestBytes([]byte{byte(i)}))})
	}
	got, err := decodeNoop(rec.encode())
	if err != nil {
		t.Fatal(err)
	}
	for i := range got.tasks {
		if k := got.keyString(&got.tasks[i]); k != rec.tasks[i].key.String() {
			t.Errorf("task %d: %s, want %s", i, k, rec.tasks[i].key.String())
		}
	}
	stray := got.tasks[2]
	stray.key = hashing.Key(hashing.DigestBytes([]byte("other")))
	if k := got.keyString(&stray); k != stray.key.String() {
		t.Errorf("a task not in the record: %s, want %s", k, stray.key.String())
	}
}
