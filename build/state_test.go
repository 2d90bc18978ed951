package build

import (
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
	if !ok {
		t.Fatal("a freshly encoded state did not decode")
	}
	if !reflect.DeepEqual(&got, f) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, f)
	}
	for i := range data { // every truncation is refused, never a panic
		if _, ok := decodeState(data[:i]); ok {
			t.Fatalf("a state cut to %d of %d bytes decoded", i, len(data))
		}
	}
	if _, ok := decodeState(append(data, 0)); ok {
		t.Fatal("trailing garbage accepted")
	}
	if _, ok := decodeState([]byte("rustypipe state 9\nxx")); ok {
		t.Fatal("another version accepted")
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
