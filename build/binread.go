package build

import (
	"encoding/binary"
	"unsafe"
)

// binReader reads the uvarint-framed binary files rustypipe keeps in a
// workspace (the state, the no-op record). A short or malformed read sets
// bad and returns zero values, so a decoder reads on and checks bad once
// at the end; nothing it returns can make the caller index out of range.
type binReader struct {
	d   []byte
	s   string // the data as one string: decoded strings are substrings of it
	n0  int    // len(data)
	bad bool
}

// newBinReader reads data, which must not change afterwards: the strings it
// returns share its memory (a copy of a whole state file was a tenth of its
// decoding).
func newBinReader(data []byte) *binReader {
	return &binReader{d: data, s: unsafe.String(unsafe.SliceData(data), len(data)), n0: len(data)}
}

func (r *binReader) num() uint64 {
	v, n := binary.Uvarint(r.d)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.d = r.d[n:]
	return v
}

func (r *binReader) snum() int64 {
	v, n := binary.Varint(r.d)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.d = r.d[n:]
	return v
}

// fixed returns the next n bytes, or n zero bytes when fewer are left.
func (r *binReader) fixed(n int) []byte {
	if r.bad || len(r.d) < n {
		r.bad = true
		return make([]byte, n)
	}
	v := r.d[:n:n]
	r.d = r.d[n:]
	return v
}

// str reads a uvarint length and that many bytes, without copying them.
func (r *binReader) str() string {
	n := int(min(r.num(), uint64(len(r.d)+1)))
	off := r.n0 - len(r.d)
	if r.fixed(n); r.bad {
		return ""
	}
	return r.s[off : off+n]
}

// count reads a number of items that each take a byte or more.
func (r *binReader) count() int { return int(min(r.num(), uint64(len(r.d)))) }

// done reports whether everything was read, and well.
func (r *binReader) done() bool { return !r.bad && len(r.d) == 0 }
