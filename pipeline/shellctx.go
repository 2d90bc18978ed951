package pipeline

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// How a safe placeholder is written in each shell context (sh and bash).
const (
	shUnquoted = `"${%s}"`    // a word, or part of one, outside quotes
	shDouble   = `${%s}`      // inside "..." or an unquoted heredoc body
	shSingle   = `'"${%s}"'`  // inside '...': close, expand quoted, reopen
	shDollarSQ = `'"${%s}"$'` // inside $'...': reopen as $'...'
	shComment  = `${%s}`      // in a comment: inert
	sentinel   = "__rustypipe_ref_"
	unsafeHint = "use the value as a plain argument or in double quotes"
)

// shells that run a heredoc or a -c argument as code.
var codeShells = map[string]bool{"sh": true, "bash": true, "dash": true, "zsh": true, "ksh": true, "mksh": true, "ash": true, "busybox": true}

// placeSh chooses, for every safe placeholder, the expansion that fits its
// place in the script. The script is laid out with a sentinel word in place
// of each safe placeholder (raw values spliced), parsed, and each sentinel's
// innermost enclosing node decides the form.
func (t *Template) placeSh(shell string, vals []string) ([]string, error) {
	lay := t.layout(vals, func(i int) string { return sentinel + strconv.Itoa(i) + "_" })
	// sh scripts are analysed as bash when they parse as bash: /bin/sh is
	// bash on some systems, and the bash tree shows [[ ]], (( )), let and
	// declare, which evaluate values as code, where the POSIX tree sees
	// plain commands.
	file, err := parseShell(lay.text, syntax.LangBash)
	if err != nil && shell == "sh" {
		file, err = parseShell(lay.text, syntax.LangPOSIX)
	}
	if err != nil {
		return t.placeUnparsed(shell, lay, err)
	}
	repl := make([]string, len(t.refs))
	var firstErr error
	fail := func(i int, msg string) {
		if firstErr == nil {
			firstErr = t.placeError(i, msg)
		}
		repl[i] = "-" // found, but unusable
	}
	var stack []syntax.Node
	syntax.Walk(file, func(n syntax.Node) bool {
		if n == nil {
			stack = stack[:len(stack)-1]
			return true
		}
		var lo, hi int
		switch n := n.(type) {
		case *syntax.Lit:
			lo, hi = int(n.Pos().Offset()), int(n.End().Offset())
		case *syntax.SglQuoted:
			lo, hi = int(n.Left.Offset())+1, int(n.Right.Offset())
			if n.Dollar {
				lo++
			}
		case *syntax.Comment:
			lo, hi = int(n.Hash.Offset())+1, int(n.Hash.Offset())+1+len(n.Text)
		}
		for i, sp := range lay.spans {
			if t.refs[i].Raw || repl[i] != "" || sp.start < lo || sp.end > hi || hi == 0 {
				continue
			}
			form, msg := classifySh(n, stack, lay.text, sp.start)
			if msg != "" {
				fail(i, msg)
				continue
			}
			repl[i] = fmt.Sprintf(form, refVar(i))
		}
		stack = append(stack, n)
		return true
	})
	if firstErr != nil {
		return nil, firstErr
	}
	for i, r := range repl {
		if r == "" && !t.refs[i].Raw {
			return nil, t.placeError(i, "cannot tell where this placeholder stands in the "+shell+" script; "+unsafeHint)
		}
	}
	return repl, nil
}

func parseShell(text string, lang syntax.LangVariant) (*syntax.File, error) {
	return syntax.NewParser(syntax.KeepComments(true), syntax.Variant(lang)).Parse(strings.NewReader(text), "")
}

// classifySh returns the format for a sentinel found in node n (a Lit,
// SglQuoted or Comment) whose ancestors are stack (root first), or a
// message saying why it cannot be placed there.
func classifySh(n syntax.Node, stack []syntax.Node, text string, at int) (form, msg string) {
	var parent syntax.Node
	if len(stack) > 0 {
		parent = stack[len(stack)-1]
	}
	// An odd number of backslashes before the sentinel (only possible
	// through a raw value, since \{{ is a literal "{{") would escape the
	// first character of the expansion, except in '...' and comments.
	bs := 0
	for k := at - 1; k >= 0 && text[k] == '\\'; k-- {
		bs++
	}
	escaped := bs%2 == 1
	const escapedMsg = "follows a backslash, which would escape the expansion; " + unsafeHint
	switch n := n.(type) {
	case *syntax.Comment:
		return shComment, ""
	case *syntax.SglQuoted:
		if msg := checkAncestors(stack, n); msg != "" {
			return "", msg
		}
		if n.Dollar {
			if escaped {
				return "", escapedMsg
			}
			return shDollarSQ, ""
		}
		return shSingle, ""
	}
	if escaped {
		return "", escapedMsg
	}
	if pe, ok := parent.(*syntax.ParamExp); ok && pe.Param == n {
		if lo := int(pe.Param.Pos().Offset()); lo < at {
			return "", fmt.Sprintf("directly follows $%s, whose name would absorb it; write ${%s} before it", text[lo:at], text[lo:at])
		}
	}
	if msg := checkAncestors(stack, n); msg != "" {
		return "", msg
	}
	switch p := parent.(type) {
	case *syntax.DblQuoted:
		return shDouble, ""
	case *syntax.Word:
		if len(stack) >= 2 {
			if r, ok := stack[len(stack)-2].(*syntax.Redirect); ok && r.Hdoc == p {
				return shDouble, "" // checkAncestors saw that the delimiter is unquoted
			}
		}
		return shUnquoted, ""
	}
	return "", "cannot be used as a name (of a variable, function or file descriptor); " + unsafeHint
}

// heredocQuoted reports whether a heredoc delimiter is quoted in any way,
// which turns off expansion in the body.
func heredocQuoted(w *syntax.Word) bool {
	for _, p := range w.Parts {
		lit, ok := p.(*syntax.Lit)
		if !ok || strings.Contains(lit.Value, `\`) {
			return true
		}
	}
	return false
}

// checkAncestors rejects places where the shell would evaluate an expanded
// value as code or as a variable name: arithmetic, parameter expansion
// operators, backquotes, declare -i/-n, and the code arguments of eval,
// trap, let and "sh -c", and heredocs fed to a shell.
func checkAncestors(stack []syntax.Node, leaf syntax.Node) string {
	child := func(i int) syntax.Node {
		if i+1 < len(stack) {
			return stack[i+1]
		}
		return leaf
	}
	for i, n := range stack {
		switch n := n.(type) {
		case *syntax.ArithmExp, *syntax.ArithmCmd, *syntax.BinaryArithm, *syntax.UnaryArithm,
			*syntax.ParenArithm, *syntax.FlagsArithm, *syntax.LetClause, *syntax.CStyleLoop:
			return "is in an arithmetic context, where bash evaluates the value as code; assign it to a variable and check it is a number first"
		case *syntax.ParamExp:
			return "cannot stand inside ${...}; assign it to a variable first (x=\"{{ ... }}\")"
		case *syntax.CmdSubst:
			if n.Backquotes {
				return "cannot stand inside backquotes; use $(...) instead"
			}
		case *syntax.BinaryTest:
			switch n.Op {
			case syntax.TsEql, syntax.TsNeq, syntax.TsLeq, syntax.TsGeq, syntax.TsLss, syntax.TsGtr:
				return "is an operand of an arithmetic comparison in [[ ]], which bash evaluates as code; use [ ] (test) instead"
			}
		case *syntax.UnaryTest:
			if n.Op == syntax.TsVarSet || n.Op == syntax.TsRefVar {
				return "cannot be a variable name for [[ -v ]]"
			}
		case *syntax.Assign:
			if n.Index != nil && child(i) == syntax.Node(n.Index) {
				return "cannot be an array subscript, which bash evaluates as code"
			}
		case *syntax.ArrayElem:
			if n.Index != nil && child(i) == syntax.Node(n.Index) {
				return "cannot be an array subscript, which bash evaluates as code"
			}
		case *syntax.DeclClause:
			if a, ok := child(i).(*syntax.Assign); ok && a.Naked && a.Name == nil {
				return fmt.Sprintf("cannot be a variable name for %s (bash evaluates subscripts in names as code)", n.Variant.Value)
			}
			for _, a := range n.Args {
				if a.Naked && a.Name == nil && a.Value != nil {
					if f := a.Value.Lit(); strings.HasPrefix(f, "-") && strings.ContainsAny(f, "in") {
						return fmt.Sprintf("cannot be given to %s %s, which evaluates values as code or names", n.Variant.Value, f)
					}
				}
			}
		case *syntax.Redirect:
			if n.Op == syntax.Hdoc || n.Op == syntax.DashHdoc {
				switch child(i) {
				case syntax.Node(n.Word):
					return "cannot be a heredoc delimiter"
				case syntax.Node(n.Hdoc):
					if heredocQuoted(n.Word) {
						return "a heredoc with a quoted delimiter does not expand variables; unquote the delimiter (<<EOF) and escape any other $, ` and \\ in the body"
					}
				}
			}
		case *syntax.CallExpr:
			if msg := checkCall(n, child(i)); msg != "" {
				return msg
			}
		case *syntax.Stmt:
			// A heredoc body is the input of the statement's command.
			if r, ok := child(i).(*syntax.Redirect); ok && r.Hdoc != nil && isHdocOf(r, leaf, stack[i+1:]) {
				if call, ok := n.Cmd.(*syntax.CallExpr); ok && commandStart(call.Args) >= 0 {
					start := commandStart(call.Args)
					name := path.Base(call.Args[start].Lit())
					if codeShells[name] && !hasFlag(call.Args[start+1:], 'c') {
						return fmt.Sprintf("is in a heredoc that %s runs as shell code; pass the value as an argument instead", name)
					}
				}
			}
		}
	}
	return ""
}

// isHdocOf reports whether the path below redirect r goes through its body.
func isHdocOf(r *syntax.Redirect, leaf syntax.Node, below []syntax.Node) bool {
	next := leaf
	if len(below) > 1 {
		next = below[1]
	}
	return next == syntax.Node(r.Hdoc)
}

// checkCall rejects a placeholder in argument w of call when the command
// runs that argument as shell code.
func checkCall(call *syntax.CallExpr, w syntax.Node) string {
	start := commandStart(call.Args)
	argIdx := -1
	for k, a := range call.Args {
		if syntax.Node(a) == w {
			argIdx = k
		}
	}
	if start < 0 || argIdx <= start {
		return ""
	}
	name := path.Base(call.Args[start].Lit())
	switch {
	case name == "eval":
		return "is an argument of eval, which runs it as shell code; pass it to the command directly"
	case name == "trap":
		return "is an argument of trap, which runs it as shell code; call a function that reads the value instead"
	case name == "let":
		return "is an argument of let, which evaluates it as code"
	case name == "test" || name == "[" || name == "printf":
		// test -v NAME, [ -R NAME ], printf -v NAME: bash evaluates
		// subscripts in variable names as code.
		if prev := call.Args[argIdx-1].Lit(); prev == "-v" || (prev == "-R" && name != "printf") {
			return fmt.Sprintf("cannot be the variable name of %s %s (bash evaluates subscripts in names as code)", name, prev)
		}
	case name == "read" || name == "unset" || name == "mapfile" || name == "readarray":
		// Their operands are variable names; for read, the values of
		// -d -i -n -N -p -t -u are not.
		if prev := call.Args[argIdx-1].Lit(); name == "read" && len(prev) == 2 && strings.Contains("dinNptu", prev[1:]) && prev[0] == '-' {
			return ""
		}
		return fmt.Sprintf("cannot be a variable name for %s (bash evaluates subscripts in names as code)", name)
	case name == "[[":
		for _, a := range call.Args[start+1:] {
			switch a.Lit() {
			case "-eq", "-ne", "-lt", "-le", "-gt", "-ge", "-v", "-R":
				return "is an operand of [[ " + a.Lit() + " ]], which bash evaluates as code; use [ ] (test) instead"
			}
		}
	case codeShells[name]:
		// sh [options] -c command_string [name [args...]]: the first operand
		// after the options is code when -c is given.
		sawC := false
		for k := start + 1; k < len(call.Args); k++ {
			a := call.Args[k].Lit()
			if a == "--" {
				continue
			}
			if strings.HasPrefix(a, "-") || strings.HasPrefix(a, "+") {
				if !strings.HasPrefix(a, "--") && strings.ContainsRune(a[1:], 'c') {
					sawC = true
				}
				if a == "-o" || a == "+o" || a == "-O" || a == "+O" {
					k++ // the option name
				}
				continue
			}
			if sawC && k == argIdx {
				return fmt.Sprintf("is in the command string of %s -c, which runs it as shell code; pass it as a later argument instead (%s -c 'echo \"$1\"' %s \"{{ ... }}\")", name, name, name)
			}
			break
		}
	}
	return ""
}

// wrappers run their arguments as a command; commandStart skips them.
var wrappers = map[string]bool{"command": true, "builtin": true, "exec": true, "nohup": true, "env": true, "sudo": true, "doas": true, "nice": true, "time": true, "timeout": true, "xargs": true}

// commandStart returns the index in args of the command that really runs,
// past wrappers such as "exec", "env X=1" or "timeout 5", or -1 when the
// command name is not a literal word.
func commandStart(args []*syntax.Word) int {
	k := 0
	for k < len(args) {
		name := args[k].Lit()
		if name == "" {
			return -1
		}
		if !wrappers[path.Base(name)] {
			return k
		}
		wrapper := path.Base(name)
		k++
		for k < len(args) {
			a := args[k].Lit()
			if strings.HasPrefix(a, "-") || (wrapper == "env" && strings.Contains(a, "=")) {
				k++
				continue
			}
			if wrapper == "timeout" && a != "" && isDigit(a[0]) {
				k++
			}
			break
		}
	}
	return -1
}

// hasFlag reports whether args (before the first operand) include a short
// option cluster containing flag.
func hasFlag(args []*syntax.Word, flag byte) bool {
	for _, a := range args {
		s := a.Lit()
		if !strings.HasPrefix(s, "-") || s == "-" || s == "--" {
			return false
		}
		if !strings.HasPrefix(s, "--") && strings.IndexByte(s[1:], flag) >= 0 {
			return true
		}
	}
	return false
}

// placeUnparsed handles a script the parser rejects. A placeholder is still
// placed, as an unquoted word, when everything before it is plain text that
// cannot open a quote, expansion, heredoc, comment, arithmetic or test
// context, and no earlier word is a command that runs its arguments as code.
// Otherwise the parse error is reported.
func (t *Template) placeUnparsed(shell string, lay layout, perr error) ([]string, error) {
	repl := make([]string, len(t.refs))
	for i, sp := range lay.spans {
		if t.refs[i].Raw {
			continue
		}
		prefix := lay.text[:sp.start]
		next := byte(' ')
		if sp.end < len(lay.text) {
			next = lay.text[sp.end]
		}
		if !plainPrefix(prefix) || !strings.ContainsRune(" \t\n;|&", rune(next)) {
			return nil, t.placeError(i, fmt.Sprintf("the script does not parse as %s (%v), so this placeholder cannot be placed safely; fix the script, or use \"| raw\" (unsafe)", shell, perr))
		}
		repl[i] = fmt.Sprintf(shUnquoted, refVar(i))
	}
	return repl, nil
}

// plainPrefix reports whether s contains only characters that leave the
// shell lexer in its initial state at a word boundary, and no word that
// makes later arguments code.
func plainPrefix(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isNameChar(c) || strings.IndexByte(" \t\n;|&,+@%=", c) >= 0 {
			continue
		}
		return false
	}
	if len(s) > 0 && !strings.ContainsRune(" \t\n;|&", rune(s[len(s)-1])) {
		return false
	}
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(" \t\n;|&", r) }) {
		switch path.Base(w) {
		case "eval", "trap", "let", "declare", "typeset", "local", "readonly", "export", "source", ".", "exec", "xargs", "ssh", "sudo":
			return false
		}
		if codeShells[path.Base(w)] {
			return false
		}
	}
	return true
}
