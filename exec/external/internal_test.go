package external

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rustypipe/rustypipe/exec"
)

func TestLineReader(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		types []string // the types read before the final error
		err   error    // wrapped by the final error
		msg   string   // part of the final error's text
	}{
		{"empty", "", nil, io.EOF, ""},
		{"two", "{\"type\":\"a\"}\n{\"type\":\"b\"}\n", []string{"a", "b"}, io.EOF, ""},
		{"crlf and blank lines", "\r\n{\"type\":\"a\"}\r\n\n  \n{\"type\":\"b\"}\n", []string{"a", "b"}, io.EOF, ""},
		{"blank unterminated end", "{\"type\":\"a\"}\n  ", []string{"a"}, io.EOF, ""},
		{"cut off", "{\"type\":\"a\"}\n{\"type\":\"b\"", []string{"a"}, io.ErrUnexpectedEOF, "last line cut off"},
		{"not json", "{\"type\":\"a\"}\nhello world\n", []string{"a"}, ErrProtocol, `line 2 ("hello world")`},
		{"no type", "{\"id\":\"1\"}\n", nil, ErrProtocol, "no message type"},
		{"not an object", "[1,2]\n", nil, ErrProtocol, "line 1"},
		{"long line", "{\"type\":\"a\",\"data\":\"" + strings.Repeat("QUFB", 50000) + "\"}\n", []string{"a"}, io.EOF, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lr := newLineReader(strings.NewReader(tc.in))
			var types []string
			var err error
			for {
				var m *message
				if m, err = lr.next(); err != nil {
					break
				}
				types = append(types, m.Type)
			}
			if fmt.Sprint(types) != fmt.Sprint(tc.types) {
				t.Errorf("types = %v, want %v", types, tc.types)
			}
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("final error = %v, want one wrapping %v saying %q", err, tc.err, tc.msg)
			}
		})
	}
}

func TestMillis(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want int64
	}{
		{0, 0},
		{-time.Second, 0},
		{time.Nanosecond, 1},
		{time.Millisecond, 1},
		{time.Millisecond + 1, 2},
		{90 * time.Second, 90000},
	}
	for _, tc := range tests {
		if got := millis(tc.d); got != tc.want {
			t.Errorf("millis(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

func TestCheckLinkTarget(t *testing.T) {
	tests := []struct {
		rel, target string
		ok          bool
	}{
		{"out/l", "a.txt", true},
		{"out/l", "../b.txt", true},
		{"out/sub/l", "../../x", true},
		{"out/l", "../../x", false},
		{"l", "..", false},
		{"out/l", "/etc/passwd", false},
		{"out/l", `..\x`, false},
		{"out/l", "C:x", false},
		{"out/l", "", false},
	}
	for _, tc := range tests {
		err := checkLinkTarget(tc.rel, tc.target)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, exec.ErrUnsafePath)) {
			t.Errorf("checkLinkTarget(%q, %q) = %v, want ok %v", tc.rel, tc.target, err, tc.ok)
		}
	}
}

func TestStderrTail(t *testing.T) {
	var logged []string
	tail := &stderrTail{log: func(s string) { logged = append(logged, s) }}
	for i := range 25 {
		fmt.Fprintf(tail, "line %d\n", i)
	}
	io.WriteString(tail, strings.Repeat("x", 1000)+"\nlast, no newline")
	got := tail.String()
	lines := strings.Split(strings.TrimPrefix(got, "; its stderr ended with:\n\t"), "\n\t")
	if len(lines) != tailLines+1 {
		t.Fatalf("tail has %d lines, want %d: %q", len(lines), tailLines+1, got)
	}
	if lines[0] != "line 16" || lines[tailLines] != "last, no newline" {
		t.Errorf("tail = %q, want lines 16 to 24, the long line and the partial one", lines)
	}
	if long := lines[tailLines-1]; len(long) != tailLineMax+3 || !strings.HasSuffix(long, "...") {
		t.Errorf("long line kept as %d bytes, want it cut at %d", len(long), tailLineMax)
	}
	if len(logged) != 26 || logged[0] != "stderr: line 0" || len(logged[25]) != len("stderr: ")+1000 {
		t.Errorf("logged %d lines (first %q), want every complete line in full", len(logged), logged[0])
	}
}
