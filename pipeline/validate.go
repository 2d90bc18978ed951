package pipeline

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// validate checks what spans tasks: names, dependencies, backends and
// template references. It also indexes p. Cycles are left to the dag
// package; the closure walks here keep visited sets, so they end on cyclic
// input too.
func (d *decoder) validate(p *Pipeline) {
	p.byName = make(map[string]*Task, len(d.tasks))
	p.keyPos = make(map[*Task]map[string]Pos, len(d.tasks))
	first := make(map[string]*taskInfo, len(d.tasks))
	var names []string
	for _, ti := range d.tasks {
		t := ti.t
		kp := make(map[string]Pos, len(ti.keys))
		for k, n := range ti.keys {
			kp[k] = d.pos(n)
		}
		p.keyPos[t] = kp
		nameNode := ti.vals["name"]
		switch {
		case nameNode == nil:
			d.errorAt(ti.node, "", "name", "tasks[%d]: missing \"name\"", ti.index)
			continue
		case t.Name == "":
			d.errorAt(nameNode, "", "name", "tasks[%d]: empty \"name\"", ti.index)
			continue
		}
		if why := taskNameProblem(t.Name); why != "" {
			d.errorAt(nameNode, "", "name", "invalid task name %q: %s", t.Name, why)
		}
		if f, dup := first[t.Name]; dup {
			d.errorAt(nameNode, t.Name, "name", "duplicate task name %q (first defined at line %d)", t.Name, f.t.Pos.Line)
			continue
		}
		first[t.Name] = ti
		p.byName[t.Name] = t
		names = append(names, t.Name)
	}
	backendNames := append(slices.Sorted(maps.Keys(p.Backends)), "local")
	for _, ti := range d.tasks {
		t, label := ti.t, ti.t.Name
		runNode := ti.vals["run"]
		switch {
		case runNode == nil:
			d.errorAt(ti.node, label, "run", "missing \"run\"")
		case strings.TrimSpace(t.Run) == "":
			d.errorAt(runNode, label, "run", "empty \"run\"")
		}
		seen := map[string]bool{}
		for k, dep := range t.DependsOn {
			n := ti.deps[k]
			switch {
			case dep == t.Name:
				d.errorAt(n, label, "depends_on", "depends_on: task depends on itself")
			case first[dep] == nil:
				others := slices.DeleteFunc(slices.Clone(names), func(s string) bool { return s == t.Name })
				d.errorAt(n, label, "depends_on", "depends_on: unknown task %q%s", dep, suggest(dep, others))
			case seen[dep]:
				d.errorAt(n, label, "depends_on", "depends_on: %q is listed twice", dep)
			}
			seen[dep] = true
		}
		if b := t.Backend; b != "" && b != "local" && p.Backends[b] == nil {
			d.errorAt(ti.vals["backend"], label, "backend", "unknown backend %q%s; define it under \"backends\" or use \"local\"", b, suggest(b, backendNames))
		}
		if runNode != nil && strings.TrimSpace(t.Run) != "" {
			d.checkTemplate(p, ti, first, names)
		}
	}
}

// checkTemplate parses a task's command and checks each reference: the task
// exists, is upstream of this one and "output" is the field; the variable
// is defined. A dry render with empty values finds placeholders that cannot
// be placed safely in the task's shell.
func (d *decoder) checkTemplate(p *Pipeline, ti *taskInfo, first map[string]*taskInfo, names []string) {
	t, label, runNode := ti.t, ti.t.Name, ti.vals["run"]
	tpl, err := ParseTemplate(t.Run)
	if err != nil {
		d.templateError(runNode, label, err)
		return
	}
	var upstream map[string]bool
	for _, r := range tpl.Refs() {
		at := d.refPos(runNode, r.Offset, r.Text)
		switch r.Kind {
		case KindTask:
			if upstream == nil {
				upstream = closure(t, first)
			}
			switch {
			case first[r.Name] == nil:
				d.errorPos(at, label, "run", "%s: unknown task %q%s", r.Text, r.Name, suggest(r.Name, names))
			case r.Field != FieldOutput:
				d.errorPos(at, label, "run", "%s: unknown field %q%s; a task's only field is \"output\"", r.Text, r.Field, suggest(r.Field, []string{FieldOutput}))
			case r.Name == t.Name:
				d.errorPos(at, label, "run", "%s: a task cannot use its own output", r.Text)
			case !upstream[r.Name]:
				d.errorPos(at, label, "run", "%s: task %q is not upstream of %q; add it to depends_on", r.Text, r.Name, t.Name)
			}
		case KindVars:
			_, inTask := t.Vars[r.Name]
			_, inPipeline := p.Vars[r.Name]
			if !inTask && !inPipeline {
				known := slices.Concat(slices.Collect(maps.Keys(t.Vars)), slices.Collect(maps.Keys(p.Vars)))
				d.errorPos(at, label, "run", "%s: unknown var %q%s", r.Text, r.Name, suggest(r.Name, known))
			}
		}
	}
	shell := t.Shell
	if shell == "" {
		shell = p.Shell
	}
	if _, _, err := tpl.Render(shell, func(Ref) (string, error) { return "", nil }); err != nil {
		d.templateError(runNode, label, err)
	}
}

// closure is the set of tasks upstream of t, through depends_on.
func closure(t *Task, first map[string]*taskInfo) map[string]bool {
	seen := map[string]bool{}
	stack := slices.Clone(t.DependsOn)
	for len(stack) > 0 {
		name := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		ti := first[name]
		if seen[name] || ti == nil {
			continue
		}
		seen[name] = true
		stack = append(stack, ti.t.DependsOn...)
	}
	return seen
}

func (d *decoder) templateError(runNode *yaml.Node, task string, err error) {
	var te *TemplateError
	if !errors.As(err, &te) {
		d.errorAt(runNode, task, "run", "%v", err)
		return
	}
	want, msg := te.Ref, te.Msg
	if want == "" {
		want = "{{"
	} else {
		msg = te.Ref + ": " + msg
	}
	d.errorPos(d.refPos(runNode, te.Offset, want), task, "run", "%s", msg)
}

// line returns source line k (1-based) without its line ending.
func (d *decoder) line(k int) string {
	if k < 1 || k > len(d.lines) {
		return ""
	}
	return strings.TrimSuffix(d.lines[k-1], "\r")
}

// refPos maps a byte offset in the value of scalar vn to a file position;
// want is the text expected there (the placeholder). Literal block scalars
// (|) and single-line scalars map directly. Otherwise (folded or multi-line
// scalars, escapes in quoted ones) the k-th occurrence of want in the value
// is matched with the k-th in the scalar's source lines, provided both hold
// the same number. When neither works, the position of the value is used.
func (d *decoder) refPos(vn *yaml.Node, off int, want string) Pos {
	fallback := d.pos(vn)
	n := resolve(vn)
	if n.Kind != yaml.ScalarNode || off > len(n.Value) {
		return fallback
	}
	if p, ok := d.directPos(n, off, want); ok {
		return p
	}
	// Search the scalar's source: from its start, through the following
	// lines that are blank or indented deeper than the line it starts on
	// (continuation lines of a scalar in block context).
	k := strings.Count(n.Value[:off], want)
	total := strings.Count(n.Value, want)
	first := d.line(n.Line)
	indent := len(first) - len(strings.TrimLeft(first, " "))
	var found []Pos
	for ln := n.Line; ln <= len(d.lines); ln++ {
		src := d.line(ln)
		start := 0
		if ln == n.Line {
			start = byteOfColumn(src, n.Column)
		} else if trimmed := strings.TrimLeft(src, " "); trimmed != "" && len(src)-len(trimmed) <= indent {
			break
		}
		for i := start; ; {
			j := strings.Index(src[i:], want)
			if j < 0 {
				break
			}
			found = append(found, Pos{File: d.file, Line: ln, Col: utf8.RuneCountInString(src[:i+j]) + 1})
			i += j + len(want)
		}
	}
	if len(found) != total || k >= len(found) {
		return fallback
	}
	return found[k]
}

// directPos computes the position of value offset off in literal block and
// single-line scalars, checking that the source shows want there.
func (d *decoder) directPos(n *yaml.Node, off int, want string) (Pos, bool) {
	val := n.Value
	lineIdx := strings.Count(val[:off], "\n")
	lineStart := strings.LastIndexByte(val[:off], '\n') + 1
	col := off - lineStart
	var lineNo, at int
	var src string
	switch {
	case n.Style&yaml.LiteralStyle != 0:
		content, _, _ := strings.Cut(val[lineStart:], "\n")
		lineNo = n.Line + 1 + lineIdx
		src = d.line(lineNo)
		if !strings.HasSuffix(src, content) {
			return Pos{}, false
		}
		at = len(src) - len(content) + col
	case n.Style&yaml.FoldedStyle != 0 || lineIdx > 0:
		return Pos{}, false
	default:
		lineNo = n.Line
		src = d.line(lineNo)
		at = byteOfColumn(src, n.Column) + col
		if n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0 {
			at++
		}
	}
	if at < 0 || at > len(src) || !strings.HasPrefix(src[at:], want) {
		return Pos{}, false
	}
	return Pos{File: d.file, Line: lineNo, Col: utf8.RuneCountInString(src[:at]) + 1}, true
}

// byteOfColumn converts a 1-based column in characters to a byte offset.
func byteOfColumn(s string, col int) int {
	i := 0
	for k := 1; k < col && i < len(s); k++ {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return i
}
