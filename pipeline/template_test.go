package pipeline

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseTemplate(t *testing.T) {
	tests := []struct {
		in   string
		refs []Ref
		lit  string // the template rendered with every value "V" as raw text, to check literal handling
	}{
		{in: "echo hi", lit: "echo hi"},
		{
			in:   "echo {{count.output}}",
			refs: []Ref{{Kind: KindTask, Name: "count", Field: "output", Offset: 5, Text: "{{count.output}}"}},
			lit:  "echo V",
		},
		{
			in:   `echo "n={{ count.output }}"`,
			refs: []Ref{{Kind: KindTask, Name: "count", Field: "output", Offset: 8, Text: "{{ count.output }}"}},
			lit:  `echo "n=V"`,
		},
		{
			in:   "{{  count.output  |  raw  }}",
			refs: []Ref{{Kind: KindTask, Name: "count", Field: "output", Raw: true, Offset: 0, Text: "{{  count.output  |  raw  }}"}},
			lit:  "V",
		},
		{
			in: "{{ vars.region }}/{{env.HOME}}\t{{ lint:go/x.y.output }}",
			refs: []Ref{
				{Kind: KindVars, Name: "region", Offset: 0, Text: "{{ vars.region }}"},
				{Kind: KindEnv, Name: "HOME", Offset: 18, Text: "{{env.HOME}}"},
				{Kind: KindTask, Name: "lint:go/x.y", Field: "output", Offset: 31, Text: "{{ lint:go/x.y.output }}"},
			},
			lit: "V/V\tV",
		},
		{
			in:   "{{ build.stdout }}", // unknown fields are for validation to reject
			refs: []Ref{{Kind: KindTask, Name: "build", Field: "stdout", Offset: 0, Text: "{{ build.stdout }}"}},
			lit:  "V",
		},
		// Not placeholders: Go templates of docker and kubectl, escapes.
		{in: "docker inspect -f '{{.State.Running}}' c", lit: "docker inspect -f '{{.State.Running}}' c"},
		{in: "kubectl get -o go-template='{{ .metadata.name }}'", lit: "kubectl get -o go-template='{{ .metadata.name }}'"},
		{in: "x {{- .Name -}} {{}} {{ }}", lit: "x {{- .Name -}} {{}} {{ }}"},
		{in: `echo \{{ json .Config }}`, lit: "echo {{ json .Config }}"},
		{in: "a }} b {{", lit: "a }} b {{"},
	}
	for _, tt := range tests {
		tpl, err := ParseTemplate(tt.in)
		if err != nil {
			t.Errorf("ParseTemplate(%q): %v", tt.in, err)
			continue
		}
		if got := tpl.Refs(); !reflect.DeepEqual(got, tt.refs) && (len(got) != 0 || len(tt.refs) != 0) {
			t.Errorf("ParseTemplate(%q).Refs() =\n%+v\nwant\n%+v", tt.in, got, tt.refs)
		}
		if tpl.String() != tt.in {
			t.Errorf("String() = %q, want %q", tpl.String(), tt.in)
		}
		lit, env, err := tpl.Render("sh", func(Ref) (string, error) { return "V", nil })
		if err != nil {
			t.Errorf("Render(%q): %v", tt.in, err)
			continue
		}
		// With safe refs the literal check uses the raw form.
		if len(env) > 0 {
			raw := strings.ReplaceAll(tt.in, "}}", " | raw }}")
			if rt, err := ParseTemplate(raw); err == nil && len(rt.Refs()) == len(tt.refs) {
				lit, _, _ = rt.Render("sh", func(Ref) (string, error) { return "V", nil })
			}
		}
		if lit != tt.lit {
			t.Errorf("literal text of %q = %q, want %q", tt.in, lit, tt.lit)
		}
	}
}

func TestParseTemplateErrors(t *testing.T) {
	tests := []struct {
		in        string
		line, col int
		want      string // substring of the message
	}{
		{in: "echo {{ count.output", line: 1, col: 6, want: `unclosed "{{"`},
		{in: "echo a\n  {{ x.output\n}}", line: 2, col: 3, want: `unclosed "{{"`},
		{in: "{{ count }}", line: 1, col: 1, want: `unknown reference "count": expected TASK.output, vars.NAME or env.NAME`},
		{in: "x {{ count.output | upper }}", line: 1, col: 3, want: `unknown filter "upper"`},
		{in: "{{ a.output | raw | raw }}", line: 1, col: 1, want: `unknown filter "raw | raw"`},
		{in: "{{ env.1X }}", line: 1, col: 1, want: `invalid environment variable name "1X"`},
		{in: "{{ vars. }}", line: 1, col: 1, want: `missing name after "vars."`},
		{in: "{{ a. }}", line: 1, col: 1, want: `missing field after "a."`},
		{in: "{{ json .Config }}", line: 1, col: 1, want: `unexpected " " in placeholder`},
		{in: "{{ a$b.output }}", line: 1, col: 1, want: `unexpected "$"`},
	}
	for _, tt := range tests {
		_, err := ParseTemplate(tt.in)
		var te *TemplateError
		if !errors.As(err, &te) {
			t.Errorf("ParseTemplate(%q) = %v, want a *TemplateError", tt.in, err)
			continue
		}
		if te.Line != tt.line || te.Col != tt.col || !strings.Contains(te.Msg, tt.want) {
			t.Errorf("ParseTemplate(%q) = %d:%d %q, want %d:%d containing %q", tt.in, te.Line, te.Col, te.Msg, tt.line, tt.col, tt.want)
		}
	}
}

// constant returns a values function that answers v for every ref.
func constant(v string) func(Ref) (string, error) {
	return func(Ref) (string, error) { return v, nil }
}

func TestRender(t *testing.T) {
	tests := []struct {
		shell string
		in    string
		want  string // the script
	}{
		// sh and bash: by context.
		{"sh", "echo {{a.output}}", `echo "${RUSTYPIPE_REF_0}"`},
		{"sh", "echo pre{{a.output}}post", `echo pre"${RUSTYPIPE_REF_0}"post`},
		{"sh", `echo "The file length was {{count.output}}"`, `echo "The file length was ${RUSTYPIPE_REF_0}"`},
		{"sh", `echo '{{ a.output }}'`, `echo ''"${RUSTYPIPE_REF_0}"''`},
		{"sh", `echo 'x {{ a.output }} y'`, `echo 'x '"${RUSTYPIPE_REF_0}"' y'`},
		{"bash", `echo $'a\t{{a.output}}\n'`, `echo $'a\t'"${RUSTYPIPE_REF_0}"$'\n'`},
		{"sh", "cat <<EOF\nv={{a.output}}\nEOF\n", "cat <<EOF\nv=${RUSTYPIPE_REF_0}\nEOF\n"},
		{"sh", "cat <<-EOF\n\t{{a.output}}\n\tEOF\n", "cat <<-EOF\n\t${RUSTYPIPE_REF_0}\n\tEOF\n"},
		{"sh", "cat <<EOF\n$(printf %s {{a.output}})\nEOF\n", "cat <<EOF\n$(printf %s \"${RUSTYPIPE_REF_0}\")\nEOF\n"},
		{"sh", "x={{a.output}} && echo \"$x\" # uses {{a.output}}", `x="${RUSTYPIPE_REF_0}" && echo "$x" # uses ${RUSTYPIPE_REF_1}`},
		{"sh", "echo hi > {{vars.out}}", `echo hi > "${RUSTYPIPE_REF_0}"`},
		{"sh", "case {{a.output}} in {{vars.p}}) echo y;; esac", `case "${RUSTYPIPE_REF_0}" in "${RUSTYPIPE_REF_1}") echo y;; esac`},
		{"sh", "for f in {{a.output}}; do echo \"$f\"; done", `for f in "${RUSTYPIPE_REF_0}"; do echo "$f"; done`},
		{"sh", `echo "$(cat {{a.output}})"`, `echo "$(cat "${RUSTYPIPE_REF_0}")"`},
		{"sh", `{{ a.output }} --version`, `"${RUSTYPIPE_REF_0}" --version`},
		{"sh", `sh -c 'echo "$1"' sh {{a.output}}`, `sh -c 'echo "$1"' sh "${RUSTYPIPE_REF_0}"`},
		{"sh", "sh -c 'cat' <<EOF\n{{a.output}}\nEOF\n", "sh -c 'cat' <<EOF\n${RUSTYPIPE_REF_0}\nEOF\n"},
		{"bash", `[[ {{a.output}} == x* ]]`, `[[ "${RUSTYPIPE_REF_0}" == x* ]]`},
		{"bash", `cat <<< {{a.output}}`, `cat <<< "${RUSTYPIPE_REF_0}"`},
		{"sh", "[ {{a.output}} -eq 3 ]", `[ "${RUSTYPIPE_REF_0}" -eq 3 ]`},
		{"sh", "echo \"${HOME}{{a.output}}\"", `echo "${HOME}${RUSTYPIPE_REF_0}"`},
		{"bash", "export X={{a.output}}; read -p {{a.output}} x", `export X="${RUSTYPIPE_REF_0}"; read -p "${RUSTYPIPE_REF_1}" x`},
		{"sh", "printf -- {{a.output}}", `printf -- "${RUSTYPIPE_REF_0}"`},
		{"sh", "docker inspect -f '{{.Name}}' {{a.output}}", `docker inspect -f '{{.Name}}' "${RUSTYPIPE_REF_0}"`},
		// Raw refs splice their value and take no variable; numbering counts them.
		{"sh", "{{a.output | raw}} {{b.output}}", `V "${RUSTYPIPE_REF_1}"`},
		// Unparsable scripts: a placeholder that provably stands as a plain word.
		{"sh", "echo {{a.output}}; if true", `echo "${RUSTYPIPE_REF_0}"; if true`},
		// PowerShell.
		{"pwsh", "Write-Output {{a.output}}", `Write-Output $env:RUSTYPIPE_REF_0`},
		{"pwsh", `Write-Output "n={{a.output}}."`, `Write-Output "n=$($env:RUSTYPIPE_REF_0)."`},
		{"powershell", "Get-Item pre{{a.output}}", `Get-Item pre$($env:RUSTYPIPE_REF_0)`},
		{"pwsh", "$x = @\"\nv={{a.output}}\n\"@\n", "$x = @\"\nv=$($env:RUSTYPIPE_REF_0)\n\"@\n"},
		{"pwsh", "echo 'it''s' {{a.output}} # {{b.output}}", `echo 'it''s' $env:RUSTYPIPE_REF_0 # $env:RUSTYPIPE_REF_1`},
		{"pwsh", "<# '{{a.output}} #> Write-Output \"a\"\"{{b.output}}\" x-iex {{c.output}}", `<# '$env:RUSTYPIPE_REF_0 #> Write-Output "a""$($env:RUSTYPIPE_REF_1)" x-iex $env:RUSTYPIPE_REF_2`},
		// cmd: expanded before parsing (documented as unsafe).
		{"cmd", `echo "{{a.output}}" & echo {{b.output}}`, `echo "%RUSTYPIPE_REF_0%" & echo %RUSTYPIPE_REF_1%`},
		// Only raw refs: no parsing at all, even for invalid scripts.
		{"sh", "if {{ a.output | raw }}", "if V"},
		{"sh", "no refs ((( '", "no refs ((( '"},
	}
	for _, tt := range tests {
		tpl, err := ParseTemplate(tt.in)
		if err != nil {
			t.Errorf("ParseTemplate(%q): %v", tt.in, err)
			continue
		}
		got, env, err := tpl.Render(tt.shell, constant("V"))
		if err != nil {
			t.Errorf("Render(%s, %q): %v", tt.shell, tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Render(%s, %q)\n got %s\nwant %s", tt.shell, tt.in, got, tt.want)
		}
		for _, kv := range env {
			name, value, _ := strings.Cut(kv, "=")
			if !strings.HasPrefix(name, RefEnvPrefix) || value != "V" {
				t.Errorf("Render(%s, %q): env entry %q", tt.shell, tt.in, kv)
			}
			if !strings.Contains(got, name) {
				t.Errorf("Render(%s, %q): env %s is not used by the script", tt.shell, tt.in, name)
			}
		}
	}
}

func TestRenderEnv(t *testing.T) {
	tpl, err := ParseTemplate("echo {{a.output}} {{ vars.x | raw }} {{ env.HOME }}")
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]string{"a": "one two", "x": "RAW", "HOME": "/home/x"}
	script, env, err := tpl.Render("sh", func(r Ref) (string, error) { return vals[r.Name], nil })
	if err != nil {
		t.Fatal(err)
	}
	if want := `echo "${RUSTYPIPE_REF_0}" RAW "${RUSTYPIPE_REF_2}"`; script != want {
		t.Errorf("script = %q, want %q", script, want)
	}
	if want := []string{"RUSTYPIPE_REF_0=one two", "RUSTYPIPE_REF_2=/home/x"}; !reflect.DeepEqual(env, want) {
		t.Errorf("env = %q, want %q", env, want)
	}
}

// The script for safe refs depends only on the template and the shell.
func TestRenderScriptIndependentOfValues(t *testing.T) {
	in := "echo {{a.output}} \"{{a.output}}\" '{{b.output}}'\ncat <<EOF\n{{b.output}}\nEOF\n"
	tpl, err := ParseTemplate(in)
	if err != nil {
		t.Fatal(err)
	}
	var scripts []string
	for _, v := range []string{"", "x", "'; rm -rf / #", "EOF\n$(id)\n", "{{b.output}}"} {
		for _, sh := range []string{"sh", "bash"} {
			s, _, err := tpl.Render(sh, constant(v))
			if err != nil {
				t.Fatalf("Render(%s, value %q): %v", sh, v, err)
			}
			scripts = append(scripts, s)
		}
	}
	for _, s := range scripts[1:] {
		if s != scripts[0] {
			t.Fatalf("script changed with the values:\n%s\n---\n%s", scripts[0], s)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	tests := []struct {
		shell     string
		in        string
		line, col int
		want      string
	}{
		{"sh", "cat <<'EOF'\n{{a.output}}\nEOF\n", 2, 1, "quoted delimiter"},
		{"sh", "cat <<\"EOF\"\n{{a.output}}\nEOF\n", 2, 1, "quoted delimiter"},
		{"sh", "cat <<\\EOF\n{{a.output}}\nEOF\n", 2, 1, "quoted delimiter"},
		{"sh", "cat <<{{a.output}}\nx\n", 1, 7, "does not parse"}, // sentinels never close a heredoc
		{"sh", "echo $(( {{a.output}} + 1 ))", 1, 10, "arithmetic"},
		{"bash", "(( {{a.output}} > 1 ))", 1, 4, "arithmetic"},
		{"bash", "let x={{a.output}}", 1, 7, "arithmetic"},
		{"bash", "for ((i={{a.output}}; i<3; i++)); do :; done", 1, 9, "arithmetic"},
		{"bash", "a[{{a.output}}]=1", 1, 3, "array subscript"},
		{"bash", "[[ {{a.output}} -eq 1 ]]", 1, 4, "arithmetic comparison"},
		{"bash", "[[ -v {{a.output}} ]]", 1, 7, "-v"},
		{"bash", "declare -i n={{a.output}}", 1, 14, "declare -i"},
		{"sh", "echo ${x:-{{a.output}}}", 1, 11, "${...}"},
		{"sh", "echo ${{a.output}}", 1, 7, "${...}"},
		{"sh", "echo \"$HOME{{a.output}}\"", 1, 12, "directly follows $HOME, whose name would absorb it; write ${HOME} before it"},
		{"bash", "export {{a.output}}", 1, 8, "name"},
		{"bash", "export \"{{a.output}}\"", 1, 9, "variable name for export"},
		{"bash", "read -r -p {{a.output}} {{b.output}}", 1, 25, "variable name for read"},
		{"sh", "unset {{a.output}}", 1, 7, "variable name for unset"},
		{"bash", "[ -v {{a.output}} ]", 1, 6, "variable name of [ -v"},
		{"bash", "printf -v {{a.output}} %s x", 1, 11, "variable name of printf -v"},
		{"sh", "echo `echo {{a.output}}`", 1, 12, "backquotes"},
		{"sh", "eval echo {{a.output}}", 1, 11, "eval"},
		{"sh", `eval "echo $(printf %s {{a.output}})"`, 1, 24, "eval"},
		{"sh", "trap 'echo {{a.output}}' EXIT", 1, 12, "trap"},
		{"sh", "sh -c 'echo {{a.output}}'", 1, 13, "sh -c"},
		{"sh", "bash -ec \"echo {{a.output}}\"", 1, 16, "bash -c"},
		{"sh", "exec env A=1 /bin/sh -c {{a.output}}", 1, 25, "sh -c"},
		{"sh", "sh <<EOF\necho {{a.output}}\nEOF\n", 2, 6, "runs as shell code"},
		{"sh", "{{a.output}}=1", 1, 1, "name"},
		{"sh", "{{a.output}}() { :; }", 1, 1, "name"},
		{"sh", "for {{a.output}} in a; do :; done", 1, 5, "name"},
		{"sh", "if true; then echo '{{a.output}}", 1, 21, "does not parse as sh"},
		{"bash", "echo $'{{r.output|raw}}{{a.output}}'", 1, 24, "backslash"},
		{"sh", "echo {{r.output|raw}}{{a.output}}", 1, 22, "backslash"},
		{"pwsh", "Write-Output '{{a.output}}'", 1, 15, "single-quoted"},
		{"pwsh", "Write-Output \"`{{a.output}}\"", 1, 16, "backtick"},
		{"pwsh", "Invoke-Expression \"echo {{a.output}}\"", 1, 25, "Invoke-Expression"},
		{"powershell", "$x = 1; IEX {{a.output}}", 1, 13, "Invoke-Expression"},
	}
	for _, tt := range tests {
		tpl, err := ParseTemplate(tt.in)
		if err != nil {
			t.Errorf("ParseTemplate(%q): %v", tt.in, err)
			continue
		}
		_, _, err = tpl.Render(tt.shell, func(r Ref) (string, error) {
			if r.Raw {
				return `\`, nil // a raw value ending in a backslash
			}
			return "V", nil
		})
		var te *TemplateError
		if !errors.As(err, &te) {
			t.Errorf("Render(%s, %q) = %v, want a *TemplateError", tt.shell, tt.in, err)
			continue
		}
		if te.Line != tt.line || te.Col != tt.col || !strings.Contains(te.Msg, tt.want) {
			t.Errorf("Render(%s, %q) = %d:%d %q, want %d:%d containing %q", tt.shell, tt.in, te.Line, te.Col, te.Msg, tt.line, tt.col, tt.want)
		}
	}
}

func TestRenderOtherErrors(t *testing.T) {
	tpl, err := ParseTemplate("echo {{a.output}}")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tpl.Render("zsh", constant("")); err == nil || !strings.Contains(err.Error(), `unknown shell "zsh"`) {
		t.Errorf("unknown shell: %v", err)
	}
	sentinelErr := errors.New("not available")
	_, _, err = tpl.Render("sh", func(Ref) (string, error) { return "", sentinelErr })
	if !errors.Is(err, sentinelErr) || !strings.Contains(err.Error(), "{{a.output}}") {
		t.Errorf("values error: %v", err)
	}
	if _, _, err := tpl.Render("sh", constant("a\x00b")); err == nil || !strings.Contains(err.Error(), "NUL") {
		t.Errorf("NUL value: %v", err)
	}
}

func TestTaskRefs(t *testing.T) {
	refs, err := (&Task{Run: "echo {{ a.output }} {{ vars.v }}"}).Refs()
	if err != nil || len(refs) != 2 || refs[0].Name != "a" || refs[1].Kind != KindVars {
		t.Errorf("Refs() = %+v, %v", refs, err)
	}
	if _, err := (&Task{Run: "echo {{ a.output"}).Refs(); err == nil {
		t.Error("Refs() of an unclosed placeholder: no error")
	}
	if got := (Ref{Kind: KindTask, Name: "a", Field: "output", Raw: true}).String(); got != "{{ a.output | raw }}" {
		t.Errorf("Ref.String() = %q", got)
	}
	if got := (Ref{Kind: KindEnv, Name: "HOME"}).String(); got != "{{ env.HOME }}" {
		t.Errorf("Ref.String() = %q", got)
	}
}
