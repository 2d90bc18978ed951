package ssh

import (
	"bytes"
	"errors"
	"io"
	osexec "os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

func TestQuote(t *testing.T) {
	tests := map[string]string{
		"":              "''",
		"abc":           "abc",
		"a/b-c_d.e=f:g": "a/b-c_d.e=f:g",
		"a b":           "'a b'",
		"it's":          `'it'\''s'`,
		`$HOME"\`:       `'$HOME"\'`,
		"*":             "'*'",
		"~":             "'~'",
		"a\nb":          "'a\nb'",
	}
	for in, want := range tests {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestQuoteRoundTrip checks with a real sh that every quoted word comes
// back as it was.
func TestQuoteRoundTrip(t *testing.T) {
	sh, err := osexec.LookPath("sh")
	if err != nil || runtime.GOOS == "windows" {
		t.Skip("no POSIX sh")
	}
	words := []string{"", "plain", "two  spaces", "it's", `'"$HOME\` + "`x`", "$(id)", "a\nb\tc", "*?[a]", "~root", "-n", "é✓"}
	var script strings.Builder
	for _, w := range words {
		script.WriteString("printf '%s\\0' " + quote(w) + "\n")
	}
	out, err := osexec.Command(sh, "-c", script.String()).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if !slices.Equal(got, words) {
		t.Errorf("round trip = %q, want %q", got, words)
	}
}

func TestTaskEnv(t *testing.T) {
	in := []string{"PATH=/local/bin", "A=1", "HOME=/l", "B=x=y", "novalue", "=C:=C:\\", "-u=x", "A=2", "TMPDIR=/t", "EMPTY=", "USER=me", "LOGNAME=me", "SHELL=/bin/zsh"}
	want := []string{"A=2", "B=x=y", "EMPTY="}
	if got := taskEnv(in); !slices.Equal(got, want) {
		t.Errorf("taskEnv = %q, want %q", got, want)
	}
}

func TestShellArgv(t *testing.T) {
	tests := []struct {
		shell   string
		want    []string
		wantErr string
	}{
		{"", []string{"sh", "-c", "s"}, ""},
		{"sh", []string{"sh", "-c", "s"}, ""},
		{"bash", []string{"bash", "-c", "s"}, ""},
		{"pwsh", []string{"pwsh", "-NoProfile", "-NonInteractive", "-Command", "s"}, ""},
		{"cmd", nil, "not available on SSH hosts"},
		{"powershell", nil, "not available on SSH hosts"},
		{"zsh", nil, "unknown shell"},
	}
	for _, tc := range tests {
		got, err := shellArgv(tc.shell, "s")
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("shellArgv(%q) err = %v, want %q", tc.shell, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("shellArgv(%q) = %q, %v; want %q", tc.shell, got, err, tc.want)
		}
	}
}

func TestOutputPrefixes(t *testing.T) {
	tests := []struct {
		globs []string
		want  []string
	}{
		{[]string{"out/x.txt"}, []string{"out/x.txt"}},
		{[]string{"out/*.txt", "out/gen/**/*.o"}, []string{"out"}},
		{[]string{"out/gen/*.o", "dist/a", "out/x"}, []string{"dist/a", "out/gen", "out/x"}},
		{[]string{"**/*.o", "out/x"}, []string{"."}},
		{[]string{"*.txt"}, []string{"."}},
		{[]string{"a/{b,c}/d", "a/[xy]"}, []string{"a"}},
		{[]string{"a/b", "a/b"}, []string{"a/b"}},
		{[]string{"ab/c", "a/d"}, []string{"a/d", "ab/c"}},
	}
	for _, tc := range tests {
		if got := outputPrefixes(tc.globs); !slices.Equal(got, tc.want) {
			t.Errorf("outputPrefixes(%q) = %q, want %q", tc.globs, got, tc.want)
		}
	}
}

func TestReadStatus(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		wantBefore string
		wantStatus int
		wantErr    string
	}{
		{"status 0", "out\nmore\n\nM 0\n", "out\nmore\n", 0, ""},
		{"status 3", "\nM 3\n", "", 3, ""},
		{"binary before", "\x00\x00tar\x00\nM 0\ntrailing", "\x00\x00tar\x00", 0, ""},
		{"no status", "out\n", "", 0, "ended before its status line"},
		{"partial status", "out\nM 1", "", 0, "ended before its status line"},
		{"other marker", "\nN 0\n", "", 0, "ended before its status line"},
		{"bad status", "\nM x\n", "", 0, "bad status line"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// One byte at a time: the marker must be found across reads.
			before, st, err := readStatus(iotest.OneByteReader(strings.NewReader(tc.in)), "M")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || string(before) != tc.wantBefore || st != tc.wantStatus {
				t.Errorf("readStatus = %q, %d, %v; want %q, %d", before, st, err, tc.wantBefore, tc.wantStatus)
			}
		})
	}
}

// TestPump checks that a stream loses what precedes the start marker,
// even when the marker arrives split across reads, and keeps every byte
// after it.
func TestPump(t *testing.T) {
	const token = "tok"
	in := "login noise\n\ntok-pgid 1234\nset-up error\n\ntok-start\nline 1\n\ntok-start\nline 2"
	for _, chunk := range []int{1, 3, 1 << 20} {
		var out bytes.Buffer
		pg := &pgidWatch{prefix: []byte("\n" + token + "-pgid "), known: make(chan struct{})}
		p := newPump(&chunkReader{r: strings.NewReader(in), n: chunk}, token, &out, pg.scan)
		p.run()
		if got, want := out.String(), "line 1\n\ntok-start\nline 2"; got != want {
			t.Errorf("chunks of %d: output %q, want %q", chunk, got, want)
		}
		if !p.seen || pg.get() != 1234 {
			t.Errorf("chunks of %d: seen %v, pgid %d; want true, 1234", chunk, p.seen, pg.get())
		}
		if got, want := p.preludeText(token), "login noise\nset-up error"; got != want {
			t.Errorf("chunks of %d: prelude %q, want %q", chunk, got, want)
		}
	}

	var out bytes.Buffer
	p := newPump(strings.NewReader("only an error\n"), token, &out, nil)
	p.run()
	if p.seen || out.Len() != 0 || p.preludeText(token) != "only an error" {
		t.Errorf("without a marker: seen %v, output %q, prelude %q", p.seen, out.String(), p.preludeText(token))
	}

	p = newPump(strings.NewReader("\ntok-start\nx"), token, failingWriter{}, nil)
	p.run()
	if !errors.Is(p.werr, errWrite) {
		t.Errorf("write error = %v, want %v", p.werr, errWrite)
	}
}

type chunkReader struct {
	r io.Reader
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

var errWrite = errors.New("disk full")

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errWrite }

func TestSignalDescription(t *testing.T) {
	for in, want := range map[string]string{"TERM": "terminated", "KILL": "killed", "INT": "interrupt", "WINCH": "signal WINCH"} {
		if got := signalDescription(in); got != want {
			t.Errorf("signalDescription(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTaskFileSourcesBack(t *testing.T) {
	sh, err := osexec.LookPath("sh")
	if err != nil || runtime.GOOS == "windows" {
		t.Skip("no POSIX sh")
	}
	env := []string{"A=it's", `B="$x\`, "C=a\nb"}
	argv := []string{"sh", "-c", "echo 'hi'; exit 3"}
	f := taskFile("sub dir", env, argv)
	out, err := osexec.Command(sh, "-c", f+`printf '%s\0' "$dir" "$prog" "$@"`).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	want := append(append([]string{"sub dir", "sh"}, env...), argv...)
	if !slices.Equal(got, want) {
		t.Errorf("task file gives %q, want %q", got, want)
	}
}
