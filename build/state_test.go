package build

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"slices"
	"testing"

	"github.com/rustypipe/rustypipe/hashing"
)

func TestStateRoundTripAndCorruption(t *testing.T) {
	f := &stateFile{Version: stateVersion,
		Tasks: map[string]*stateEntry{
			"a": {Key: hashing.Key{1}, Manifest: hashing.Digest{2}, Files: []hashing.FileEntry{{Path: "out/x", Mode: 0o644, Digest: hashing.Digest{3}}}, Stdout: []byte("hi\n"), HasOut: true},
			"b": {Key: hashing.Key{4}, Files: []hashing.FileEntry{}, Stdout: []byte{}, HasOut: true},
			"c": {Key: hashing.Key{5}, Files: []hashing.FileEntry{}},
		},
		Durations: map[string]int64{"a": 12, "b": 1},
	}
	data := encodeState(f)
	got, ok := decodeState(data)
	if !ok || !got.intact || got.records != 5 {
		t.Fatalf("a freshly encoded state: ok=%v intact=%v records=%d", ok, got.intact, got.records)
	}
	if !reflect.DeepEqual(got.Tasks, f.Tasks) || !reflect.DeepEqual(got.Durations, f.Durations) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, f)
	}
	// A damaged or cut file yields whole records that precede the damage,
	// never a partial or altered entry, and is not intact.
	onlyWhole := func(what string, g stateFile) {
		t.Helper()
		for name, e := range g.Tasks {
			if !reflect.DeepEqual(e, f.Tasks[name]) {
				t.Fatalf("%s: entry %q = %+v, want %+v", what, name, e, f.Tasks[name])
			}
		}
		for name, ms := range g.Durations {
			if ms != f.Durations[name] {
				t.Fatalf("%s: duration %q = %d, want %d", what, name, ms, f.Durations[name])
			}
		}
	}
	for i := range data {
		g, ok := decodeState(data[:i])
		if i < len(stateMagic) {
			if ok {
				t.Fatalf("a state cut to %d bytes, inside the magic, was accepted", i)
			}
			continue
		}
		if !ok {
			t.Fatalf("a state cut to %d of %d bytes was refused whole", i, len(data))
		}
		onlyWhole(fmt.Sprintf("cut to %d bytes", i), g)
		if g.intact && g.records == 5 {
			t.Fatalf("a state cut to %d of %d bytes read as complete", i, len(data))
		}
	}
	for i := len(stateMagic); i < len(data); i++ {
		bad := slices.Clone(data)
		bad[i] ^= 0x40
		g, ok := decodeState(bad)
		if !ok || g.intact {
			t.Fatalf("byte %d flipped: ok=%v intact=%v, want a damaged log", i, ok, g.intact)
		}
		onlyWhole(fmt.Sprintf("byte %d flipped", i), g)
	}
	if g, ok := decodeState(append(slices.Clone(data), 0)); !ok || g.intact || len(g.Tasks) != 3 {
		t.Fatal("trailing garbage: want the entries, marked damaged")
	}
	if _, ok := decodeState([]byte("rustypipe state 1\nxx")); ok {
		t.Fatal("another version accepted")
	}

	// Records apply in order: later ones win, forget removes.
	log := append(slices.Clone(data), appendStateRecord(nil, appendForgetPayload(nil, "a"))...)
	log = append(log, appendStateRecord(nil, appendEntryPayload(nil, "c", f.Tasks["a"]))...)
	log = append(log, appendStateRecord(nil, appendDurationPayload(nil, "b", 7))...)
	g, ok := decodeState(log)
	if !ok || !g.intact || g.records != 8 {
		t.Fatalf("log: ok=%v intact=%v records=%d", ok, g.intact, g.records)
	}
	if _, has := g.Tasks["a"]; has || !reflect.DeepEqual(g.Tasks["c"], f.Tasks["a"]) || g.Durations["b"] != 7 {
		t.Fatalf("log applied out of order: %+v", g)
	}
}

// A save appends this build's records; the file is rewritten whole when
// it was damaged or when superseded records would make up most of it.
func TestStateSaveAppendsAndCompacts(t *testing.T) {
	ws := t.TempDir()
	path := StatePath(ws)
	entry := func(b byte) *stateEntry {
		return &stateEntry{Key: hashing.Key{b}, Files: []hashing.FileEntry{}, Stdout: []byte{b}, HasOut: true}
	}
	s := loadState(ws)
	for i := range 100 {
		s.put(fmt.Sprintf("t%d", i), entry(byte(i)))
	}
	if err := s.save(); err != nil {
		t.Fatal(err)
	}
	full, _ := os.ReadFile(path)

	// One changed task: its record is appended, the rest stays.
	s = loadState(ws)
	s.put("t7", entry(200))
	if err := s.save(); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.HasPrefix(after, full) || len(after)-len(full) > 200 {
		t.Fatalf("one change: file went from %d to %d bytes, not by one appended record", len(full), len(after))
	}
	if f, ok := readStateFile(path); !ok || f.records != 101 || f.Tasks["t7"].Key != (hashing.Key{200}) {
		t.Fatalf("after the append: ok=%v records=%d", ok, f.records)
	}

	// Many more changes than live entries: compacted.
	for round := range 3 {
		s = loadState(ws)
		for i := range 100 {
			s.put(fmt.Sprintf("t%d", i), entry(byte(round)))
		}
		if err := s.save(); err != nil {
			t.Fatal(err)
		}
	}
	f, ok := readStateFile(path)
	if !ok || len(f.Tasks) != 100 || f.records > 2*100+64 {
		t.Fatalf("after many changes: ok=%v tasks=%d records=%d, want compacted", ok, len(f.Tasks), f.records)
	}

	// A torn append (a build killed while writing): the next save rewrites
	// the file, which is then whole again.
	data, _ := os.ReadFile(path)
	torn := appendStateRecord(nil, appendEntryPayload(nil, "t1", entry(9)))
	if err := os.WriteFile(path, append(data, torn[:len(torn)/2]...), 0o644); err != nil {
		t.Fatal(err)
	}
	s = loadState(ws)
	if s.intact || s.get("t1").Key != (hashing.Key{2}) {
		t.Fatalf("torn file: intact=%v, t1=%v", s.intact, s.get("t1").Key)
	}
	s.put("t2", entry(42))
	if err := s.save(); err != nil {
		t.Fatal(err)
	}
	f, ok = readStateFile(path)
	if !ok || !f.intact || len(f.Tasks) != 100 || f.Tasks["t2"].Key != (hashing.Key{42}) {
		t.Fatalf("after a torn append: ok=%v intact=%v tasks=%d", ok, f.intact, len(f.Tasks))
	}
}

// TestStateSaveMergesAnotherBuildsWrite: a build that saves after another
// build replaced the state file keeps the other build's entries.
func TestStateSaveMergesAnotherBuildsWrite(t *testing.T) {
	ws := t.TempDir()
	entry := func(b byte) *stateEntry {
		return &stateEntry{Key: hashing.Key{b}, Files: []hashing.FileEntry{}, Stdout: []byte{b}, HasOut: true}
	}
	s0 := loadState(ws)
	s0.put("a", entry(1))
	if err := s0.save(); err != nil {
		t.Fatal(err)
	}
	s1, s2 := loadState(ws), loadState(ws)
	s1.put("b", entry(2))
	if err := s1.save(); err != nil { // nobody wrote since s1 loaded
		t.Fatal(err)
	}
	s2.put("c", entry(3))
	s2.forget("a")
	if err := s2.save(); err != nil { // s1 wrote since s2 loaded
		t.Fatal(err)
	}
	f, ok := readStateFile(StatePath(ws))
	if !ok {
		t.Fatal("state file unreadable")
	}
	var names []string
	for n := range f.Tasks {
		names = append(names, n)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"b", "c"}) {
		t.Fatalf("state holds %v, want [b c]", names)
	}
}
