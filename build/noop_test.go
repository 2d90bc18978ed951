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
		tasks: []noopTask{{name: "a", file: "a", key: hashing.Key{1}, vouched: true, nfiles: 2}, {name: "b/c", file: "b_c-1234", key: hashing.Key{2}, vouched: true, nfiles: 1, first: 2, index: 1},
			{name: "ran", file: "ran", first: 3, index: 2}},
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
	// A task that is not vouched for has no files; a record that says
	// otherwise is refused.
	bad := &noopRecord{stamp: rec.stamp, file: rec.file, targets: rec.targets, pipeline: rec.pipeline, env: rec.env,
		tasks: slices.Clone(rec.tasks), files: rec.files}
	bad.tasks[1].vouched = false
	if _, err := decodeNoop(bad.encode()); err != errNoopRecord {
		t.Fatalf("a task with files but not vouched for: %v, want %v", err, errNoopRecord)
	}
	// A record of another format version is named as such.
	other := append([]byte("rustypipe noop 2\n"), data[len(noopMagic):]...)
	if _, err := decodeNoop(other); err != errNoopVersion {
		t.Fatalf("a record of version 2: %v, want %v", err, errNoopVersion)
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
	if got := results(c); !same || slices.Contains(got, false) {
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
	for i, ok := range results(c) {
		if ok == changed[i] {
			t.Errorf("file %d (%s): unchanged=%v, want %v", i, files[i].path, ok, !changed[i])
		}
	}
	if c.unchanged(0, len(files)) {
		t.Error("the whole range reported unchanged")
	}
	if !c.unchanged(2*fileCheckChunk, 3*fileCheckChunk) {
		t.Error("a chunk without changes reported changed")
	}
}

// results asks c about every file, one at a time.
func results(c *fileCheck) []bool {
	got := make([]bool, len(c.out))
	for i := range got {
		got[i] = c.unchanged(i, i+1)
	}
	return got
}

// A task with a file the check has already found changed is answered
// without waiting for the check; any other task waits until the files it
// owns are checked, and not for the rest: in a build after an edit, the
// clean tasks are settled while the check goes on.
func TestUnchangedTaskWaitsForItsOwnFiles(t *testing.T) {
	const n = 2 * fileCheckChunk
	c := &fileCheck{out: make([]bool, n), done: make(chan struct{}), changed: []int{5},
		chunks: []chan struct{}{make(chan struct{}), make(chan struct{})}}
	p := &NoopPartial{check: c}
	answered := make(chan bool)
	ask := func(first, nfiles int) {
		go func() { answered <- p.unchangedTask(&noopTask{first: first, nfiles: nfiles}) }()
	}
	answer := func(what string) bool {
		select {
		case got := <-answered:
			return got
		case <-time.After(10 * time.Second):
			t.Fatalf("unchangedTask did not answer: %s", what)
		}
		return false
	}
	waiting := func(what string) {
		select {
		case <-answered:
			t.Fatalf("unchangedTask answered before %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}

	ask(4, 3)
	if answer("its file 5 is known changed") {
		t.Fatal("a task with a changed file reported unchanged")
	}

	ask(6, 4)
	waiting("its files were checked")
	for i := range fileCheckChunk {
		c.out[i] = i != 5
	}
	close(c.chunks[0])
	if !answer("its files were checked, the other chunk not yet") {
		t.Fatal("a task with unchanged files reported changed")
	}

	ask(fileCheckChunk-2, 4) // files in both chunks
	waiting("its second chunk was checked")
	for i := fileCheckChunk; i < n; i++ {
		c.out[i] = true
	}
	close(c.chunks[1])
	if !answer("both its chunks were checked") {
		t.Fatal("a task with unchanged files in two chunks reported changed")
	}

	close(c.done)
	if !p.unchangedTask(&noopTask{first: 0, nfiles: 5}) || p.unchangedTask(&noopTask{first: 5, nfiles: 1}) || !p.unchangedTask(&noopTask{first: n, nfiles: 0}) {
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

// With a partial record, the tasks it may show up to date weigh nothing,
// so that the others start first: those with a file seen changed and
// those it does not vouch for keep their last duration.
func TestWeightsWithPartialRecord(t *testing.T) {
	pl := planFor(t, "tasks:\n  - name: clean\n    run: echo\n  - name: edited\n    run: echo\n  - name: ran\n    run: echo\n")
	st := &workspaceState{durations: map[string]int64{"clean": 50, "edited": 60, "ran": 70}}
	c := &fileCheck{out: []bool{true, false}, changed: []int{1}, done: make(chan struct{}), chunks: []chan struct{}{make(chan struct{})}}
	close(c.chunks[0])
	close(c.done)
	rec := &noopRecord{
		tasks: []noopTask{{name: "clean", vouched: true, nfiles: 1}, {name: "edited", vouched: true, nfiles: 1, first: 1, index: 1}, {name: "ran", first: 2, index: 2}},
		files: []noopFileRec{{path: "clean.txt", kind: noopFile}, {path: "edited.txt", kind: noopFile}},
	}
	b := &builder{plan: pl, opts: Options{state: st}, partial: &NoopPartial{rec: rec, check: c}}
	if got, want := b.weights(), []int64{0, 60, 70}; !slices.Equal(got, want) {
		t.Fatalf("weights %v, want %v", got, want)
	}
}
