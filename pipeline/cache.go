package pipeline

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"

	"github.com/rustypipe/rustypipe/internal/atomicfile"
)

// LoadCached is Load with a memo of the parsed result: parsing and
// validating a large pipeline (YAML, then a shell parse of every command)
// costs far more than a cached build needs. The memo file at cachePath holds
// the parsed pipeline with the SHA-256 of the file's bytes, its path and
// stamp; it is used only when all three match, so any change to the file,
// or a stamp that identifies another rustypipe binary, parses again. Only
// valid pipelines are memoised. A missing, corrupt or unwritable memo is
// never an error.
func LoadCached(path, cachePath, stamp string) (*Pipeline, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return LoadCachedSource(path, data, cachePath, stamp)
}

// LoadCachedSource is LoadCached of the file's content already read, data.
func LoadCachedSource(path string, data []byte, cachePath, stamp string) (*Pipeline, error) {
	if len(data) > MaxFileSize {
		return nil, tooLarge(path, int64(len(data)))
	}
	h := sha256.New()
	fmt.Fprintf(h, "rustypipe pipeline memo v2\x00%s\x00%s\x00", stamp, path)
	h.Write(data)
	sum := h.Sum(nil)
	if raw, err := os.ReadFile(cachePath); err == nil {
		if body, ok := bytes.CutPrefix(raw, append([]byte(memoMagic), sum...)); ok {
			if p, err := decodeMemoPipeline(body); err == nil {
				p.reindex()
				p.source = data
				return p, nil
			}
		}
	}
	p, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	if body, err := encodeMemoPipeline(p); err == nil {
		atomicfile.Write(cachePath, append(append([]byte(memoMagic), sum...), body...), 0o644)
	}
	return p, nil
}

// memoMagic starts a memo file; the SHA-256 of the memo's inputs follows,
// then the encoded pipeline (memocodec.go).
const memoMagic = "rustypipe pipeline memo v2\n"

// reindex rebuilds the unexported lookup index after a memo was decoded.
func (p *Pipeline) reindex() {
	p.byName = make(map[string]*Task, len(p.Tasks))
	for _, t := range p.Tasks {
		p.byName[t.Name] = t
	}
}
