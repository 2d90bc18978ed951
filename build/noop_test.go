package build

import (
	"reflect"
	"testing"

	"github.com/rustypipe/rustypipe/hashing"
)

func TestNoopRecordRoundTripAndDamage(t *testing.T) {
	rec := &noopRecord{
		stamp: "v1 /bin/rustypipe 123 456", file: "rustypipe.yaml", targets: "a\x00b",
		pipeline: hashing.DigestBytes([]byte("tasks: []")),
		env:      []noopEnv{{name: "HOME", value: "/root", set: true}, {name: "UNSET"}},
		tasks:    []noopTask{{name: "a", file: "a", key: hashing.Key{1}, nfiles: 2}, {name: "b/c", file: "b_c-1234", key: hashing.Key{2}, nfiles: 1, first: 2}},
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
