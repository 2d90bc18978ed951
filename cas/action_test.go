package cas

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"math/rand/v2"
	"testing"
	"time"
)

// TestRecordJSON checks the hand-written record encoding against
// json.Marshal of the same record, byte for byte, on random actions: every
// omitempty field both present and absent, strings that need escaping,
// regular files and symlinks, negative and zero numbers.
func TestRecordJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	strs := []string{"", "t7", "out/ä <b>&\"c\"\\.txt", "\x01\t\n\u2028\xff"}
	str := func() string { return strs[r.IntN(len(strs))] }
	digest := func() (d [32]byte) {
		for i := range d {
			d[i] = byte(r.IntN(256))
		}
		return d
	}
	blob := func() BlobRef {
		if r.IntN(3) == 0 {
			return BlobRef{}
		}
		return BlobRef{Digest: digest(), Size: int64(r.IntN(3)) * 1000}
	}
	for i := range 2000 {
		a := &ActionResult{
			Task:      str(),
			Stdout:    blob(),
			Stderr:    blob(),
			ExitCode:  r.IntN(3) - 1,
			CreatedAt: time.Unix(0, r.Int64N(1<<62)-1<<61),
			Duration:  time.Duration(r.Int64N(1<<40) - 1<<39),
		}
		switch r.IntN(3) {
		case 0: // no preimage
		case 1:
			a.Preimage = []byte{}
		default:
			a.Preimage = []byte(`{"records":[{"label":"command","value":"` + str() + `"}]}`)
		}
		for range r.IntN(4) {
			f := OutputFile{Path: str(), Mode: fs.FileMode(r.IntN(0o1000)), Digest: digest(), Size: int64(r.IntN(2)) * int64(r.IntN(1<<20))}
			if r.IntN(4) == 0 {
				f = OutputFile{Path: str(), Mode: fs.ModeSymlink | 0o777, LinkTarget: str()}
			}
			a.Files = append(a.Files, f)
		}
		if i%7 == 0 {
			a.Files = []OutputFile{}
		}
		rec := newRecord(a)
		want, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if got := encodeAction(a); !bytes.Equal(got, want) {
			t.Fatalf("action %d:\n got %s\nwant %s", i, got, want)
		}
	}
}
