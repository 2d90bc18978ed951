package hashing

import (
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/zeebo/blake3"

	"github.com/rustypipe/rustypipe/internal/jsonenc"
)

// KeyVersion is the salt written as the first record of every key preimage.
// Changing anything in the recipe (labels, order, framing, value formats)
// requires a new version; see the package documentation.
const KeyVersion = "rustypipe key v1"

// ManifestVersion is the salt written as the first record of every output
// manifest preimage.
const ManifestVersion = "rustypipe manifest v1"

// Record labels of key recipe v1, in the order they are written.
const (
	LabelVersion     = "version"
	LabelCommand     = "command"
	LabelShell       = "shell"
	LabelDir         = "dir"
	LabelEnv         = "env"
	LabelInput       = "input"
	LabelOutput      = "output"
	LabelDep         = "dep"
	LabelEnvIdentity = "env_identity"
	LabelCacheKey    = "cache_key"
)

// Record labels of output manifest v1 (after LabelVersion).
const (
	LabelStdout = "stdout"
	LabelFile   = "file"
)

// keyLabels is the order of the labels in key recipe v1; DiffPreimages uses
// it to report changes in recipe order.
var keyLabels = []string{
	LabelVersion, LabelCommand, LabelShell, LabelDir, LabelEnv, LabelInput,
	LabelOutput, LabelDep, LabelEnvIdentity, LabelCacheKey,
}

// ModeSymlink is set in FileEntry.Mode for a symbolic link, whose Digest is
// that of its target string (the link is not followed). The value is the
// POSIX S_IFLNK bits, the same number git uses for links.
const ModeSymlink uint32 = 0o120000

// Recipe is everything that can change what a task produces. The build
// package fills it from the task, the pipeline and the backend; TaskKey turns
// it into a Key. Paths are relative to the workspace and use "/" separators.
// Order of maps and slices does not matter.
type Recipe struct {
	Command     string            // command after interpolation (the rendered script)
	Shell       string            // shell that runs Command
	Dir         string            // working dir relative to the workspace, "/"-separated; "" means "."
	Env         map[string]string // declared env values (task+pipeline env, and interpolation vars)
	Inputs      []FileEntry       // input files, as returned by Memo.Digest
	Outputs     []string          // declared output globs, as written
	Deps        []DepEntry        // one per dependency: its name and output manifest digest
	EnvIdentity string            // the backend's environment identity (e.g. "local linux/amd64", an image digest)
	Salt        string            // the task's cache_key
}

// FileEntry is one file of a task's inputs or outputs.
type FileEntry struct {
	Path   string `json:"path"`   // relative to the workspace, "/" separators, clean
	Mode   uint32 `json:"mode"`   // permission bits (0o777) of a regular file, or ModeSymlink
	Digest Digest `json:"digest"` // content digest; for a symlink, the digest of its target string
}

// DepEntry is one dependency of a task: its name and the digest of its
// output manifest (Manifest.Digest), so that an upstream that re-ran and
// produced the same bytes does not change the key (early cutoff).
type DepEntry struct {
	Name   string `json:"name"`
	Output Digest `json:"output"`
}

// Record is one labelled record of a preimage. Name distinguishes records
// that share a label (the variable of an env record, the path of an input);
// it is empty for single records such as command.
type Record struct {
	Label string `json:"label"`
	Name  string `json:"name,omitempty"`
	Value string `json:"value"`
}

// Preimage is the exact list of records hashed into a Key or a manifest
// Digest, in order. It is plain data, JSON-serialisable, and is stored beside
// an action so that a later miss can be explained with DiffPreimages. It holds
// the rendered command and declared env values in clear text.
type Preimage struct {
	Records []Record `json:"records"`
}

// TaskKey computes the Key of r following key recipe v1 (the package
// documentation is its specification) and returns the preimage it hashed.
// It does not modify r. The caller guarantees that paths are relative and
// "/"-separated; TaskKey does not touch the file system.
func TaskKey(r *Recipe) (Key, *Preimage) {
	n := 6 + len(r.Env) + len(r.Inputs) + len(r.Outputs) + len(r.Deps)
	p := &Preimage{Records: make([]Record, 0, n)}
	recipeRecords(r, func(label, name, value string) {
		p.Records = append(p.Records, Record{Label: label, Name: name, Value: value})
	})
	return Key(p.sum()), p
}

// KeyOf returns the same Key as TaskKey without building the preimage: the
// records are framed straight into the hash. It is what a build computes
// for every task, most of which turn out to be up to date.
func KeyOf(r *Recipe) Key {
	buf := make([]byte, 0, 1024)
	recipeRecords(r, func(label, name, value string) {
		buf = appendFramed(buf, label)
		buf = appendFramed(buf, name)
		buf = appendFramed(buf, value)
	})
	return Key(blake3.Sum256(buf))
}

// recipeRecords calls add with every record of key recipe v1, in order.
func recipeRecords(r *Recipe, add func(label, name, value string)) {
	add(LabelVersion, "", KeyVersion)
	add(LabelCommand, "", r.Command)
	add(LabelShell, "", r.Shell)
	add(LabelDir, "", cleanDir(r.Dir))

	envNames := make([]string, 0, len(r.Env))
	for k := range r.Env {
		envNames = append(envNames, k)
	}
	slices.Sort(envNames)
	for _, k := range envNames {
		add(LabelEnv, k, r.Env[k])
	}

	for _, f := range sortedFiles(r.Inputs) {
		add(LabelInput, f.Path, fileValue(f))
	}

	outs := r.Outputs
	if !slices.IsSorted(outs) {
		outs = slices.Clone(outs)
		slices.Sort(outs)
	}
	for i, o := range outs {
		if i == 0 || o != outs[i-1] {
			add(LabelOutput, o, "")
		}
	}

	deps := r.Deps
	compareDeps := func(a, b DepEntry) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), compareBytes(a.Output[:], b.Output[:]))
	}
	if !slices.IsSortedFunc(deps, compareDeps) {
		deps = slices.Clone(deps)
		slices.SortFunc(deps, compareDeps)
	}
	for _, d := range deps {
		add(LabelDep, d.Name, d.Output.String())
	}

	add(LabelEnvIdentity, "", r.EnvIdentity)
	add(LabelCacheKey, "", r.Salt)
}

// Key recomputes the Key that p is the preimage of. For a preimage returned
// by TaskKey it equals the returned Key; a stored preimage can be checked
// against its action with it.
func (p *Preimage) Key() Key { return Key(p.sum()) }

// sum hashes the framed records: for each record, uvarint(len(label)) label
// uvarint(len(name)) name uvarint(len(value)) value.
func (p *Preimage) sum() [Size]byte {
	h := blake3.New()
	var buf []byte
	for _, rec := range p.Records {
		buf = appendFramed(buf[:0], rec.Label)
		buf = appendFramed(buf, rec.Name)
		buf = appendFramed(buf, rec.Value)
		h.Write(buf)
	}
	var out [Size]byte
	h.Sum(out[:0])
	return out
}

func appendFramed(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

// AppendJSON appends p as JSON, byte for byte what json.Marshal(p) gives,
// without its reflection: a build stores the preimage of every task it
// runs.
func (p *Preimage) AppendJSON(dst []byte) []byte {
	if dst == nil {
		n := 16
		for _, rec := range p.Records {
			n += 40 + len(rec.Label) + len(rec.Name) + len(rec.Value)
		}
		dst = make([]byte, 0, n)
	}
	dst = append(dst, `{"records":`...)
	if p.Records == nil {
		return append(dst, "null}"...)
	}
	dst = append(dst, '[')
	for i, rec := range p.Records {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"label":`...)
		dst = jsonenc.String(dst, rec.Label)
		if rec.Name != "" {
			dst = append(dst, `,"name":`...)
			dst = jsonenc.String(dst, rec.Name)
		}
		dst = append(dst, `,"value":`...)
		dst = jsonenc.String(dst, rec.Value)
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}

// WriteTo writes every record of p, one per line, as
// `label "name" "value"` with Go-quoted name and value, so that newlines and
// control characters in a command stay on one line. It is what
// RUSTYPIPE_DEBUG=keyhash prints.
func (p *Preimage) WriteTo(w io.Writer) (int64, error) {
	var total int64
	var buf []byte
	for _, rec := range p.Records {
		buf = append(buf[:0], rec.Label...)
		buf = append(buf, ' ')
		buf = strconv.AppendQuote(buf, rec.Name)
		buf = append(buf, ' ')
		buf = strconv.AppendQuote(buf, rec.Value)
		buf = append(buf, '\n')
		n, err := w.Write(buf)
		total += int64(n)
		if err != nil {
			return total, fmt.Errorf("hashing: write preimage: %w", err)
		}
	}
	return total, nil
}

// ChangeKind says how a record differs between two preimages.
type ChangeKind string

// The kinds of Change.
const (
	Added   ChangeKind = "added"   // only in the new preimage
	Removed ChangeKind = "removed" // only in the old preimage
	Changed ChangeKind = "changed" // in both, with different values
)

// Change is one difference between two preimages, for `rustypipe explain`.
// Old is empty for Added, New is empty for Removed.
type Change struct {
	Kind  ChangeKind `json:"kind"`
	Label string     `json:"label"`
	Name  string     `json:"name,omitempty"`
	Old   string     `json:"old,omitempty"`
	New   string     `json:"new,omitempty"`
}

// String renders c on one line, e.g. `changed input "src/a.c": "0644 1f…" -> "0755 1f…"`.
func (c Change) String() string {
	subject := c.Label
	if c.Name != "" {
		subject += " " + strconv.Quote(c.Name)
	}
	switch c.Kind {
	case Added:
		return fmt.Sprintf("added %s: %q", subject, c.New)
	case Removed:
		return fmt.Sprintf("removed %s: %q", subject, c.Old)
	default:
		return fmt.Sprintf("%s %s: %q -> %q", c.Kind, subject, c.Old, c.New)
	}
}

// DiffPreimages returns the records that differ between old and new, matched
// by label and name (the n-th record with a given label and name in old is
// matched with the n-th in new). Changes come in recipe order (by label as
// listed in the specification, unknown labels last), then by name. A nil
// preimage counts as empty. Identical preimages give nil.
func DiffPreimages(old, new *Preimage) []Change {
	type id struct {
		label, name string
		nth         int
	}
	index := func(p *Preimage) (map[id]string, []id) {
		m := map[id]string{}
		var order []id
		if p == nil {
			return m, nil
		}
		seen := map[[2]string]int{}
		for _, r := range p.Records {
			k := [2]string{r.Label, r.Name}
			i := id{r.Label, r.Name, seen[k]}
			seen[k]++
			m[i] = r.Value
			order = append(order, i)
		}
		return m, order
	}
	oldM, oldOrder := index(old)
	newM, newOrder := index(new)

	type ranked struct {
		c   Change
		nth int
	}
	var out []ranked
	for _, i := range oldOrder {
		nv, ok := newM[i]
		switch {
		case !ok:
			out = append(out, ranked{Change{Kind: Removed, Label: i.label, Name: i.name, Old: oldM[i]}, i.nth})
		case nv != oldM[i]:
			out = append(out, ranked{Change{Kind: Changed, Label: i.label, Name: i.name, Old: oldM[i], New: nv}, i.nth})
		}
	}
	for _, i := range newOrder {
		if _, ok := oldM[i]; !ok {
			out = append(out, ranked{Change{Kind: Added, Label: i.label, Name: i.name, New: newM[i]}, i.nth})
		}
	}
	rank := func(label string) int {
		if i := slices.Index(keyLabels, label); i >= 0 {
			return i
		}
		return len(keyLabels)
	}
	slices.SortStableFunc(out, func(a, b ranked) int {
		return cmp.Or(
			cmp.Compare(rank(a.c.Label), rank(b.c.Label)),
			strings.Compare(a.c.Label, b.c.Label),
			strings.Compare(a.c.Name, b.c.Name),
			cmp.Compare(a.nth, b.nth),
		)
	})
	if len(out) == 0 {
		return nil
	}
	changes := make([]Change, len(out))
	for i, r := range out {
		changes[i] = r.c
	}
	return changes
}

// Manifest is the content a task produced: its stdout and its output files.
// Its Digest is what dependents hash (DepEntry.Output).
type Manifest struct {
	Stdout Digest      `json:"stdout"`
	Files  []FileEntry `json:"files"`
}

// Digest returns the digest of manifest v1: the version record, the stdout
// record, then one file record per output file sorted by path, framed like a
// key preimage. It depends on content, paths and canonical modes only.
func (m *Manifest) Digest() Digest {
	p := Preimage{Records: make([]Record, 0, 2+len(m.Files))}
	p.Records = append(p.Records,
		Record{Label: LabelVersion, Value: ManifestVersion},
		Record{Label: LabelStdout, Value: m.Stdout.String()})
	for _, f := range sortedFiles(m.Files) {
		p.Records = append(p.Records, Record{Label: LabelFile, Name: f.Path, Value: fileValue(f)})
	}
	return Digest(p.sum())
}

// sortedFiles returns a copy of files sorted by path, then canonical mode,
// then digest, so that the order is total.
func sortedFiles(files []FileEntry) []FileEntry {
	if slices.IsSortedFunc(files, compareFiles) {
		return files // the caller does not modify it
	}
	out := slices.Clone(files)
	slices.SortFunc(out, compareFiles)
	return out
}

func compareFiles(a, b FileEntry) int {
	return cmp.Or(
		strings.Compare(a.Path, b.Path),
		cmp.Compare(canonicalMode(a.Mode), canonicalMode(b.Mode)),
		compareBytes(a.Digest[:], b.Digest[:]),
	)
}

func compareBytes(a, b []byte) int { return strings.Compare(string(a), string(b)) }

// fileValue is the value of an input or file record: "<mode> <digest>".
func fileValue(f FileEntry) string {
	var b [7 + 1 + 2*Size]byte
	v := strconv.AppendUint(b[:0], uint64(canonicalMode(f.Mode)), 8)
	if len(v) < 4 { // %04o: the canonical modes are 0644, 0755 and 120000
		v = append([]byte("0000"[:4-len(v)]), v...)
	}
	v = append(v, ' ')
	v = hex.AppendEncode(v, f.Digest[:])
	return string(v)
}

// canonicalMode keeps what can change a command's result: whether the entry
// is a symlink and whether it is executable. Other permission bits depend on
// the umask of whoever checked the files out, so they are dropped.
func canonicalMode(m uint32) uint32 {
	switch {
	case m&ModeSymlink == ModeSymlink:
		return ModeSymlink
	case m&0o111 != 0:
		return 0o755
	default:
		return 0o644
	}
}

// cleanDir is the value of the dir record: path.Clean of the "/"-separated
// directory, so that "", "." and "./" agree.
func cleanDir(dir string) string {
	return path.Clean(dir)
}
