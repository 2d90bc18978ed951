package pipeline

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
)

// Kinds of template references.
const (
	KindTask = "task" // {{ TASK.output }}: an upstream task's trimmed stdout
	KindVars = "vars" // {{ vars.NAME }}: a pipeline or task variable
	KindEnv  = "env"  // {{ env.NAME }}: an environment variable
)

// FieldOutput is the only field of a task reference.
const FieldOutput = "output"

// RefEnvPrefix starts the names of the environment variables through which
// Render passes reference values to the shell: RUSTYPIPE_REF_0, _1, ...
const RefEnvPrefix = "RUSTYPIPE_REF_"

// Ref is one placeholder of a template.
type Ref struct {
	Kind   string // KindTask, KindVars or KindEnv
	Name   string // the task, variable or environment variable name
	Field  string // for KindTask, the field after the name ("output" is the only valid one); "" otherwise
	Raw    bool   // written with "| raw": spliced into the script verbatim (unsafe)
	Offset int    // byte offset of the opening "{{" in the template
	Text   string // the placeholder as written, braces included
}

// String is the placeholder in canonical form, such as "{{ build.output }}".
func (r Ref) String() string {
	var expr string
	if r.Kind == KindTask {
		expr = r.Name + "." + r.Field
	} else {
		expr = r.Kind + "." + r.Name
	}
	if r.Raw {
		expr += " | raw"
	}
	return "{{ " + expr + " }}"
}

// Template is a parsed task command: literal shell text with placeholders.
// A Template is immutable and safe for concurrent use.
type Template struct {
	src   string
	parts []tplPart
	refs  []Ref
}

// tplPart is literal text (ref < 0) or the placeholder refs[ref].
type tplPart struct {
	text string
	ref  int
}

// TemplateError is a problem with one template: a syntax error from
// ParseTemplate, or a placeholder that Render cannot place safely. Offset,
// Line and Col locate it in the template (Line and Col are 1-based).
type TemplateError struct {
	Offset    int
	Line, Col int
	Ref       string // the placeholder as written, when the problem concerns one
	Msg       string
}

func (e *TemplateError) Error() string {
	if e.Ref != "" {
		return fmt.Sprintf("template %d:%d: %s: %s", e.Line, e.Col, e.Ref, e.Msg)
	}
	return fmt.Sprintf("template %d:%d: %s", e.Line, e.Col, e.Msg)
}

func newTemplateError(src string, offset int, ref, msg string) *TemplateError {
	line := 1 + strings.Count(src[:offset], "\n")
	col := offset - strings.LastIndexByte(src[:offset], '\n')
	return &TemplateError{Offset: offset, Line: line, Col: col, Ref: ref, Msg: msg}
}

// ParseTemplate parses a task command.
//
// A placeholder is "{{", optional spaces, a reference, an optional "| raw"
// filter, optional spaces and "}}", all on one line. References are
// TASK.output, vars.NAME and env.NAME. A "{{" whose next non-space character
// cannot start a name (such as "{{.Name}}" or "{{- x }}", as in docker and
// kubectl format strings) is literal text, and "\{{" is a literal "{{" (the
// backslash is dropped). Anything else after "{{" that is not a valid
// placeholder is an error, as is an unclosed "{{".
func ParseTemplate(s string) (*Template, error) {
	t := &Template{src: s}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.parts = append(t.parts, tplPart{text: lit.String(), ref: -1})
			lit.Reset()
		}
	}
	i := 0
	for {
		j := strings.Index(s[i:], "{{")
		if j < 0 {
			lit.WriteString(s[i:])
			break
		}
		j += i
		if j > 0 && s[j-1] == '\\' {
			lit.WriteString(s[i : j-1])
			lit.WriteString("{{")
			i = j + 2
			continue
		}
		k := j + 2
		for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
			k++
		}
		if k >= len(s) || !isNameStart(s[k]) {
			lit.WriteString(s[i : j+2])
			i = j + 2
			continue
		}
		end := strings.Index(s[j:], "}}")
		if nl := strings.IndexByte(s[j:], '\n'); end < 0 || (nl >= 0 && nl < end) {
			return nil, newTemplateError(s, j, "", `unclosed "{{" (a placeholder ends with "}}" on the same line; write \{{ for a literal "{{")`)
		}
		end += j + 2
		ref, msg := parseRef(s[j+2 : end-2])
		if msg != "" {
			return nil, newTemplateError(s, j, s[j:end], msg)
		}
		ref.Offset, ref.Text = j, s[j:end]
		lit.WriteString(s[i:j])
		flush()
		t.parts = append(t.parts, tplPart{ref: len(t.refs)})
		t.refs = append(t.refs, ref)
		i = end
	}
	flush()
	return t, nil
}

// parseRef parses the inside of a placeholder; msg is non-empty on error.
func parseRef(in string) (ref Ref, msg string) {
	expr, filter, piped := strings.Cut(in, "|")
	expr = strings.TrimSpace(expr)
	if piped {
		filter = strings.TrimSpace(filter)
		if filter != "raw" {
			return ref, fmt.Sprintf(`unknown filter %q (the only filter is "raw")`, filter)
		}
		ref.Raw = true
	}
	for i := 0; i < len(expr); i++ {
		if !isNameChar(expr[i]) {
			return ref, fmt.Sprintf("unexpected %q in placeholder; expected TASK.output, vars.NAME or env.NAME (write \\{{ for a literal \"{{\")", expr[i:i+1])
		}
	}
	kind, rest, ok := strings.Cut(expr, ".")
	switch {
	case !ok:
		return ref, fmt.Sprintf("unknown reference %q: expected TASK.output, vars.NAME or env.NAME", expr)
	case kind == KindVars || kind == KindEnv:
		if rest == "" {
			return ref, fmt.Sprintf("missing name after %q", kind+".")
		}
		if kind == KindEnv && !isEnvName(rest) {
			return ref, fmt.Sprintf("invalid environment variable name %q", rest)
		}
		ref.Kind, ref.Name = kind, rest
	default:
		dot := strings.LastIndexByte(expr, '.')
		ref.Kind, ref.Name, ref.Field = KindTask, expr[:dot], expr[dot+1:]
		if ref.Field == "" {
			return ref, fmt.Sprintf("missing field after %q (expected %q)", expr, expr+FieldOutput)
		}
	}
	return ref, ""
}

func isNameStart(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || isDigit(c) || c == '_'
}

// isNameChar reports whether c may appear in a task name: letters, digits
// and _ - . : /.
func isNameChar(c byte) bool {
	return isNameStart(c) || c == '-' || c == '.' || c == ':' || c == '/'
}

// isEnvName reports whether s is a portable environment variable name.
func isEnvName(s string) bool {
	if s == "" || isDigit(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isNameStart(s[i]) {
			return false
		}
	}
	return true
}

// Refs returns the template's placeholders in order of appearance. The slice
// is shared; callers must not modify it.
func (t *Template) Refs() []Ref { return t.refs }

// String returns the template's source text.
func (t *Template) String() string { return t.src }

// Refs parses the task's command and returns its placeholders.
func (t *Task) Refs() ([]Ref, error) {
	tpl, err := ParseTemplate(t.Run)
	if err != nil {
		return nil, err
	}
	return tpl.Refs(), nil
}

// Render produces the script to run and the extra environment entries
// (KEY=VALUE) that carry the placeholders' values. values returns the value
// of a ref; its error is returned wrapped. shell is the task's shell: "sh",
// "bash", "pwsh", "powershell" or "cmd"; "" means the platform default
// ("powershell" on Windows, "sh" elsewhere), which callers should rather
// resolve themselves.
//
// Each placeholder i without "| raw" becomes the environment variable
// RUSTYPIPE_REF_<i> (i counts all placeholders in order, raw ones included),
// and the placeholder is replaced by an expansion of that variable suited to
// its place in the script, so the value reaches the shell as data and is
// never parsed as code:
//
//   - sh and bash (the script is parsed with mvdan.cc/sh, POSIX or bash
//     dialect): an unquoted word becomes "${RUSTYPIPE_REF_0}" (one word, no
//     splitting or globbing), inside double quotes ${RUSTYPIPE_REF_0}, inside
//     single quotes '"${RUSTYPIPE_REF_0}"' (close, expand, reopen), in the
//     body of a heredoc with an unquoted delimiter ${RUSTYPIPE_REF_0}, in a
//     comment ${RUSTYPIPE_REF_0} (inert). Places where a value would be
//     evaluated as code or as a name are errors that suggest another form:
//     arithmetic ($((...)), ((...)), let, [[ -eq ]], array subscripts,
//     declare -i/-n), inside ${...} or backquotes, names (assignments,
//     functions, for variables, heredoc delimiters), a quoted heredoc, and,
//     as far as they can be recognised, arguments that are shell code again:
//     eval, trap, "sh -c" command strings and heredocs fed to a shell. A
//     command that interprets its argument as code of its own (awk programs,
//     ssh remote commands, python -c) is beyond this analysis: pass such
//     values through the environment (the RUSTYPIPE_REF_i variables) instead.
//     Scripts that do not parse are accepted only when every placeholder
//     provably stands as a plain unquoted word.
//   - pwsh and powershell: $env:RUSTYPIPE_REF_0 as a word of its own,
//     $($env:RUSTYPIPE_REF_0) inside double quotes, here-strings and next to
//     other text. PowerShell never re-parses a variable's value. Placeholders
//     in single-quoted strings are errors (they cannot expand).
//   - cmd: %RUSTYPIPE_REF_0%. cmd.exe expands variables before it parses the
//     line, so a value containing & | < > ^ or " CAN inject commands: cmd
//     cannot be made safe, prefer pwsh for values you do not control.
//
// A raw placeholder ("{{ x | raw }}") is replaced by its value verbatim:
// the value becomes shell code, which is unsafe for any value not fully
// trusted. For placeholders without "| raw" the script depends only on the
// template, the shell and the raw values, never on the other values, which
// are only in env.
func (t *Template) Render(shell string, values func(Ref) (string, error)) (script string, env []string, err error) {
	vals := make([]string, len(t.refs))
	safe := 0
	for i, r := range t.refs {
		v, err := values(r)
		if err != nil {
			return "", nil, fmt.Errorf("%s: %w", r.Text, err)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return "", nil, newTemplateError(t.src, r.Offset, r.Text, "the value contains a NUL byte, which no shell variable can hold")
		}
		vals[i] = v
		if !r.Raw {
			safe++
		}
	}
	if safe == 0 {
		var b strings.Builder
		for _, p := range t.parts {
			if p.ref < 0 {
				b.WriteString(p.text)
			} else {
				b.WriteString(vals[p.ref])
			}
		}
		return b.String(), nil, nil
	}
	if shell == "" {
		shell = defaultShell()
	}
	var repl []string
	switch shell {
	case "sh", "bash":
		repl, err = t.placeSh(shell, vals)
	case "pwsh", "powershell":
		repl, err = t.placePwsh(vals)
	case "cmd":
		repl = make([]string, len(t.refs))
		for i := range repl {
			repl[i] = "%" + refVar(i) + "%"
		}
	default:
		return "", nil, fmt.Errorf("template: unknown shell %q (expected one of %s)", shell, strings.Join(Shells, ", "))
	}
	if err != nil {
		return "", nil, err
	}
	var b strings.Builder
	for _, p := range t.parts {
		switch {
		case p.ref < 0:
			b.WriteString(p.text)
		case t.refs[p.ref].Raw:
			b.WriteString(vals[p.ref])
		default:
			b.WriteString(repl[p.ref])
		}
	}
	env = make([]string, 0, safe)
	for i, r := range t.refs {
		if !r.Raw {
			env = append(env, refVar(i)+"="+vals[i])
		}
	}
	return b.String(), env, nil
}

// Shells are the accepted values of `shell`.
var Shells = []string{"sh", "bash", "pwsh", "powershell", "cmd"}

func defaultShell() string {
	if runtime.GOOS == "windows" {
		return "powershell"
	}
	return "sh"
}

// refVar is the name of the environment variable of placeholder i.
func refVar(i int) string { return RefEnvPrefix + strconv.Itoa(i) }

// layout is the script with each safe placeholder replaced by a marker of
// the caller's choosing and raw placeholders by their values; spans[i] is
// where placeholder i's marker is (unset for raw ones).
type layout struct {
	text  string
	spans []span
}

type span struct{ start, end int }

func (t *Template) layout(vals []string, marker func(i int) string) layout {
	var b strings.Builder
	spans := make([]span, len(t.refs))
	for _, p := range t.parts {
		switch {
		case p.ref < 0:
			b.WriteString(p.text)
		case t.refs[p.ref].Raw:
			b.WriteString(vals[p.ref])
		default:
			start := b.Len()
			b.WriteString(marker(p.ref))
			spans[p.ref] = span{start, b.Len()}
		}
	}
	return layout{text: b.String(), spans: spans}
}

// placeError reports that placeholder i cannot be placed.
func (t *Template) placeError(i int, msg string) *TemplateError {
	r := t.refs[i]
	return newTemplateError(t.src, r.Offset, r.Text, msg)
}
