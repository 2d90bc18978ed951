package cas

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// The use log, v1/uses.log, carries the hits of Lookup stores, which do
// not write the index, to the next writable store. Each line is
// "<key hex> <unix nanoseconds>\n", appended with one write per Close
// under the shared lock; a line cut short by a killed process is skipped.
// A writable Open (holding the lock exclusively, so no one appends) merges
// the log into the index and removes it. Use times are hints for GC:
// errors here are ignored rather than failing a lookup.

// appendUses appends pending uses to the log.
func (s *Store) appendUses(pending map[[32]byte]time.Time) {
	var b bytes.Buffer
	for k, t := range pending {
		fmt.Fprintf(&b, "%s %d\n", hexKey(k), t.UnixNano())
	}
	f, err := os.OpenFile(filepath.Join(s.root, usesName), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o666)
	if err != nil {
		return
	}
	f.Write(b.Bytes())
	f.Close()
}

// mergeUses folds the use log into the index and removes it.
func (s *Store) mergeUses(db *badger.DB) {
	p := filepath.Join(s.root, usesName)
	data, err := os.ReadFile(p)
	if err != nil || len(data) == 0 {
		return
	}
	uses := parseUses(data)
	s.usedMu.Lock()
	for k, t := range uses {
		if t.After(s.used[k]) {
			s.used[k] = t
		}
	}
	s.usedMu.Unlock()
	if s.flushUsed(db) == nil {
		os.Remove(p)
	}
}

// parseUses reads the use log, keeping each key's latest time and
// skipping malformed lines.
func parseUses(data []byte) map[[32]byte]time.Time {
	uses := map[[32]byte]time.Time{}
	for _, line := range bytes.Split(data, []byte("\n")) {
		k, ts, ok := bytes.Cut(line, []byte(" "))
		if !ok || len(k) != 64 {
			continue
		}
		var key [32]byte
		if _, err := hex.Decode(key[:], k); err != nil {
			continue
		}
		n, err := strconv.ParseInt(string(ts), 10, 64)
		if err != nil || n <= 0 {
			continue
		}
		if t := time.Unix(0, n); t.After(uses[key]) {
			uses[key] = t
		}
	}
	return uses
}
