package hashing

import (
	"encoding/hex"
	"fmt"

	"github.com/zeebo/blake3"
)

// Size is the length in bytes of a Digest and of a Key (BLAKE3-256).
const Size = 32

// Digest names content: the BLAKE3-256 hash of a blob, a file, a symlink
// target or an output manifest. Compare with ==; the zero value means "none".
type Digest [Size]byte

// Key names work: the BLAKE3-256 hash of a task's recipe (see TaskKey and the
// package documentation). Two tasks with the same Key produce the same
// results. Compare with ==; the zero value means "none".
type Key [Size]byte

// String returns the digest as 64 lowercase hex digits.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// IsZero reports whether d is the zero Digest.
func (d Digest) IsZero() bool { return d == Digest{} }

// MarshalText encodes d as 64 lowercase hex digits (used by encoding/json).
func (d Digest) MarshalText() ([]byte, error) { return hexText(d[:]), nil }

// UnmarshalText decodes 64 hex digits into d.
func (d *Digest) UnmarshalText(b []byte) error { return parseHex("digest", string(b), d[:]) }

// ParseDigest decodes the 64 hex digits written by Digest.String.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	err := parseHex("digest", s, d[:])
	return d, err
}

// String returns the key as 64 lowercase hex digits.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// IsZero reports whether k is the zero Key.
func (k Key) IsZero() bool { return k == Key{} }

// MarshalText encodes k as 64 lowercase hex digits (used by encoding/json).
func (k Key) MarshalText() ([]byte, error) { return hexText(k[:]), nil }

// UnmarshalText decodes 64 hex digits into k.
func (k *Key) UnmarshalText(b []byte) error { return parseHex("key", string(b), k[:]) }

// ParseKey decodes the 64 hex digits written by Key.String.
func ParseKey(s string) (Key, error) {
	var k Key
	err := parseHex("key", s, k[:])
	return k, err
}

func hexText(b []byte) []byte {
	out := make([]byte, hex.EncodedLen(len(b)))
	hex.Encode(out, b)
	return out
}

func parseHex(what, s string, dst []byte) error {
	if len(s) != hex.EncodedLen(len(dst)) {
		return fmt.Errorf("hashing: parse %s %q: want %d hex digits, got %d characters", what, s, hex.EncodedLen(len(dst)), len(s))
	}
	var tmp [Size]byte
	if _, err := hex.Decode(tmp[:len(dst)], []byte(s)); err != nil {
		return fmt.Errorf("hashing: parse %s %q: %w", what, s, err)
	}
	copy(dst, tmp[:len(dst)])
	return nil
}

// DigestBytes returns the Digest of b.
func DigestBytes(b []byte) Digest { return Digest(blake3.Sum256(b)) }

// Digester computes a Digest of streamed content. It is an io.Writer whose
// Write never fails. Create one with NewDigester: the zero value is not
// ready. A Digester is not safe for concurrent use; Sum may be called at any
// time and does not change the state.
type Digester struct {
	h blake3.Hasher
	n int64
}

// NewDigester returns a Digester of empty content.
func NewDigester() *Digester {
	return &Digester{h: *blake3.New()}
}

// Write adds p to the content. It always returns len(p), nil.
func (d *Digester) Write(p []byte) (int, error) {
	d.h.Write(p)
	d.n += int64(len(p))
	return len(p), nil
}

// WriteString adds s to the content without copying it.
func (d *Digester) WriteString(s string) (int, error) {
	d.h.WriteString(s)
	d.n += int64(len(s))
	return len(s), nil
}

// Sum returns the Digest of everything written so far.
func (d *Digester) Sum() Digest {
	var out Digest
	d.h.Sum(out[:0])
	return out
}

// Size returns the number of bytes written so far.
func (d *Digester) Size() int64 { return d.n }

// Reset makes d a Digester of empty content again.
func (d *Digester) Reset() {
	d.h.Reset()
	d.n = 0
}
