package binread

import (
	"encoding/binary"
	"testing"
)

func sample() []byte {
	b := binary.AppendUvarint(nil, 300)
	b = binary.AppendVarint(b, -5)
	b = binary.AppendUvarint(b, 3)
	b = append(b, "abc"...)
	b = append(b, 1, 2, 3, 4)
	return binary.AppendUvarint(b, 2) // a count
}

// Every value reads back, and the reader is done.
func TestReadsWhatWasWritten(t *testing.T) {
	r := New(sample())
	if v := r.Uvarint(); v != 300 {
		t.Errorf("Uvarint = %d", v)
	}
	if v := r.Varint(); v != -5 {
		t.Errorf("Varint = %d", v)
	}
	if s := r.Str(); s != "abc" {
		t.Errorf("Str = %q", s)
	}
	sub := r.Sub(2)
	if b := sub.Bytes(2); b[0] != 1 || b[1] != 2 || !sub.Done() {
		t.Errorf("Sub: %v, done %v", b, sub.Done())
	}
	if b := r.Byte(); b != 3 {
		t.Errorf("Byte = %d", b)
	}
	if p := r.Peek(); len(p) != 2 {
		t.Errorf("Peek = %v", p)
	}
	r.Byte()
	if n := r.Count(); n != 0 || !r.Bad() {
		t.Errorf("a count of 2 with nothing left: %d, bad %v", n, r.Bad())
	}
	if r = New(sample()); r.Done() {
		t.Error("a fresh reader is done")
	}
}

// Strings share the data's memory.
func TestStrSharesMemory(t *testing.T) {
	data := sample()
	r := New(data)
	r.Uvarint()
	r.Varint()
	s := r.Str()
	data[len(data)-8] = 'X' // the "a" of "abc"
	if s != "Xbc" {
		t.Errorf("Str = %q after the data changed, want it to share the data", s)
	}
}

// Every cut of the data fails some read, never panics, and leaves the
// reader bad with nothing left.
func TestEveryCutFails(t *testing.T) {
	data := sample()
	for n := range len(data) {
		r := New(data[:n])
		r.Uvarint()
		r.Varint()
		r.Str()
		r.Sub(2)
		r.Byte()
		r.Byte()
		r.Count()
		if !r.Bad() || r.Len() != 0 || r.Done() {
			t.Fatalf("cut to %d bytes: bad %v, %d left", n, r.Bad(), r.Len())
		}
	}
}

// A length past the end fails without allocating it.
func TestHugeLengthFails(t *testing.T) {
	r := New(binary.AppendUvarint(nil, 1<<62))
	if s := r.Str(); s != "" || !r.Bad() {
		t.Errorf("Str with a huge length = %q, bad %v", s, r.Bad())
	}
	r = New(binary.AppendUvarint(nil, 1<<62))
	if n := r.Count(); n != 0 || !r.Bad() {
		t.Errorf("Count of a huge number = %d, bad %v", n, r.Bad())
	}
	if sub := New([]byte{1}).Sub(5); !sub.Bad() || sub.Len() != 0 {
		t.Error("Sub past the end is not bad and empty")
	}
}
