package pipeline

import (
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestLoadOriginalFormat(t *testing.T) {
	p, err := Load("testdata/original.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p.File != "testdata/original.yaml" || p.Name != "sample" || p.Concurrency != 4 || !p.StopOnFail {
		t.Errorf("pipeline = %q %q %d %v", p.File, p.Name, p.Concurrency, p.StopOnFail)
	}
	pos := func(line int) Pos { return Pos{File: "testdata/original.yaml", Line: line, Col: 5} }
	want := []*Task{
		{Name: "fetch", Run: "curl -sSfo data.txt https://example.com/data.txt", Retries: 2, Timeout: 30 * time.Second,
			Retry: &Retry{Attempts: 3, Backoff: 2}, Pos: pos(6)},
		{Name: "count", Run: "wc -c < data.txt", DependsOn: []string{"fetch"}, CacheKey: "v1", Pos: pos(10)},
		{Name: "lint", Run: "./lint.sh", Backend: "local", ContinueOnFail: true, Pos: pos(14)},
		{Name: "report", Run: `echo "The file length was {{count.output}}"`, DependsOn: []string{"count", "lint"},
			Timeout: 5 * time.Second, Pos: pos(18)},
	}
	if len(p.Tasks) != len(want) {
		t.Fatalf("%d tasks, want %d", len(p.Tasks), len(want))
	}
	for i, w := range want {
		if got := p.Tasks[i]; !reflect.DeepEqual(got, w) {
			t.Errorf("task %d:\n got %+v\nwant %+v", i, got, w)
		}
		if p.Task(w.Name) != p.Tasks[i] {
			t.Errorf("Task(%q) does not find it", w.Name)
		}
	}
	if p.Task("nope") != nil {
		t.Error("Task(nope) != nil")
	}
	if got, ok := p.KeyPos("report", "depends_on"); !ok || got != (Pos{File: "testdata/original.yaml", Line: 20, Col: 5}) {
		t.Errorf("KeyPos(report, depends_on) = %v, %v", got, ok)
	}
	if got, ok := p.KeyPos("report", "retries"); ok || got != pos(18) {
		t.Errorf("KeyPos of an absent key = %v, %v; want the task's position", got, ok)
	}
}

func TestLoadFullFormat(t *testing.T) {
	p, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p.Description != "every key of the format" || p.Shell != "bash" || p.Dir != "src" || p.StopOnFail {
		t.Errorf("pipeline fields: %+v", p)
	}
	if want := map[string]string{"GOFLAGS": "-mod=mod", "DEBUG": "true", "LEVEL": "3", "RATIO": "1.50"}; !reflect.DeepEqual(p.Env, want) {
		t.Errorf("Env = %v, want %v", p.Env, want)
	}
	if want := map[string]string{"region": "eu-west-1", "replicas": "3"}; !reflect.DeepEqual(p.Vars, want) {
		t.Errorf("Vars = %v, want %v", p.Vars, want)
	}
	wantBackends := map[string]*BackendConfig{
		"builder": {Name: "builder", Type: "docker", Pos: Pos{File: "testdata/full.yaml", Line: 16, Col: 3}, Options: map[string]any{
			"image": "golang:1.26", "mounts": []any{"cache", "src"}, "limits": map[string]any{"cpu": 2, "memory": "1GiB"}}},
		"far": {Name: "far", Type: "ssh", Pos: Pos{File: "testdata/full.yaml", Line: 21, Col: 3}, Options: map[string]any{
			"host": "build.example.com", "port": 2222}},
	}
	if !reflect.DeepEqual(p.Backends, wantBackends) {
		t.Errorf("Backends =\n%#v\nwant\n%#v", p.Backends, wantBackends)
	}
	gen, build, ship, notes := p.Task("gen"), p.Task("build"), p.Task("ship"), p.Task("notes")
	if gen.Description != "generate code" || gen.Shell != "sh" || !reflect.DeepEqual(gen.Inputs, []string{"**/*.go"}) ||
		!reflect.DeepEqual(gen.Outputs, []string{"gen/", "zz_*.go"}) || gen.Env["LEVEL"] != "4" || gen.Retry != nil {
		t.Errorf("gen = %+v", gen)
	}
	// build merges x-defaults.
	wantRetry := &Retry{Attempts: 3, Delay: 1500 * time.Millisecond, Backoff: 1.5, MaxDelay: time.Minute, OnExitCodes: []int{75, 137}}
	if !reflect.DeepEqual(build.Retry, wantRetry) || build.Retries != 2 || build.Timeout != 90*time.Second {
		t.Errorf("build retry = %+v (retries %d), timeout %v", build.Retry, build.Retries, build.Timeout)
	}
	if build.Backend != "builder" || build.Image != "golang:1.26-alpine" || build.Dir != "." || build.Vars["replicas"] != "5" ||
		!reflect.DeepEqual(build.DependsOn, []string{"gen"}) || !reflect.DeepEqual(build.Outputs, []string{"bin/app"}) ||
		!strings.HasPrefix(build.Run, "echo \"building for {{ vars.region }}") {
		t.Errorf("build = %+v", build)
	}
	if ship.Timeout != 2*time.Hour || !reflect.DeepEqual(ship.Retry, &Retry{Attempts: 2, Backoff: 2, OnExitCodes: []int{255}}) {
		t.Errorf("ship = %+v retry %+v", ship, ship.Retry)
	}
	if notes.Timeout != 24*time.Hour || notes.Shell != "pwsh" {
		t.Errorf("notes = %+v", notes)
	}
}

// wantErrors checks that err is an Errors whose lines are exactly want.
func wantErrors(t *testing.T, name string, err error, want []string) {
	t.Helper()
	var es Errors
	if !errors.As(err, &es) {
		t.Errorf("%s: error = %v, want Errors", name, err)
		return
	}
	got := strings.Split(es.Error(), "\n")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: errors:\n%s\nwant:\n%s", name, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "unknown key and wrong type",
			yaml: `name: demo
tasks:
  - name: gen
    run: go generate
  - name: build
    run: make
    depend_on: [gen]
    retries: three
    timout: 5
`,
			want: []string{
				`rustypipe.yaml:7:5: task "build": unknown key "depend_on" (did you mean "depends_on"?)`,
				`rustypipe.yaml:8:14: task "build": key "retries": expected an integer, got "three"`,
				`rustypipe.yaml:9:5: task "build": unknown key "timout" (did you mean "timeout"?)`,
			},
		},
		{
			name: "pipeline-level keys",
			yaml: `nmae: x
concurrency: -1
stop_on_fail: "yes"
shell: zsh
dir: /abs
env: {A: ~, "B=C": 1, D: [1]}
vars: {"my var": 1}
tasks: [{name: a, run: x}]
`,
			want: []string{
				`rustypipe.yaml:1:1: unknown key "nmae" (did you mean "name"?)`,
				`rustypipe.yaml:2:14: key "concurrency": must be 0 (not set) or more, got -1`,
				`rustypipe.yaml:3:15: key "stop_on_fail": expected true or false, got "yes"`,
				`rustypipe.yaml:4:8: key "shell": unknown shell "zsh" (did you mean "sh"?); expected one of sh, bash, pwsh, powershell, cmd`,
				`rustypipe.yaml:5:6: key "dir": "/abs" is absolute; paths are relative to the pipeline file's directory`,
				`rustypipe.yaml:6:10: key "env": "A": expected a string, number or boolean, got null (write "" for an empty value)`,
				`rustypipe.yaml:6:13: key "env": invalid name "B=C": contains = or NUL`,
				`rustypipe.yaml:6:26: key "env": "D": expected a string, number or boolean, got a list (write "" for an empty value)`,
				`rustypipe.yaml:7:8: key "vars": invalid name "my var": use letters, digits and _ - . : / so that {{ vars.NAME }} can name it`,
			},
		},
		{
			name: "names",
			yaml: `tasks:
  - name: build
    run: make
  - name: test
    run: go test
  - name: build
    run: make again
  - name: a b
    run: x
  - name: env
    run: x
  - name: -x
    run: x
  - name: a/../b
    run: x
  - run: nameless
  - name: ""
    run: x
`,
			want: []string{
				`rustypipe.yaml:6:11: task "build": duplicate task name "build" (first defined at line 2)`,
				`rustypipe.yaml:8:11: invalid task name "a b": names cannot contain spaces; use letters, digits and _ - . : /`,
				`rustypipe.yaml:10:11: invalid task name "env": "env" is reserved for {{ env.NAME }}`,
				`rustypipe.yaml:12:11: invalid task name "-x": names cannot start with '-' (it would read as a command-line flag)`,
				`rustypipe.yaml:14:11: invalid task name "a/../b": names cannot have empty, '.' or '..' path segments`,
				`rustypipe.yaml:16:5: tasks[7]: missing "name"`,
				`rustypipe.yaml:17:11: tasks[8]: empty "name"`,
			},
		},
		{
			name: "run and dependencies",
			yaml: `tasks:
  - name: build
    depends_on: [biuld, test, build, test]
  - name: test
    run: "  "
    depends_on: tset
  - name: lint
    run:
`,
			want: []string{
				`rustypipe.yaml:2:5: task "build": missing "run"`,
				`rustypipe.yaml:3:18: task "build": depends_on: unknown task "biuld"`,
				`rustypipe.yaml:3:31: task "build": depends_on: task depends on itself`,
				`rustypipe.yaml:3:38: task "build": depends_on: "test" is listed twice`,
				`rustypipe.yaml:5:10: task "test": empty "run"`,
				`rustypipe.yaml:6:17: task "test": depends_on: unknown task "tset"`,
				`rustypipe.yaml:8:9: task "lint": empty "run"`,
			},
		},
		{
			name: "backends",
			yaml: `backends:
  box: {type: dokcer, image: x}
  far: {host: h}
  local: {type: ssh}
  fine: {type: ssh}
tasks:
  - name: a
    run: x
    backend: boxx
  - name: b
    run: x
    backend: fine
  - name: c
    run: x
    backend: local
`,
			want: []string{
				`rustypipe.yaml:2:15: backend "box": unknown type "dokcer" (did you mean "docker"?); expected one of local, docker, ssh, kubernetes, external`,
				`rustypipe.yaml:3:3: backend "far": missing "type" (one of local, docker, ssh, kubernetes, external)`,
				`rustypipe.yaml:4:3: backend name "local" is reserved for the local machine; choose another name`,
				`rustypipe.yaml:9:14: task "a": unknown backend "boxx" (did you mean "box"?); define it under "backends" or use "local"`,
			},
		},
		{
			name: "retry and durations",
			yaml: `tasks:
  - name: a
    run: x
    retries: 2
    retry: {attempts: 3}
  - name: b
    run: x
    retry:
      delay: 5s
      backof: 2
  - name: c
    run: x
    retry: {attempts: 0, backoff: 0.5, max_delay: 1y, on_exit_codes: [0, x]}
    timeout: -3s
  - name: d
    run: x
    timeout: [1]
    retries: -1
`,
			want: []string{
				`rustypipe.yaml:5:5: task "a": both "retries" and "retry" are given; use one (retries: N is retry: {attempts: N+1})`,
				`rustypipe.yaml:8:5: task "b": key "retry": missing "attempts" (the total number of attempts, first included)`,
				`rustypipe.yaml:10:7: task "b": unknown retry key "backof" (did you mean "backoff"?)`,
				`rustypipe.yaml:13:23: task "c": key "attempts": must be at least 1 (the first attempt counts), got 0`,
				`rustypipe.yaml:13:35: task "c": key "backoff": must be at least 1, got 0.5`,
				`rustypipe.yaml:13:51: task "c": key "max_delay": invalid duration "1y": unknown unit "y" (use ns, us, ms, s, m, h, d or w)`,
				`rustypipe.yaml:13:71: task "c": key "on_exit_codes": 0 is not the exit code of a failure (expected 1 or more)`,
				`rustypipe.yaml:13:74: task "c": key "on_exit_codes": expected an exit code or a list of exit codes, got "x"`,
				`rustypipe.yaml:14:14: task "c": key "timeout": invalid duration "-3s": negative`,
				`rustypipe.yaml:17:14: task "d": key "timeout": expected a duration (seconds, or a string such as "90s", "1m30s", "2h", "1d"), got a list`,
				`rustypipe.yaml:18:14: task "d": key "retries": must be 0 or more, got -1`,
			},
		},
		{
			name: "paths and globs",
			yaml: `tasks:
  - name: a
    run: x
    dir: ../elsewhere
    inputs: ["../shared/*.go", "/etc/passwd", "src/[", ""]
    outputs: [out/, ../up, "C:\\x"]
`,
			want: []string{
				`rustypipe.yaml:4:10: task "a": key "dir": "../elsewhere" leaves the pipeline file's directory`,
				`rustypipe.yaml:5:32: task "a": key "inputs": "/etc/passwd" is absolute; paths are relative to the pipeline file's directory`,
				`rustypipe.yaml:5:47: task "a": key "inputs": "src/[" is not a valid glob pattern`,
				`rustypipe.yaml:5:56: task "a": key "inputs": "" is empty`,
				`rustypipe.yaml:6:21: task "a": key "outputs": "../up" leaves the pipeline file's directory`,
				`rustypipe.yaml:6:28: task "a": key "outputs": "C:\\x" is absolute; paths are relative to the pipeline file's directory`,
			},
		},
		{
			name: "template references",
			yaml: `vars:
  region: eu
tasks:
  - name: count
    run: wc -c < data.txt
  - name: side
    run: echo side
  - name: report
    depends_on: [count]
    vars: {fmt: json}
    run: |
      echo "{{ count.output }} {{ vars.region }} {{ vars.fmt }}"
      echo {{ cuont.output }} {{ vars.regoin }} {{ env.HOME }}
      echo {{ side.output }} {{ count.outptu }} {{ report.output }}
      echo $(( {{ count.output }} * 2 ))
  - name: plain
    depends_on: [report]
    run: echo {{ count.output }} {{ nope.output }}
  - name: quoted
    depends_on: [report]
    run: "echo \"{{ count.output }}\" {{ vars.fmt }}"
  - name: folded
    run: >
      echo
      {{ nope.output }}
  - name: broken
    run: echo {{ count.output
`,
			want: []string{
				`rustypipe.yaml:13:12: task "report": {{ cuont.output }}: unknown task "cuont" (did you mean "count"?)`,
				`rustypipe.yaml:13:31: task "report": {{ vars.regoin }}: unknown var "regoin" (did you mean "region"?)`,
				`rustypipe.yaml:14:12: task "report": {{ side.output }}: task "side" is not upstream of "report"; add it to depends_on`,
				`rustypipe.yaml:14:30: task "report": {{ count.outptu }}: unknown field "outptu" (did you mean "output"?); a task's only field is "output"`,
				`rustypipe.yaml:14:49: task "report": {{ report.output }}: a task cannot use its own output`,
				`rustypipe.yaml:15:16: task "report": {{ count.output }}: is in an arithmetic context, where bash evaluates the value as code; assign it to a variable and check it is a number first`,
				`rustypipe.yaml:18:34: task "plain": {{ nope.output }}: unknown task "nope"`,
				`rustypipe.yaml:21:39: task "quoted": {{ vars.fmt }}: unknown var "fmt"`,
				`rustypipe.yaml:25:7: task "folded": {{ nope.output }}: unknown task "nope"`,
				`rustypipe.yaml:27:15: task "broken": unclosed "{{" (a placeholder ends with "}}" on the same line; write \{{ for a literal "{{")`,
			},
		},
		{
			name: "structure",
			yaml: `name: x
tasks:
  - just a string
  - name: ok
    run: x
    name: again
    <<: 3
`,
			want: []string{
				`rustypipe.yaml:3:5: tasks[0]: expected a mapping, got "just a string"`,
				`rustypipe.yaml:6:5: duplicate key "name" (first at line 4)`,
				`rustypipe.yaml:7:9: a merge key (<<) takes a mapping or a list of mappings, got "3"`,
			},
		},
		{name: "not a mapping", yaml: "- a\n- b\n", want: []string{`rustypipe.yaml:1:1: a pipeline file is a mapping with "tasks" (and name, env, vars...), got a list`}},
		{name: "missing tasks", yaml: "name: x\n", want: []string{`rustypipe.yaml:1:1: missing "tasks": a pipeline needs at least one task`}},
		{name: "empty tasks", yaml: "name: x\ntasks: []\n", want: []string{`rustypipe.yaml:2:8: "tasks" is empty: a pipeline needs at least one task`}},
		{name: "null tasks", yaml: "name: x\ntasks:\n", want: []string{`rustypipe.yaml:2:7: "tasks" is empty: a pipeline needs at least one task`}},
		{name: "tasks not a list", yaml: "tasks: {a: 1}\n", want: []string{`rustypipe.yaml:1:8: key "tasks": expected a list of tasks, got a mapping`}},
		{name: "empty file", yaml: "# nothing\n", want: []string{`rustypipe.yaml:1:1: empty pipeline file: expected a mapping with "tasks"`}},
		{name: "syntax error", yaml: "tasks:\n  - name: a\n    run: 'x\n", want: []string{`rustypipe.yaml:3: invalid YAML: found unexpected end of stream`}},
		{name: "tab indentation", yaml: "tasks:\n\t- name: a\n", want: []string{`rustypipe.yaml:2: invalid YAML: found character that cannot start any token`}},
		{name: "two documents", yaml: "tasks: [{name: a, run: x}]\n---\ntasks: []\n", want: []string{`rustypipe.yaml:3:1: more than one YAML document; a pipeline file holds one`}},
		{name: "unknown anchor", yaml: "tasks: *nope\n", want: []string{`rustypipe.yaml: invalid YAML: unknown anchor 'nope' referenced`}},
	}
	for _, tt := range tests {
		p, err := Parse("rustypipe.yaml", []byte(tt.yaml))
		if p != nil {
			t.Errorf("%s: Parse returned a pipeline with errors", tt.name)
		}
		wantErrors(t, tt.name, err, tt.want)
	}
}

// TestParseGolden checks a file with many problems at once against its
// golden list: every problem is reported, in file order.
func TestParseGolden(t *testing.T) {
	_, err := Load("testdata/invalid.yaml")
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("Load = %v, want Errors", err)
	}
	got := es.Error() + "\n"
	golden := "testdata/invalid.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, rerr := os.ReadFile(golden)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if got != string(want) {
		t.Errorf("errors differ from %s (run with -update to accept):\n%s", golden, got)
	}
	// Every entry is a *DecodeError with a position, in order.
	for i, e := range es {
		if e.File != "testdata/invalid.yaml" || e.Line == 0 {
			t.Errorf("entry %d has no position: %+v", i, e)
		}
		if i > 0 && (e.Line < es[i-1].Line || e.Line == es[i-1].Line && e.Col < es[i-1].Col) {
			t.Errorf("entry %d out of order", i)
		}
	}
	var de *DecodeError
	if !errors.As(err, &de) || de != es[0] {
		t.Errorf("errors.As(*DecodeError) = %v, want the first entry", de)
	}
}

func TestParseFieldsOfDecodeError(t *testing.T) {
	_, err := Parse("p.yaml", []byte("tasks:\n  - name: build\n    run: x\n    retries: three\n"))
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("error = %v", err)
	}
	want := DecodeError{File: "p.yaml", Line: 4, Col: 14, Task: "build", Key: "retries", Msg: `key "retries": expected an integer, got "three"`}
	if *de != want {
		t.Errorf("DecodeError = %+v, want %+v", *de, want)
	}
	for _, tt := range []struct {
		e    DecodeError
		want string
	}{
		{DecodeError{File: "f", Line: 3, Col: 4, Task: "t", Msg: "m"}, `f:3:4: task "t": m`},
		{DecodeError{File: "f", Line: 3, Msg: "m"}, `f:3: m`},
		{DecodeError{File: "f", Msg: "m"}, `f: m`},
	} {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestTemplatesAreCheckedInTheirShell(t *testing.T) {
	// A single-quoted placeholder is fine for sh, an error for pwsh.
	yaml := "tasks:\n  - name: a\n    run: echo x\n  - name: b\n    depends_on: [a]\n    shell: %s\n    run: echo '{{ a.output }}'\n"
	if _, err := Parse("p.yaml", []byte(strings.ReplaceAll(yaml, "%s", "sh"))); err != nil {
		t.Errorf("sh: %v", err)
	}
	_, err := Parse("p.yaml", []byte(strings.ReplaceAll(yaml, "%s", "pwsh")))
	wantErrors(t, "pwsh", err, []string{`p.yaml:7:16: task "b": {{ a.output }}: PowerShell does not expand variables in single-quoted strings; use double quotes`})
	// The pipeline's shell applies when the task has none.
	_, err = Parse("p.yaml", []byte("shell: pwsh\ntasks:\n  - name: a\n    run: echo x\n  - name: b\n    depends_on: [a]\n    run: echo '{{ a.output }}'\n"))
	wantErrors(t, "pipeline shell", err, []string{`p.yaml:7:16: task "b": {{ a.output }}: PowerShell does not expand variables in single-quoted strings; use double quotes`})
}

// Cycles are the dag package's to report; validation must still end and
// accept references along the cycle.
func TestParseCycleTerminates(t *testing.T) {
	p, err := Parse("c.yaml", []byte(`tasks:
  - name: a
    depends_on: [c]
    run: echo {{ b.output }}
  - name: b
    depends_on: [a]
    run: echo {{ c.output }}
  - name: c
    depends_on: [b]
    run: echo {{ a.output }}
  - name: d
    depends_on: [d2]
    run: echo
  - name: d2
    depends_on: [a, d]
    run: echo {{ d.output }}
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(p.Tasks) != 5 {
		t.Errorf("%d tasks", len(p.Tasks))
	}
}

func TestMergeKeysAndAliases(t *testing.T) {
	p, err := Parse("m.yaml", []byte(`x-env: &env {A: "1", B: "2"}
x-base: &base
  timeout: 10
  env: *env
  shell: bash
x-more: &more
  shell: sh
  cache_key: more
tasks:
  - name: a
    <<: [*base, *more]
    shell: pwsh
    run: echo
  - <<: *base
    name: b
    run: echo
`))
	if err != nil {
		t.Fatal(err)
	}
	a, b := p.Task("a"), p.Task("b")
	// Explicit keys win over merged ones; earlier merges win over later.
	if a.Shell != "pwsh" || a.CacheKey != "more" || a.Timeout != 10*time.Second || a.Env["B"] != "2" {
		t.Errorf("a = %+v", a)
	}
	if b.Shell != "bash" || b.Timeout != 10*time.Second {
		t.Errorf("b = %+v", b)
	}
}

func TestAliasBombIsRejected(t *testing.T) {
	// Nine levels of nine aliases each: 9^9 (387 million) nodes if expanded.
	var b strings.Builder
	b.WriteString("x-a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n")
	prev := "a"
	for _, c := range "bcdefghi" {
		name := string(c)
		b.WriteString("x-" + name + ": &" + name + " [")
		for k := range 9 {
			if k > 0 {
				b.WriteString(",")
			}
			b.WriteString("*" + prev)
		}
		b.WriteString("]\n")
		prev = name
	}
	b.WriteString("tasks:\n  - name: a\n    run: echo\n    inputs: *i\n")
	_, err := Parse("bomb.yaml", []byte(b.String()))
	wantErrors(t, "bomb", err, []string{"bomb.yaml: invalid YAML: document contains excessive aliasing"})

	_, err = Parse("self.yaml", []byte("x: &x [*x]\ntasks: [{name: a, run: x}]\n"))
	wantErrors(t, "self", err, []string{"self.yaml: invalid YAML: anchor 'x' value contains itself"})
}

func TestFileSizeLimit(t *testing.T) {
	big := make([]byte, MaxFileSize+1)
	for i := range big {
		big[i] = '#'
	}
	if _, err := Parse("big.yaml", big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Parse of %d bytes: %v, want ErrTooLarge", len(big), err)
	}
	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, big, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("Load: %v, want ErrTooLarge", err)
	}
	wantErrors(t, "too large", err, []string{path + ": pipeline file too large: over 4194304 bytes, the limit is 4 MiB"})
	// Exactly at the limit is fine as far as size goes.
	ok := append([]byte("tasks: [{name: a, run: x}]\n"), big[:MaxFileSize-27]...)
	if _, err := Parse("ok.yaml", ok); err != nil {
		t.Errorf("Parse of exactly %d bytes: %v", len(ok), err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "pipeline: load: ") {
		t.Errorf("Load: %v", err)
	}
}
