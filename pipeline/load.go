package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/bmatcuk/doublestar/v4"
	"gopkg.in/yaml.v3"
)

// Load reads and parses the pipeline file at path. See Parse.
func Load(path string) (*Pipeline, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// readFile reads a pipeline file, refusing one over MaxFileSize. The
// buffer is sized by the file's size, so that it is read in one go.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pipeline: load: %w", err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if fi, err := f.Stat(); err == nil {
		if fi.Size() > MaxFileSize {
			return nil, tooLarge(path, fi.Size())
		}
		buf.Grow(int(fi.Size()) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(io.LimitReader(f, MaxFileSize+1)); err != nil {
		return nil, fmt.Errorf("pipeline: load %s: %w", path, err)
	}
	if buf.Len() > MaxFileSize {
		return nil, tooLarge(path, int64(buf.Len()))
	}
	return buf.Bytes(), nil
}

// tooLarge reports a file over MaxFileSize as a file-level DecodeError, so
// that callers treat it like any other bad pipeline; it wraps ErrTooLarge.
func tooLarge(file string, size int64) error {
	what := fmt.Sprintf("%d bytes", size)
	if size > MaxFileSize {
		what = fmt.Sprintf("over %d bytes", MaxFileSize)
	}
	return Errors{{File: file, Msg: fmt.Sprintf("%v: %s, the limit is %d MiB", ErrTooLarge, what, MaxFileSize>>20), err: ErrTooLarge}}
}

// Parse decodes and validates a pipeline file; file names it in positions.
//
// On success the *Pipeline is fully validated except for dependency cycles
// (see the package documentation). Otherwise the error is an Errors listing
// every problem found, each a *DecodeError with its file:line:col (for data
// over MaxFileSize, a single file-level entry wrapping ErrTooLarge).
func Parse(file string, data []byte) (*Pipeline, error) {
	if len(data) > MaxFileSize {
		return nil, tooLarge(file, int64(len(data)))
	}
	d := &decoder{file: file, lines: strings.Split(string(data), "\n")}
	if root := d.parseYAML(data); root != nil {
		if p := d.pipeline(root); p != nil {
			d.validate(p)
			if len(d.errs) == 0 {
				p.source = data
				return p, nil
			}
		}
	}
	return nil, sortErrors(d.errs)
}

// decoder walks the YAML tree, collecting every error instead of stopping
// at the first.
type decoder struct {
	file  string
	lines []string // the source, for positions inside block scalars
	errs  Errors
	tasks []*taskInfo
}

// taskInfo is what validation needs to know about a task beyond the Task.
type taskInfo struct {
	t     *Task
	index int
	node  *yaml.Node            // the task's mapping
	keys  map[string]*yaml.Node // key nodes, by key
	vals  map[string]*yaml.Node // value nodes as written (aliases unresolved), by key
	deps  []*yaml.Node          // depends_on entries, parallel to t.DependsOn
}

func (d *decoder) pos(n *yaml.Node) Pos {
	if n == nil {
		return Pos{File: d.file}
	}
	return Pos{File: d.file, Line: n.Line, Col: n.Column}
}

// errorAt records an error at n about task (may be "") and key (may be "").
func (d *decoder) errorAt(n *yaml.Node, task, key, format string, args ...any) {
	d.errorPos(d.pos(n), task, key, format, args...)
}

func (d *decoder) errorPos(p Pos, task, key, format string, args ...any) {
	d.errs = append(d.errs, &DecodeError{File: p.File, Line: p.Line, Col: p.Col, Task: task, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// yamlLineRE is compiled on first use: most runs never see a YAML error,
// and every run would pay for compiling it at start.
var yamlLineRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^yaml: line (\d+): (.*)$`) })

// parseYAML parses the single document in data and returns its root node,
// or nil after recording an error.
// hasAlias reports whether any node under n is an alias.
func hasAlias(n *yaml.Node) bool {
	if n.Kind == yaml.AliasNode {
		return true
	}
	for _, c := range n.Content {
		if hasAlias(c) {
			return true
		}
	}
	return false
}

func (d *decoder) parseYAML(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.errorPos(Pos{File: d.file, Line: 1, Col: 1}, "", "", "empty pipeline file: expected a mapping with \"tasks\"")
		} else {
			d.yamlError(err)
		}
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		line := extra.Line
		if len(extra.Content) > 0 {
			line = extra.Content[0].Line
		}
		d.errorPos(Pos{File: d.file, Line: line, Col: 1}, "", "", "more than one YAML document; a pipeline file holds one")
		return nil
	case !errors.Is(err, io.EOF):
		d.yamlError(err)
		return nil
	}
	// Decoding the whole document into plain values makes yaml.v3 expand
	// every alias under its own limits: an alias bomb ("billion laughs") or
	// a self-referencing anchor fails here, quickly and in bounded memory,
	// so the walk below may follow aliases freely. Type errors (duplicate
	// keys) are left to the walk, which reports them with positions.
	// A document without aliases cannot be a bomb, and most have none:
	// the decode costs a fifth of the parse.
	var v any
	if hasAlias(&doc) {
		if err := doc.Decode(&v); err != nil {
			var te *yaml.TypeError
			if !errors.As(err, &te) {
				d.yamlError(err)
				return nil
			}
		}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		d.errorPos(Pos{File: d.file, Line: 1, Col: 1}, "", "", "empty pipeline file: expected a mapping with \"tasks\"")
		return nil
	}
	return doc.Content[0]
}

func (d *decoder) yamlError(err error) {
	msg := err.Error()
	p := Pos{File: d.file}
	if m := yamlLineRE().FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	d.errorPos(p, "", "", "invalid YAML: %s", msg)
}

// resolve follows aliases. parseYAML has checked that they end.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// entry is one key of a mapping.
type entry struct {
	key string
	kn  *yaml.Node // the key
	vn  *yaml.Node // the value as written, possibly an alias
}

// val is the entry's value with aliases resolved.
func (e entry) val() *yaml.Node { return resolve(e.vn) }

// mapping returns the entries of mapping node n in file order, with YAML
// merge keys ("<<: *defaults") applied: explicit keys win over merged ones,
// earlier merges over later ones. Duplicate keys are reported. ok is false
// when n is not a mapping (reported as a type error about key what).
func (d *decoder) mapping(n *yaml.Node, task, what string) (entries []entry, ok bool) {
	at := n
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		d.typeError(at, task, what, "a mapping")
		return nil, false
	}
	seen := map[string]*yaml.Node{}
	var merged []entry
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := resolve(n.Content[i]), n.Content[i+1]
		if kn.Kind == yaml.ScalarNode && kn.ShortTag() == "!!merge" {
			merged = append(merged, d.merge(vn, task)...)
			continue
		}
		if kn.Kind != yaml.ScalarNode || kn.ShortTag() == "!!null" {
			d.errorAt(kn, task, "", "keys must be strings, got %s", describe(kn))
			continue
		}
		if first, dup := seen[kn.Value]; dup {
			d.errorAt(kn, task, kn.Value, "duplicate key %q (first at line %d)", kn.Value, first.Line)
			continue
		}
		seen[kn.Value] = kn
		entries = append(entries, entry{key: kn.Value, kn: kn, vn: vn})
	}
	for _, e := range merged {
		if _, dup := seen[e.key]; !dup {
			seen[e.key] = e.kn
			entries = append(entries, e)
		}
	}
	return entries, true
}

// merge returns the entries a merge key's value contributes.
func (d *decoder) merge(vn *yaml.Node, task string) []entry {
	n := resolve(vn)
	var srcs []*yaml.Node
	switch n.Kind {
	case yaml.MappingNode:
		srcs = []*yaml.Node{n}
	case yaml.SequenceNode:
		srcs = n.Content
	default:
		d.errorAt(vn, task, "<<", "a merge key (<<) takes a mapping or a list of mappings, got %s", describe(n))
		return nil
	}
	var out []entry
	seen := map[string]bool{}
	for _, src := range srcs {
		es, ok := d.mapping(src, task, "<<")
		if !ok {
			continue
		}
		for _, e := range es {
			if !seen[e.key] {
				seen[e.key] = true
				out = append(out, e)
			}
		}
	}
	return out
}

// describe names a node's value for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	n = resolve(n)
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "null"
		}
		v := n.Value
		if len(v) > 40 {
			v = v[:37] + "..."
		}
		return strconv.Quote(v)
	}
	return "nothing"
}

func (d *decoder) typeError(n *yaml.Node, task, key, want string) {
	if key == "" {
		d.errorAt(n, task, key, "expected %s, got %s", want, describe(n))
		return
	}
	d.errorAt(n, task, key, "key %q: expected %s, got %s", key, want, describe(n))
}

// unknownKey reports a key that is not one of known.
func (d *decoder) unknownKey(e entry, task, where string, known []string) {
	d.errorAt(e.kn, task, e.key, "unknown %skey %q%s", where, e.key, suggest(e.key, known))
}

// str decodes a scalar as a string; null is "". Numbers and booleans keep
// the text they were written as.
func (d *decoder) str(e entry, task string) (string, bool) {
	n := e.val()
	if n.Kind != yaml.ScalarNode {
		d.typeError(e.vn, task, e.key, "a string")
		return "", false
	}
	if n.ShortTag() == "!!null" {
		return "", true
	}
	return n.Value, true
}

func (d *decoder) integer(e entry, task string) (int, bool) {
	n := e.val()
	var v int
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil {
		d.typeError(e.vn, task, e.key, "an integer")
		return 0, false
	}
	return v, true
}

func (d *decoder) boolean(e entry, task string) (bool, bool) {
	n := e.val()
	var v bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&v) != nil {
		d.typeError(e.vn, task, e.key, "true or false")
		return false, false
	}
	return v, true
}

func (d *decoder) number(e entry, task string) (float64, bool) {
	n := e.val()
	var v float64
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") || n.Decode(&v) != nil {
		d.typeError(e.vn, task, e.key, "a number")
		return 0, false
	}
	return v, true
}

// duration decodes a number of seconds or a duration string.
func (d *decoder) duration(e entry, task string) (time.Duration, bool) {
	n := e.val()
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!int", "!!float":
			var f float64
			if n.Decode(&f) == nil {
				v, err := durationOfSeconds(f)
				if err != nil {
					d.errorAt(e.vn, task, e.key, "key %q: %v", e.key, err)
					return 0, false
				}
				return v, true
			}
		case "!!str":
			v, err := ParseDuration(n.Value)
			if err != nil {
				d.errorAt(e.vn, task, e.key, "key %q: %v", e.key, err)
				return 0, false
			}
			return v, true
		}
	}
	d.typeError(e.vn, task, e.key, `a duration (seconds, or a string such as "90s", "1m30s", "2h", "1d")`)
	return 0, false
}

// strList decodes a list of strings; a single string is a list of one.
// nodes are the entries' nodes, for positions.
func (d *decoder) strList(e entry, task string) (list []string, nodes []*yaml.Node, ok bool) {
	n := e.val()
	switch {
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null":
		return nil, nil, true
	case n.Kind == yaml.ScalarNode:
		return []string{n.Value}, []*yaml.Node{e.vn}, true
	case n.Kind != yaml.SequenceNode:
		d.typeError(e.vn, task, e.key, "a list of strings")
		return nil, nil, false
	}
	ok = true
	for _, item := range n.Content {
		r := resolve(item)
		if r.Kind != yaml.ScalarNode || r.ShortTag() == "!!null" {
			d.errorAt(item, task, e.key, "key %q: expected a list of strings, got %s in the list", e.key, describe(r))
			ok = false
			continue
		}
		list = append(list, r.Value)
		nodes = append(nodes, item)
	}
	return list, nodes, ok
}

// strMap decodes a mapping of names to scalars (env, vars). Numbers and
// booleans become the text they were written as.
func (d *decoder) strMap(e entry, task string, validName func(string) string) (map[string]string, bool) {
	n := e.val()
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil, true
	}
	entries, ok := d.mapping(e.vn, task, e.key)
	if !ok {
		return nil, false
	}
	m := make(map[string]string, len(entries))
	for _, kv := range entries {
		if why := validName(kv.key); why != "" {
			d.errorAt(kv.kn, task, e.key, "key %q: invalid name %q: %s", e.key, kv.key, why)
			ok = false
			continue
		}
		v := kv.val()
		if v.Kind != yaml.ScalarNode || v.ShortTag() == "!!null" {
			d.errorAt(kv.vn, task, e.key, "key %q: %q: expected a string, number or boolean, got %s (write \"\" for an empty value)", e.key, kv.key, describe(v))
			ok = false
			continue
		}
		if strings.IndexByte(v.Value, 0) >= 0 {
			d.errorAt(kv.vn, task, e.key, "key %q: %q: the value contains a NUL byte", e.key, kv.key)
			ok = false
			continue
		}
		m[kv.key] = v.Value
	}
	return m, ok
}

func envNameProblem(s string) string {
	switch {
	case s == "":
		return "empty"
	case strings.ContainsAny(s, "=\x00"):
		return "contains = or NUL"
	}
	return ""
}

func varNameProblem(s string) string {
	for i := 0; i < len(s); i++ {
		if !isNameChar(s[i]) {
			return "use letters, digits and _ - . : / so that {{ vars.NAME }} can name it"
		}
	}
	if s == "" {
		return "empty"
	}
	return ""
}

var (
	pipelineKeys = []string{"name", "description", "concurrency", "stop_on_fail", "env", "vars", "shell", "dir", "backends", "tasks"}
	taskKeys     = []string{"name", "description", "run", "depends_on", "retries", "retry", "timeout", "backend", "cache_key", "continue_on_fail", "env", "vars", "shell", "dir", "inputs", "outputs", "image"}
	retryKeys    = []string{"attempts", "delay", "backoff", "max_delay", "on_exit_codes"}
	backendTypes = []string{"local", "docker", "ssh", "kubernetes", "external"}
)

// pipeline decodes the root mapping. It returns nil only when the root is
// not a mapping.
func (d *decoder) pipeline(root *yaml.Node) *Pipeline {
	entries, ok := d.mapping(root, "", "")
	if !ok {
		d.errs = d.errs[:len(d.errs)-1]
		d.errorAt(root, "", "", "a pipeline file is a mapping with \"tasks\" (and name, env, vars...), got %s", describe(root))
		return nil
	}
	p := &Pipeline{File: d.file}
	var tasks *entry
	for _, e := range entries {
		switch e.key {
		case "name":
			p.Name, _ = d.str(e, "")
		case "description":
			p.Description, _ = d.str(e, "")
		case "concurrency":
			if v, ok := d.integer(e, ""); ok {
				if v < 0 {
					d.errorAt(e.vn, "", e.key, "key %q: must be 0 (not set) or more, got %d", e.key, v)
				}
				p.Concurrency = v
			}
		case "stop_on_fail":
			p.StopOnFail, _ = d.boolean(e, "")
		case "env":
			p.Env, _ = d.strMap(e, "", envNameProblem)
		case "vars":
			p.Vars, _ = d.strMap(e, "", varNameProblem)
		case "shell":
			p.Shell = d.shell(e, "")
		case "dir":
			p.Dir = d.dir(e, "")
		case "backends":
			p.Backends = d.backends(e)
		case "tasks":
			tasks = &e
		default:
			if !isExtension(e.key) {
				d.unknownKey(e, "", "", pipelineKeys)
			}
		}
	}
	if tasks == nil {
		d.errorAt(root, "", "tasks", "missing \"tasks\": a pipeline needs at least one task")
		return p
	}
	n := tasks.val()
	if n.Kind != yaml.SequenceNode {
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
			d.errorAt(tasks.vn, "", "tasks", "\"tasks\" is empty: a pipeline needs at least one task")
		} else {
			d.typeError(tasks.vn, "", "tasks", "a list of tasks")
		}
		return p
	}
	if len(n.Content) == 0 {
		d.errorAt(tasks.vn, "", "tasks", "\"tasks\" is empty: a pipeline needs at least one task")
	}
	for i, item := range n.Content {
		if ti := d.task(item, i); ti != nil {
			d.tasks = append(d.tasks, ti)
			p.Tasks = append(p.Tasks, ti.t)
		}
	}
	return p
}

// isExtension reports whether key is an extension field ("x-..."), which
// pipelines and tasks may carry for YAML anchors and other tools, as in
// Compose files; they are ignored.
func isExtension(key string) bool { return strings.HasPrefix(key, "x-") }

func (d *decoder) shell(e entry, task string) string {
	s, ok := d.str(e, task)
	if !ok || s == "" || slices.Contains(Shells, s) {
		return s
	}
	d.errorAt(e.vn, task, e.key, "key %q: unknown shell %q%s; expected one of %s", e.key, s, suggest(s, Shells), strings.Join(Shells, ", "))
	return s
}

func (d *decoder) dir(e entry, task string) string {
	s, ok := d.str(e, task)
	if !ok || s == "" {
		return s
	}
	if why := relPathProblem(s, false); why != "" {
		d.errorAt(e.vn, task, e.key, "key %q: %q %s", e.key, s, why)
	}
	return s
}

// relPathProblem says what is wrong with a path that must stay inside the
// workspace (relative, no "..", unless allowParent), or "".
func relPathProblem(s string, allowParent bool) string {
	p := strings.ReplaceAll(s, `\`, "/")
	switch {
	case strings.HasPrefix(p, "/") || (len(p) >= 2 && p[1] == ':'):
		return "is absolute; paths are relative to the pipeline file's directory"
	case allowParent:
		return ""
	}
	depth := 0
	for _, seg := range strings.Split(p, "/") {
		switch seg {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return "leaves the pipeline file's directory"
			}
		default:
			depth++
		}
	}
	return ""
}

func (d *decoder) backends(e entry) map[string]*BackendConfig {
	entries, ok := d.mapping(e.vn, "", e.key)
	if !ok {
		return nil
	}
	out := make(map[string]*BackendConfig, len(entries))
	for _, be := range entries {
		name := be.key
		if why := taskNameProblem(name); why != "" {
			d.errorAt(be.kn, "", "backends", "invalid backend name %q: %s", name, why)
		}
		cfg := &BackendConfig{Name: name, Pos: d.pos(be.kn), Options: map[string]any{}}
		opts, ok := d.mapping(be.vn, "", "backends."+name)
		if !ok {
			continue
		}
		for _, o := range opts {
			if o.key == "type" {
				cfg.Type, _ = d.str(o, "")
				if cfg.Type == "" || !slices.Contains(backendTypes, cfg.Type) {
					d.errorAt(o.vn, "", "type", "backend %q: unknown type %q%s; expected one of %s", name, cfg.Type, suggest(cfg.Type, backendTypes), strings.Join(backendTypes, ", "))
				}
				continue
			}
			var v any
			if err := o.val().Decode(&v); err != nil {
				d.errorAt(o.vn, "", o.key, "backend %q: key %q: %v", name, o.key, err)
				continue
			}
			cfg.Options[o.key] = v
		}
		if !slices.ContainsFunc(opts, func(o entry) bool { return o.key == "type" }) {
			d.errorAt(be.kn, "", "type", "backend %q: missing \"type\" (one of %s)", name, strings.Join(backendTypes, ", "))
		}
		if name == "local" && cfg.Type != "local" {
			d.errorAt(be.kn, "", "backends", "backend name \"local\" is reserved for the local machine; choose another name")
		}
		out[name] = cfg
	}
	return out
}

// task decodes one entry of tasks; index is its place in the list.
func (d *decoder) task(item *yaml.Node, index int) *taskInfo {
	entries, ok := d.mapping(item, "", "")
	if !ok {
		// mapping reported `expected a mapping`; say where.
		last := d.errs[len(d.errs)-1]
		last.Msg = fmt.Sprintf("tasks[%d]: %s", index, last.Msg)
		return nil
	}
	n := resolve(item)
	t := &Task{Pos: d.pos(n)}
	ti := &taskInfo{t: t, index: index, node: n, keys: map[string]*yaml.Node{}, vals: map[string]*yaml.Node{}}
	// The name first, so that every other message can carry it.
	for _, e := range entries {
		if e.key == "name" {
			t.Name, _ = d.str(e, "")
		}
	}
	label := t.Name
	var retries, retry *entry
	for _, e := range entries {
		ti.keys[e.key], ti.vals[e.key] = e.kn, e.vn
		switch e.key {
		case "name":
		case "description":
			t.Description, _ = d.str(e, label)
		case "run":
			t.Run, _ = d.str(e, label)
		case "depends_on":
			var ok bool
			t.DependsOn, ti.deps, ok = d.strList(e, label)
			if !ok {
				t.DependsOn, ti.deps = nil, nil
			}
		case "retries":
			if v, ok := d.integer(e, label); ok {
				if v < 0 {
					d.errorAt(e.vn, label, e.key, "key %q: must be 0 or more, got %d", e.key, v)
				}
				t.Retries = v
				retries = &e
			}
		case "retry":
			if r := d.retry(e, label); r != nil {
				t.Retry = r
				retry = &e
			}
		case "timeout":
			t.Timeout, _ = d.duration(e, label)
		case "backend":
			t.Backend, _ = d.str(e, label)
		case "cache_key":
			t.CacheKey, _ = d.str(e, label)
		case "continue_on_fail":
			t.ContinueOnFail, _ = d.boolean(e, label)
		case "env":
			t.Env, _ = d.strMap(e, label, envNameProblem)
		case "vars":
			t.Vars, _ = d.strMap(e, label, varNameProblem)
		case "shell":
			t.Shell = d.shell(e, label)
		case "dir":
			t.Dir = d.dir(e, label)
		case "inputs", "outputs":
			list, nodes, _ := d.strList(e, label)
			for k, g := range list {
				if why := globProblem(g, e.key == "inputs"); why != "" {
					d.errorAt(nodes[k], label, e.key, "key %q: %q %s", e.key, g, why)
				}
			}
			if e.key == "inputs" {
				t.Inputs = list
			} else {
				t.Outputs = list
			}
		case "image":
			t.Image, _ = d.str(e, label)
		default:
			if !isExtension(e.key) {
				d.unknownKey(e, label, "", taskKeys)
			}
		}
	}
	switch {
	case retries != nil && retry != nil:
		d.errorAt(retry.kn, label, "retry", "both \"retries\" and \"retry\" are given; use one (retries: N is retry: {attempts: N+1})")
	case retries != nil:
		t.Retry = &Retry{Attempts: t.Retries + 1, Backoff: defaultBackoff}
	case retry != nil:
		t.Retries = t.Retry.Attempts - 1
	}
	return ti
}

// defaultBackoff is the factor between retry delays when `backoff` is not
// given: doubling, the usual exponential backoff.
const defaultBackoff = 2

func (d *decoder) retry(e entry, task string) *Retry {
	entries, ok := d.mapping(e.vn, task, e.key)
	if !ok {
		return nil
	}
	r := &Retry{Backoff: defaultBackoff}
	hasAttempts := false
	for _, re := range entries {
		switch re.key {
		case "attempts":
			if v, ok := d.integer(re, task); ok {
				hasAttempts = true
				if v < 1 {
					d.errorAt(re.vn, task, re.key, "key %q: must be at least 1 (the first attempt counts), got %d", re.key, v)
				}
				r.Attempts = v
			}
		case "delay":
			r.Delay, _ = d.duration(re, task)
		case "backoff":
			if v, ok := d.number(re, task); ok {
				if v < 1 {
					d.errorAt(re.vn, task, re.key, "key %q: must be at least 1, got %v", re.key, v)
				}
				r.Backoff = v
			}
		case "max_delay":
			r.MaxDelay, _ = d.duration(re, task)
		case "on_exit_codes":
			r.OnExitCodes = d.exitCodes(re, task)
		default:
			d.unknownKey(re, task, "retry ", retryKeys)
		}
	}
	if !hasAttempts {
		d.errorAt(e.kn, task, "attempts", "key \"retry\": missing \"attempts\" (the total number of attempts, first included)")
	}
	return r
}

func (d *decoder) exitCodes(e entry, task string) []int {
	n := e.val()
	items := []*yaml.Node{e.vn}
	if n.Kind == yaml.SequenceNode {
		items = n.Content
	}
	var codes []int
	for _, item := range items {
		var c int
		r := resolve(item)
		if r.Kind != yaml.ScalarNode || r.ShortTag() != "!!int" || r.Decode(&c) != nil {
			d.errorAt(item, task, e.key, "key %q: expected an exit code or a list of exit codes, got %s", e.key, describe(r))
			continue
		}
		if c < 1 || c > 1<<32-1 {
			d.errorAt(item, task, e.key, "key %q: %d is not the exit code of a failure (expected 1 or more)", e.key, c)
			continue
		}
		codes = append(codes, c)
	}
	return codes
}

// globProblem says what is wrong with an inputs/outputs pattern, or "".
func globProblem(g string, input bool) string {
	if g == "" {
		return "is empty"
	}
	if !doublestar.ValidatePattern(g) {
		return "is not a valid glob pattern"
	}
	return relPathProblem(g, input)
}

// taskNameProblem says what is wrong with a task (or backend) name, or "".
func taskNameProblem(name string) string {
	for _, r := range name {
		if r >= utf8.RuneSelf || !isNameChar(byte(r)) {
			if r == ' ' || r == '\t' {
				return "names cannot contain spaces; use letters, digits and _ - . : /"
			}
			return fmt.Sprintf("%q is not allowed; use letters, digits and _ - . : /", r)
		}
	}
	switch {
	case name == "":
		return "empty"
	case name[0] == '-':
		return "names cannot start with '-' (it would read as a command-line flag)"
	case name == KindVars || name == KindEnv:
		return fmt.Sprintf("%q is reserved for {{ %s.NAME }}", name, name)
	case name[0] == '/' || name[len(name)-1] == '/' || strings.Contains(name, "//") ||
		slices.ContainsFunc(strings.Split(name, "/"), func(s string) bool { return s == "." || s == ".." }):
		return "names cannot have empty, '.' or '..' path segments"
	}
	return ""
}
