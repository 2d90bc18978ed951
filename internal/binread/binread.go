package binread

import (
	"encoding/binary"
	"unsafe"
)

// Reader reads data from the front.
type Reader struct {
	d   []byte
	s   string // data's memory as one string: Str returns substrings of it
	n0  int    // len(data)
	bad bool
}

// New reads data, which must not change afterwards: the strings Str
// returns share its memory, which spares a decoder a copy per string.
func New(data []byte) *Reader {
	return &Reader{d: data, s: unsafe.String(unsafe.SliceData(data), len(data)), n0: len(data)}
}

// Fail marks the reader bad, for a decoder that finds a value it refuses.
func (r *Reader) Fail() { r.bad, r.d = true, r.d[len(r.d):] }

// Bad reports whether a read failed.
func (r *Reader) Bad() bool { return r.bad }

// Len is the number of bytes not read yet.
func (r *Reader) Len() int { return len(r.d) }

// Done reports whether everything was read, and well.
func (r *Reader) Done() bool { return !r.bad && len(r.d) == 0 }

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 {
	v, n := binary.Uvarint(r.d)
	if n <= 0 {
		r.Fail()
		return 0
	}
	r.d = r.d[n:]
	return v
}

// Varint reads a zigzag-encoded signed varint.
func (r *Reader) Varint() int64 {
	v, n := binary.Varint(r.d)
	if n <= 0 {
		r.Fail()
		return 0
	}
	r.d = r.d[n:]
	return v
}

// Bytes returns the next n bytes, sharing data's memory, or n zero bytes
// when fewer are left. n is a fixed field size, such as a digest's.
func (r *Reader) Bytes(n int) []byte {
	if r.bad || len(r.d) < n {
		r.Fail()
		return make([]byte, n)
	}
	v := r.d[:n:n]
	r.d = r.d[n:]
	return v
}

// Byte reads one byte.
func (r *Reader) Byte() byte { return r.Bytes(1)[0] }

// Str reads a uvarint length and that many bytes, without copying them.
func (r *Reader) Str() string {
	n := r.Uvarint()
	if n > uint64(len(r.d)) {
		r.Fail()
		return ""
	}
	off := r.n0 - len(r.d)
	r.d = r.d[n:]
	return r.s[off : off+int(n)]
}

// Count reads a number of items that each take a byte or more: it is at
// most Len.
func (r *Reader) Count() int {
	n := r.Uvarint()
	if n > uint64(len(r.d)) {
		r.Fail()
		return 0
	}
	return int(n)
}

// Sub returns the next n bytes as a Reader of their own (sharing memory)
// and moves past them; a bad, empty Reader when fewer are left.
func (r *Reader) Sub(n int) *Reader {
	if r.bad || n < 0 || len(r.d) < n {
		r.Fail()
		return &Reader{bad: true}
	}
	off := r.n0 - len(r.d)
	sub := &Reader{d: r.d[:n:n], s: r.s[off : off+n], n0: n}
	r.d = r.d[n:]
	return sub
}

// Peek returns the bytes not read yet, without reading them.
func (r *Reader) Peek() []byte { return r.d }
