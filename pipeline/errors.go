package pipeline

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// DecodeError is one problem in a pipeline file, at a position.
//
// Error formats it as "file:line:col: task "NAME": MSG", leaving out the parts
// that are unknown (a zero Line or Col, an empty Task). Msg names the YAML key
// concerned when there is one (`key "retries": expected an integer, got
// "three"`); Key holds that key alone for callers that inspect errors.
type DecodeError struct {
	File string
	Line int    // 1-based; 0 when unknown
	Col  int    // 1-based; 0 when unknown
	Task string // the task the problem is in; "" for pipeline-level problems
	Key  string // the YAML key concerned, if any ("depends_on", "run", ...)
	Msg  string

	err error // the cause, for errors.Is (ErrTooLarge); usually nil
}

// Unwrap returns the cause of a file-level error (ErrTooLarge), or nil.
func (e *DecodeError) Unwrap() error { return e.err }

func (e *DecodeError) Error() string {
	var b strings.Builder
	b.WriteString(e.Pos().String())
	b.WriteString(": ")
	if e.Task != "" {
		fmt.Fprintf(&b, "task %q: ", e.Task)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Pos is the position of the error.
func (e *DecodeError) Pos() Pos { return Pos{File: e.File, Line: e.Line, Col: e.Col} }

// Errors is every problem found in one pipeline file, sorted by position.
// Parse and Load return it (as an error) whenever a file has problems, even
// a single one; errors.As finds each *DecodeError through Unwrap.
type Errors []*DecodeError

// Error prints one problem per line, in the order of the file.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the individual errors, for errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// sortErrors orders es by position, keeping the order of discovery for
// errors at the same place, and drops exact duplicates.
func sortErrors(es Errors) Errors {
	slices.SortStableFunc(es, func(a, b *DecodeError) int {
		if c := strings.Compare(a.File, b.File); c != 0 {
			return c
		}
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Col - b.Col
	})
	return slices.CompactFunc(es, func(a, b *DecodeError) bool { return *a == *b })
}

// ErrTooLarge is wrapped by Load and Parse when a pipeline file is larger than
// MaxFileSize.
var ErrTooLarge = errors.New("pipeline file too large")

// MaxFileSize is the largest pipeline file Load and Parse accept (4 MiB). A
// real pipeline is a few KiB; the cap bounds the memory a hostile or
// mistaken file (a generated log, a YAML bomb) can make the parser use.
const MaxFileSize = 4 << 20

// suggest returns ` (did you mean "X"?)` for the candidate closest to s, or ""
// when none is close enough to be a likely typo.
func suggest(s string, candidates []string) string {
	best, bestDist := "", -1
	ls := strings.ToLower(s)
	for _, c := range candidates {
		if c == s {
			continue
		}
		d := editDistance(ls, strings.ToLower(c))
		if bestDist < 0 || d < bestDist || (d == bestDist && c < best) {
			best, bestDist = c, d
		}
	}
	if bestDist < 0 || bestDist > maxTypoDistance(s) {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// maxTypoDistance is how many edits still count as a typo of s: one for short
// words, growing with length up to three, so "rn" suggests "run" but "dir"
// does not suggest "env".
func maxTypoDistance(s string) int {
	return min(len(s)/3+1, 3)
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and transpositions of adjacent bytes
// each cost one.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
