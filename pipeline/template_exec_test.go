package pipeline

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// hostile values: each would run "touch pwned" if it were parsed as code in
// some context, or would change the output if split, globbed or unescaped.
var hostileValues = []string{
	`'; touch pwned; '`,
	`$(touch pwned)`,
	"`touch pwned`",
	`"; touch pwned; "`,
	`\`,
	`\\`,
	"line1\nline2",
	"trailing newline\n",
	"",
	"EOF\ntouch pwned\nEOF",
	"*",
	"-n",
	"${HOME} $HOME %s %%",
	"  spaced   out  ",
	"é ✓ \t tab",
	"a[$(touch pwned)]",
	"'\"`$\\!#&|;<>(){}",
}

// contexts places {{ t.output }} in each shell context; want derives the
// expected output from the value.
var contexts = []struct {
	name  string
	shell string // "" for both sh and bash
	tpl   string
	want  func(v string) string
}{
	{"unquoted", "", `printf '%s' {{ t.output }}`, same},
	{"unquoted-joined", "", `printf '%s|' pre{{t.output}}post {{t.output}}{{t.output}}`, func(v string) string { return "pre" + v + "post|" + v + v + "|" }},
	{"double", "", `printf '%s' "{{ t.output }}"`, same},
	{"double-text", "", `printf '%s' "<{{t.output}}>"`, func(v string) string { return "<" + v + ">" }},
	{"single", "", `printf '%s' '{{ t.output }}'`, same},
	{"single-text", "", `printf '%s' 'a {{t.output}} b'`, func(v string) string { return "a " + v + " b" }},
	{"heredoc", "", "cat <<EOF\n{{ t.output }}\nEOF", func(v string) string { return v + "\n" }},
	{"heredoc-text", "", "cat <<EOF\n[{{t.output}}] \\$ stays\nEOF", func(v string) string { return "[" + v + "] $ stays\n" }},
	{"assign", "", `x={{ t.output }}; printf '%s' "$x"`, same},
	{"cmdsubst", "", `printf '%s' "$(printf '%s' {{ t.output }})"`, func(v string) string { return strings.TrimRight(v, "\n") }},
	{"cmdsubst-single", "", `printf '%s' "$(printf '%s' '{{ t.output }}')"`, func(v string) string { return strings.TrimRight(v, "\n") }},
	{"heredoc-in-cmdsubst", "", "printf '%s' \"$(cat <<EOF\n{{ t.output }}\nEOF\n)\"", func(v string) string { return strings.TrimRight(v, "\n") }},
	{"sh-c-arg", "", `sh -c 'printf "%s" "$1"' sh {{ t.output }}`, same},
	{"dollar-single", "bash", `printf '%s' $'<{{ t.output }}>'`, func(v string) string { return "<" + v + ">" }},
	{"test-dbl-bracket", "bash", `[[ {{ t.output }} == "$V" ]] && printf ok`, func(string) string { return "ok" }},
}

func same(v string) string { return v }

// TestRenderRunsSafely renders each context with each hostile value, runs
// the script with a real shell and checks that it printed exactly the value
// and created no file.
func TestRenderRunsSafely(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs a POSIX shell")
	}
	shells := map[string]string{}
	for _, sh := range []string{"sh", "bash"} {
		if p, err := exec.LookPath(sh); err == nil {
			shells[sh] = p
		}
	}
	if shells["sh"] == "" {
		t.Skip("no sh in PATH")
	}
	dir := t.TempDir()
	// A file for a glob to find, should "*" ever be expanded.
	if err := os.WriteFile(filepath.Join(dir, "globbed"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range contexts {
		tpl, err := ParseTemplate(c.tpl)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for shName, shPath := range shells {
			if c.shell != "" && c.shell != shName {
				continue
			}
			for _, v := range hostileValues {
				script, env, err := tpl.Render(shName, constant(v))
				if err != nil {
					t.Errorf("%s/%s: Render: %v", shName, c.name, err)
					continue
				}
				cmd := exec.Command(shPath, "-c", script)
				cmd.Dir = dir
				cmd.Env = append(os.Environ(), env...)
				cmd.Env = append(cmd.Env, "V="+v)
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				if err := cmd.Run(); err != nil {
					t.Errorf("%s/%s value %q: %v\nscript: %s\nstderr: %s", shName, c.name, v, err, script, stderr.String())
					continue
				}
				if got, want := stdout.String(), c.want(v); got != want {
					t.Errorf("%s/%s value %q: printed %q, want %q\nscript: %s", shName, c.name, v, got, want, script)
				}
				if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
					t.Fatalf("%s/%s value %q: the value ran as code (pwned exists)\nscript: %s", shName, c.name, v, script)
				}
			}
		}
	}
}

// The raw form splices the value verbatim: it is shell code.
func TestRenderRawIsVerbatim(t *testing.T) {
	tpl, err := ParseTemplate(`printf '%s|' {{ t.output | raw }}`)
	if err != nil {
		t.Fatal(err)
	}
	v := `'a b' c $((1+2))`
	script, env, err := tpl.Render("sh", constant(v))
	if err != nil {
		t.Fatal(err)
	}
	if want := `printf '%s|' ` + v; script != want || len(env) != 0 {
		t.Fatalf("Render = %q, %q; want %q and no env", script, env, want)
	}
	if runtime.GOOS == "windows" {
		return
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh in PATH")
	}
	out, err := exec.Command(sh, "-c", script).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), "a b|c|3|"; got != want {
		t.Errorf("raw value ran as %q, want the shell's reading %q", got, want)
	}
}
