package pipeline

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// psEvalRE finds commands earlier on a line that run a string as code. It
// is compiled on first use, not at every start.
var psEvalRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?i)(^|[^\w-])(iex|invoke-expression|\[scriptblock\]::create)([^\w-]|$)`)
})

// PowerShell lexical states, as far as placing a variable needs them.
const (
	psCode         = iota
	psSingle       // '...'
	psDouble       // "..."
	psHereSingle   // @'...'@
	psHereDouble   // @"..."@
	psLineComment  // # ...
	psBlockComment // <# ... #>
)

// placePwsh places each safe placeholder for PowerShell. There is no
// PowerShell parser in Go, so a small lexer tracks strings and comments.
// PowerShell never parses the value of a variable as code, so a mistaken
// state can only give a wrong string, never run the value.
func (t *Template) placePwsh(vals []string) ([]string, error) {
	lay := t.layout(vals, func(i int) string { return sentinel + strconv.Itoa(i) + "_" })
	s := lay.text
	states := make([]int, len(s)+1) // state before byte i
	st := psCode
	for i := 0; i < len(s); {
		states[i] = st
		c := s[i]
		adv := 1
		switch st {
		case psCode:
			switch {
			case c == '`':
				adv = 2
			case c == '\'':
				st = psSingle
			case c == '"':
				st = psDouble
			case strings.HasPrefix(s[i:], "@'") && atLineEnd(s, i+2):
				st, adv = psHereSingle, 2
			case strings.HasPrefix(s[i:], "@\"") && atLineEnd(s, i+2):
				st, adv = psHereDouble, 2
			case strings.HasPrefix(s[i:], "<#"):
				st, adv = psBlockComment, 2
			case c == '#' && (i == 0 || strings.IndexByte(" \t\r\n;({}|", s[i-1]) >= 0):
				st = psLineComment
			}
		case psSingle:
			if c == '\'' {
				if i+1 < len(s) && s[i+1] == '\'' {
					adv = 2
				} else {
					st = psCode
				}
			}
		case psDouble:
			switch {
			case c == '`':
				adv = 2
			case c == '"' && i+1 < len(s) && s[i+1] == '"':
				adv = 2
			case c == '"':
				st = psCode
			}
		case psHereSingle, psHereDouble:
			end := "\n'@"
			if st == psHereDouble {
				end = "\n\"@"
			}
			if strings.HasPrefix(s[i:], end) {
				st, adv = psCode, len(end)
			}
		case psLineComment:
			if c == '\n' {
				st = psCode
			}
		case psBlockComment:
			if strings.HasPrefix(s[i:], "#>") {
				st, adv = psCode, 2
			}
		}
		for k := 1; k < adv && i+k <= len(s); k++ {
			if i+k < len(states) {
				states[i+k] = states[i]
			}
		}
		i += adv
	}
	repl := make([]string, len(t.refs))
	for i, sp := range lay.spans {
		if t.refs[i].Raw {
			continue
		}
		v := refVar(i)
		if sp.start > 0 && s[sp.start-1] == '`' {
			return nil, t.placeError(i, "follows a backtick, which would escape the expansion")
		}
		lineStart := strings.LastIndexByte(s[:sp.start], '\n') + 1
		if psEvalRE().MatchString(s[lineStart:sp.start]) {
			return nil, t.placeError(i, "is on a line that runs Invoke-Expression, which runs the value as code; pass it to the command directly")
		}
		switch states[sp.start] {
		case psSingle, psHereSingle:
			return nil, t.placeError(i, "PowerShell does not expand variables in single-quoted strings; use double quotes")
		case psDouble, psHereDouble:
			repl[i] = "$($env:" + v + ")"
		case psLineComment, psBlockComment:
			repl[i] = "$env:" + v
		default:
			before, after := byte(' '), byte(' ')
			if sp.start > 0 {
				before = s[sp.start-1]
			}
			if sp.end < len(s) {
				after = s[sp.end]
			}
			if strings.IndexByte(" \t\r\n;(,=|", before) >= 0 && strings.IndexByte(" \t\r\n;),|", after) >= 0 {
				repl[i] = "$env:" + v
			} else {
				repl[i] = "$($env:" + v + ")"
			}
		}
	}
	return repl, nil
}

// atLineEnd reports whether only spaces follow position i up to the end of
// its line (here-string openers must end their line).
func atLineEnd(s string, i int) bool {
	for ; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\r':
		case '\n':
			return true
		default:
			return false
		}
	}
	return false
}
