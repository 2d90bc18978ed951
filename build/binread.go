package build

import "encoding/binary"

// binReader reads the uvarint-framed binary files rustypipe keeps in a
// workspace (the state, the no-op record). A short or malformed read sets
// bad and returns zero values, so a decoder reads on and checks bad once
// at the end; nothing it returns can make the caller index out of range.
type binReader struct {
	d   []byte
	bad bool
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

// str reads a uvarint length and that many bytes.
func (r *binReader) str() string { return string(r.fixed(int(min(r.num(), uint64(len(r.d)+1))))) }

// count reads a number of items that each take a byte or more.
func (r *binReader) count() int { return int(min(r.num(), uint64(len(r.d)))) }

// done reports whether everything was read, and well.
func (r *binReader) done() bool { return !r.bad && len(r.d) == 0 }
