package jsonenc

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

func check(t *testing.T, s string) {
	t.Helper()
	want, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := String(nil, s); !bytes.Equal(got, want) {
		t.Fatalf("String(%q) = %s, want %s", s, got, want)
	}
}

// TestStringEveryByte compares String with encoding/json on every byte
// value alone and between other text, and on the runes it treats apart.
func TestStringEveryByte(t *testing.T) {
	for b := range 256 {
		check(t, string([]byte{byte(b)}))
		check(t, "a"+string([]byte{byte(b)})+"é")
	}
	for _, s := range []string{"", "plain", "\u2028\u2029", "日本語", "\xff\xfe", "a\xe2\x80", "\U0001F600", string(utf8.RuneError)} {
		check(t, s)
	}
}

// TestStringRandom compares String with encoding/json on random strings:
// random bytes (mostly invalid UTF-8) and random runes.
func TestStringRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		b := make([]byte, r.IntN(24))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		check(t, string(b))
		rs := make([]rune, r.IntN(12))
		for i := range rs {
			switch r.IntN(3) {
			case 0:
				rs[i] = rune(r.IntN(0x80))
			case 1:
				rs[i] = rune(0x2000 + r.IntN(0x40))
			default:
				rs[i] = rune(r.IntN(0x110000))
			}
		}
		check(t, string(rs))
	}
}

func TestInts(t *testing.T) {
	for _, v := range []int64{0, -1, 1 << 62, -1 << 63} {
		want, _ := json.Marshal(v)
		if got := Int(nil, v); !bytes.Equal(got, want) {
			t.Errorf("Int(%d) = %s, want %s", v, got, want)
		}
	}
	for _, v := range []uint64{0, 1 << 63, 1<<64 - 1} {
		want, _ := json.Marshal(v)
		if got := Uint(nil, v); !bytes.Equal(got, want) {
			t.Errorf("Uint(%d) = %s, want %s", v, got, want)
		}
	}
}
