package build

import (
	"reflect"
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
