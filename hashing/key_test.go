package hashing

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/zeebo/blake3"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

func d(s string) Digest { return DigestBytes([]byte(s)) }

// baseRecipe has every field set, with several entries in each collection.
func baseRecipe() *Recipe {
	return &Recipe{
		Command: "cc -o out/app src/a.c src/b.c\necho done",
		Shell:   "bash",
		Dir:     "services/api",
		Env:     map[string]string{"CC": "gcc", "CFLAGS": "-O2", "MODE": "release"},
		Inputs: []FileEntry{
			{Path: "src/a.c", Mode: 0o644, Digest: d("a")},
			{Path: "src/b.c", Mode: 0o644, Digest: d("b")},
			{Path: "tools/gen.sh", Mode: 0o755, Digest: d("gen")},
		},
		Outputs:     []string{"out/app", "out/*.o"},
		Deps:        []DepEntry{{Name: "gen", Output: d("gen-out")}, {Name: "fmt", Output: d("fmt-out")}},
		EnvIdentity: "local linux/amd64",
		Salt:        "v2",
	}
}

func TestDigestParseRoundTrip(t *testing.T) {
	dg := d("hello")
	got, err := ParseDigest(dg.String())
	if err != nil || got != dg {
		t.Fatalf("ParseDigest(%s) = %v, %v", dg, got, err)
	}
	k := Key(d("key"))
	gotK, err := ParseKey(k.String())
	if err != nil || gotK != k {
		t.Fatalf("ParseKey(%s) = %v, %v", k, gotK, err)
	}
	if strings.ToLower(dg.String()) != dg.String() || len(dg.String()) != 64 {
		t.Errorf("String() = %q, want 64 lowercase hex digits", dg.String())
	}
	if !(Digest{}).IsZero() || dg.IsZero() || !(Key{}).IsZero() || k.IsZero() {
		t.Error("IsZero wrong")
	}

	js, err := json.Marshal(struct {
		D Digest
		K Key
	}{dg, k})
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		D Digest
		K Key
	}
	if err := json.Unmarshal(js, &back); err != nil || back.D != dg || back.K != k {
		t.Fatalf("json round trip: %s -> %+v, %v", js, back, err)
	}
	if !bytes.Contains(js, []byte(`"`+dg.String()+`"`)) {
		t.Errorf("json %s does not hold the hex digest", js)
	}
}

func TestParseRejects(t *testing.T) {
	for _, s := range []string{
		"",
		"abc",
		strings.Repeat("0", 63),
		strings.Repeat("0", 65),
		strings.Repeat("g", 64),
		" " + strings.Repeat("0", 63),
	} {
		if _, err := ParseDigest(s); err == nil {
			t.Errorf("ParseDigest(%q) succeeded", s)
		}
		if _, err := ParseKey(s); err == nil {
			t.Errorf("ParseKey(%q) succeeded", s)
		}
	}
}

func TestDigestKnownVector(t *testing.T) {
	// BLAKE3-256 of the empty input, from the BLAKE3 specification's test vectors.
	const empty = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
	if got := DigestBytes(nil).String(); got != empty {
		t.Errorf("DigestBytes(nil) = %s, want %s", got, empty)
	}
	if got := NewDigester().Sum().String(); got != empty {
		t.Errorf("NewDigester().Sum() = %s, want %s", got, empty)
	}
}

func TestDigesterStreaming(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 70000) // > 1 MiB, many chunks
	want := DigestBytes(data)
	for _, step := range []int{1, 63, 1024, 4096, 65536, len(data)} {
		if step == 1 && testing.Short() {
			continue
		}
		dg := NewDigester()
		for i := 0; i < len(data); i += step {
			dg.Write(data[i:min(i+step, len(data))])
		}
		if dg.Sum() != want || dg.Size() != int64(len(data)) {
			t.Errorf("step %d: Sum %s Size %d, want %s %d", step, dg.Sum(), dg.Size(), want, len(data))
		}
	}
	dg := NewDigester()
	dg.WriteString("abc")
	if dg.Sum() != d("abc") {
		t.Error("WriteString differs from DigestBytes")
	}
	dg.Reset()
	if dg.Sum() != DigestBytes(nil) || dg.Size() != 0 {
		t.Error("Reset did not empty the digester")
	}
}

func TestTaskKeyDeterministic(t *testing.T) {
	want, _ := TaskKey(baseRecipe())

	r := baseRecipe()
	// A map built in another order, slices reversed.
	r.Env = map[string]string{}
	for _, k := range []string{"MODE", "CC", "CFLAGS"} {
		r.Env[k] = baseRecipe().Env[k]
	}
	slices.Reverse(r.Inputs)
	slices.Reverse(r.Outputs)
	slices.Reverse(r.Deps)
	r.Outputs = append(r.Outputs, "out/app") // duplicate output glob
	before := *r
	before.Inputs = slices.Clone(r.Inputs)
	for range 20 { // map iteration order is random: try several times
		if got, _ := TaskKey(r); got != want {
			t.Fatalf("reordered recipe: key %s, want %s", got, want)
		}
	}
	if !reflect.DeepEqual(before.Inputs, r.Inputs) {
		t.Error("TaskKey modified the recipe's inputs")
	}

	// nil and empty collections agree; "" and "." dirs agree.
	a := &Recipe{Command: "true", Dir: ""}
	b := &Recipe{Command: "true", Dir: "./", Env: map[string]string{}, Inputs: []FileEntry{}, Outputs: []string{}, Deps: []DepEntry{}}
	ka, _ := TaskKey(a)
	kb, _ := TaskKey(b)
	if ka != kb {
		t.Errorf("nil vs empty collections: %s != %s", ka, kb)
	}
}

// TestTaskKeyEveryFieldMatters changes one thing at a time; each change must
// give a key different from the base and from every other change.
func TestTaskKeyEveryFieldMatters(t *testing.T) {
	tests := []struct {
		field  string // Recipe field (or Recipe.Field.SubField) the case covers
		name   string
		mutate func(r *Recipe)
	}{
		{"Command", "command text", func(r *Recipe) { r.Command += " " }},
		{"Shell", "shell", func(r *Recipe) { r.Shell = "sh" }},
		{"Dir", "dir", func(r *Recipe) { r.Dir = "services" }},
		{"Env", "env value", func(r *Recipe) { r.Env["CC"] = "clang" }},
		{"Env", "env name", func(r *Recipe) { r.Env["CC2"] = r.Env["CC"]; delete(r.Env, "CC") }},
		{"Env", "env added", func(r *Recipe) { r.Env["NEW"] = "" }},
		{"Env", "env removed", func(r *Recipe) { delete(r.Env, "MODE") }},
		{"Inputs.Path", "input path", func(r *Recipe) { r.Inputs[0].Path = "src/a2.c" }},
		{"Inputs.Mode", "input exec bit", func(r *Recipe) { r.Inputs[0].Mode = 0o755 }},
		{"Inputs.Mode", "input symlink", func(r *Recipe) { r.Inputs[0].Mode = ModeSymlink }},
		{"Inputs.Digest", "input content", func(r *Recipe) { r.Inputs[0].Digest = d("a2") }},
		{"Inputs", "input added", func(r *Recipe) { r.Inputs = append(r.Inputs, FileEntry{Path: "x", Mode: 0o644}) }},
		{"Inputs", "input removed", func(r *Recipe) { r.Inputs = r.Inputs[1:] }},
		{"Outputs", "output changed", func(r *Recipe) { r.Outputs[0] = "out/app2" }},
		{"Outputs", "output added", func(r *Recipe) { r.Outputs = append(r.Outputs, "log.txt") }},
		{"Deps.Name", "dep name", func(r *Recipe) { r.Deps[0].Name = "gen2" }},
		{"Deps.Output", "dep output", func(r *Recipe) { r.Deps[0].Output = d("other") }},
		{"Deps", "dep outputs swapped", func(r *Recipe) { r.Deps[0].Output, r.Deps[1].Output = r.Deps[1].Output, r.Deps[0].Output }},
		{"Deps", "dep removed", func(r *Recipe) { r.Deps = r.Deps[:1] }},
		{"EnvIdentity", "env identity", func(r *Recipe) { r.EnvIdentity = "local linux/arm64" }},
		{"Salt", "cache_key", func(r *Recipe) { r.Salt = "v3" }},
	}

	// Every field of Recipe, FileEntry and DepEntry must have a case.
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.field] = true
	}
	check := func(prefix string, typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if !covered[prefix+f.Name] {
				t.Errorf("field %s%s has no case in this table: hash it and add one", prefix, f.Name)
			}
		}
	}
	check("", reflect.TypeFor[Recipe]())
	check("Inputs.", reflect.TypeFor[FileEntry]())
	check("Deps.", reflect.TypeFor[DepEntry]())

	base, _ := TaskKey(baseRecipe())
	seen := map[Key]string{base: "base"}
	for _, tt := range tests {
		r := baseRecipe()
		tt.mutate(r)
		k, _ := TaskKey(r)
		if prev, dup := seen[k]; dup {
			t.Errorf("%s: key %s equals that of %s", tt.name, k, prev)
		}
		seen[k] = tt.name
		if fast := KeyOf(r); fast != k {
			t.Errorf("%s: KeyOf = %s, TaskKey = %s", tt.name, fast, k)
		}
	}
}

// TestFileValueFormat pins the input and file record value to the
// "%04o %s" form of key recipe v1.
func TestFileValueFormat(t *testing.T) {
	for _, mode := range []uint32{0o600, 0o644, 0o700, 0o755, 0o4755, ModeSymlink} {
		f := FileEntry{Path: "p", Mode: mode, Digest: d("x")}
		if got, want := fileValue(f), fmt.Sprintf("%04o %s", canonicalMode(mode), f.Digest); got != want {
			t.Errorf("mode %o: fileValue = %q, want %q", mode, got, want)
		}
	}
}

// TestTaskKeyFraming checks values that concatenate to the same bytes but
// are different recipes.
func TestTaskKeyFraming(t *testing.T) {
	pairs := []struct {
		name string
		a, b Recipe
	}{
		{"command/shell boundary", Recipe{Command: "ab", Shell: "c"}, Recipe{Command: "a", Shell: "bc"}},
		{"env name/value boundary", Recipe{Env: map[string]string{"a": "b=c"}}, Recipe{Env: map[string]string{"a=b": "c"}}},
		{"env split in two", Recipe{Env: map[string]string{"a": "bc"}}, Recipe{Env: map[string]string{"a": "b", "c": ""}}},
		{"empty env value vs absent", Recipe{Env: map[string]string{"A": ""}}, Recipe{}},
		{"salt vs identity", Recipe{EnvIdentity: "x"}, Recipe{Salt: "x"}},
		{"output vs input path", Recipe{Outputs: []string{"a"}}, Recipe{Inputs: []FileEntry{{Path: "a"}}}},
	}
	for _, p := range pairs {
		ka, _ := TaskKey(&p.a)
		kb, _ := TaskKey(&p.b)
		if ka == kb {
			t.Errorf("%s: same key %s", p.name, ka)
		}
	}
}

func TestTaskKeyCanonicalMode(t *testing.T) {
	key := func(mode uint32) Key {
		k, _ := TaskKey(&Recipe{Inputs: []FileEntry{{Path: "f", Mode: mode, Digest: d("f")}}})
		return k
	}
	same := [][2]uint32{{0o644, 0o664}, {0o644, 0o600}, {0o644, 0o444}, {0o755, 0o744}, {0o755, 0o700}, {0o755, 0o775}}
	for _, p := range same {
		if key(p[0]) != key(p[1]) {
			t.Errorf("modes %04o and %04o give different keys", p[0], p[1])
		}
	}
	diff := [][2]uint32{{0o644, 0o755}, {0o644, ModeSymlink}, {0o755, ModeSymlink | 0o777}}
	for _, p := range diff {
		if key(p[0]) == key(p[1]) {
			t.Errorf("modes %04o and %04o give the same key", p[0], p[1])
		}
	}
}

// TestTaskKeyMatchesSpec re-implements the framing from doc.go independently
// of key.go and checks that TaskKey agrees.
func TestTaskKeyMatchesSpec(t *testing.T) {
	r := &Recipe{
		Command:     "make all",
		Shell:       "sh",
		Dir:         "./sub/",
		Env:         map[string]string{"B": "2", "A": "1"},
		Inputs:      []FileEntry{{Path: "z.txt", Mode: 0o600, Digest: d("z")}, {Path: "run.sh", Mode: 0o700, Digest: d("r")}},
		Outputs:     []string{"out/**", "bin/x"},
		Deps:        []DepEntry{{Name: "up", Output: d("u")}},
		EnvIdentity: "sha256:abc",
		Salt:        "s",
	}
	var stream []byte
	rec := func(label, name, value string) {
		for _, s := range []string{label, name, value} {
			stream = binary.AppendUvarint(stream, uint64(len(s)))
			stream = append(stream, s...)
		}
	}
	rec("version", "", "rustypipe key v1")
	rec("command", "", "make all")
	rec("shell", "", "sh")
	rec("dir", "", "sub")
	rec("env", "A", "1")
	rec("env", "B", "2")
	rec("input", "run.sh", "0755 "+d("r").String())
	rec("input", "z.txt", "0644 "+d("z").String())
	rec("output", "bin/x", "")
	rec("output", "out/**", "")
	rec("dep", "up", d("u").String())
	rec("env_identity", "", "sha256:abc")
	rec("cache_key", "", "s")
	want := Key(blake3.Sum256(stream))

	got, pre := TaskKey(r)
	if got != want {
		var buf bytes.Buffer
		pre.WriteTo(&buf)
		t.Fatalf("TaskKey = %s, spec gives %s; preimage:\n%s", got, want, buf.String())
	}
	var labels []string
	for _, rec := range pre.Records {
		if !slices.Contains(labels, rec.Label) {
			labels = append(labels, rec.Label)
		}
	}
	if !slices.Equal(labels, keyLabels) {
		t.Errorf("labels in preimage order %v, keyLabels %v", labels, keyLabels)
	}
}

func TestPreimageKeyAndJSON(t *testing.T) {
	k, pre := TaskKey(baseRecipe())
	if pre.Key() != k {
		t.Fatalf("Preimage.Key() = %s, TaskKey = %s", pre.Key(), k)
	}
	js, err := json.Marshal(pre)
	if err != nil {
		t.Fatal(err)
	}
	var back Preimage
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if back.Key() != k || !reflect.DeepEqual(&back, pre) {
		t.Errorf("preimage JSON round trip changed it: key %s, want %s", back.Key(), k)
	}
	if !bytes.Contains(js, []byte(`{"label":"input","name":"src/a.c","value":"0644 `+d("a").String()+`"}`)) {
		t.Errorf("unexpected JSON for an input record: %s", js)
	}
}

func TestPreimageWriteTo(t *testing.T) {
	_, pre := TaskKey(baseRecipe())
	var buf bytes.Buffer
	n, err := pre.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteTo = %d, %v; wrote %d bytes", n, err, buf.Len())
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != len(pre.Records) {
		t.Fatalf("%d lines for %d records:\n%s", len(lines), len(pre.Records), buf.String())
	}
	for i, want := range []string{
		`version "" "rustypipe key v1"`,
		`command "" "cc -o out/app src/a.c src/b.c\necho done"`,
	} {
		if lines[i] != want {
			t.Errorf("line %d = %s, want %s", i, lines[i], want)
		}
	}
	if want := `input "tools/gen.sh" "0755 ` + d("gen").String() + `"`; !slices.Contains(lines, want) {
		t.Errorf("no line %s", want)
	}
}

// TestGoldenKey pins key recipe v1: if it fails, the recipe changed, which
// needs a KeyVersion bump (see doc.go). Rewrite with -update.
func TestGoldenKey(t *testing.T) {
	k, pre := TaskKey(baseRecipe())
	var text bytes.Buffer
	pre.WriteTo(&text)
	golden := []struct {
		file string
		got  []byte
	}{
		{"golden_key.txt", []byte(k.String() + "\n")},
		{"golden_preimage.txt", text.Bytes()},
	}
	for _, g := range golden {
		path := filepath.Join("testdata", g.file)
		if *update {
			if err := os.MkdirAll("testdata", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, g.got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -update to create it)", err)
		}
		if !bytes.Equal(g.got, want) {
			t.Errorf("%s: got\n%s\nwant\n%s\nthe key recipe changed: bump KeyVersion, then go test -update", path, g.got, want)
		}
	}
}

func TestDiffPreimages(t *testing.T) {
	base := baseRecipe()
	_, old := TaskKey(base)

	tests := []struct {
		name   string
		mutate func(r *Recipe)
		want   []Change
	}{
		{"identical", func(r *Recipe) {}, nil},
		{"input content", func(r *Recipe) { r.Inputs[1].Digest = d("b2") }, []Change{
			{Kind: Changed, Label: "input", Name: "src/b.c", Old: "0644 " + d("b").String(), New: "0644 " + d("b2").String()},
		}},
		{"env added and removed, command changed", func(r *Recipe) {
			delete(r.Env, "MODE")
			r.Env["A_NEW"] = "1"
			r.Command = "make"
		}, []Change{
			{Kind: Changed, Label: "command", Old: base.Command, New: "make"},
			{Kind: Added, Label: "env", Name: "A_NEW", New: "1"},
			{Kind: Removed, Label: "env", Name: "MODE", Old: "release"},
		}},
		{"dep output and salt", func(r *Recipe) { r.Deps[0].Output = d("x"); r.Salt = "" }, []Change{
			{Kind: Changed, Label: "dep", Name: "gen", Old: d("gen-out").String(), New: d("x").String()},
			{Kind: Changed, Label: "cache_key", Old: "v2", New: ""},
		}},
		{"output added", func(r *Recipe) { r.Outputs = append(r.Outputs, "a.log") }, []Change{
			{Kind: Added, Label: "output", Name: "a.log"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := baseRecipe()
			tt.mutate(r)
			_, cur := TaskKey(r)
			got := DiffPreimages(old, cur)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("DiffPreimages:\n got %v\nwant %v", got, tt.want)
			}
			// The reverse diff swaps added/removed and old/new.
			back := DiffPreimages(cur, old)
			if len(back) != len(tt.want) {
				t.Errorf("reverse diff has %d changes, want %d", len(back), len(tt.want))
			}
		})
	}

	all := DiffPreimages(nil, old)
	if len(all) != len(old.Records) || all[0].Kind != Added || all[0].Label != "version" {
		t.Errorf("diff from nil: %d changes (want %d), first %v", len(all), len(old.Records), all[0])
	}
	if got := (Change{Kind: Changed, Label: "input", Name: "a", Old: "x", New: "y"}).String(); got != `changed input "a": "x" -> "y"` {
		t.Errorf("Change.String() = %s", got)
	}
}

func TestManifestDigest(t *testing.T) {
	base := Manifest{Stdout: d("hello\n"), Files: []FileEntry{
		{Path: "out/app", Mode: 0o755, Digest: d("app")},
		{Path: "out/app.o", Mode: 0o644, Digest: d("o")},
	}}
	want := base.Digest()

	reordered := Manifest{Stdout: base.Stdout, Files: []FileEntry{base.Files[1], base.Files[0]}}
	umask := Manifest{Stdout: base.Stdout, Files: []FileEntry{
		{Path: "out/app", Mode: 0o775, Digest: d("app")},
		{Path: "out/app.o", Mode: 0o664, Digest: d("o")},
	}}
	for name, m := range map[string]Manifest{"reordered": reordered, "umask": umask} {
		if m.Digest() != want {
			t.Errorf("%s: manifest digest changed", name)
		}
	}
	changes := map[string]Manifest{
		"stdout":   {Stdout: d("hello"), Files: base.Files},
		"content":  {Stdout: base.Stdout, Files: []FileEntry{base.Files[0], {Path: "out/app.o", Mode: 0o644, Digest: d("o2")}}},
		"path":     {Stdout: base.Stdout, Files: []FileEntry{base.Files[0], {Path: "out/b.o", Mode: 0o644, Digest: d("o")}}},
		"exec bit": {Stdout: base.Stdout, Files: []FileEntry{base.Files[0], {Path: "out/app.o", Mode: 0o755, Digest: d("o")}}},
		"removed":  {Stdout: base.Stdout, Files: base.Files[:1]},
	}
	for name, m := range changes {
		if m.Digest() == want {
			t.Errorf("%s: manifest digest unchanged", name)
		}
	}

	// Early cutoff: an upstream whose own key changed but whose outputs did
	// not leaves its dependent's key unchanged.
	up1, _ := TaskKey(&Recipe{Command: "gen", Inputs: []FileEntry{{Path: "gen.c", Digest: d("v1")}}})
	up2, _ := TaskKey(&Recipe{Command: "gen", Inputs: []FileEntry{{Path: "gen.c", Digest: d("v2 comment only")}}})
	if up1 == up2 {
		t.Fatal("upstream keys should differ")
	}
	down := func(m Manifest) Key {
		k, _ := TaskKey(&Recipe{Command: "use", Deps: []DepEntry{{Name: "gen", Output: m.Digest()}}})
		return k
	}
	if down(base) != down(reordered) {
		t.Error("dependent key changed although upstream outputs did not")
	}
	if down(base) == down(changes["content"]) {
		t.Error("dependent key unchanged although upstream outputs changed")
	}
	if empty := (Manifest{}); empty.Digest() == want {
		t.Error("empty manifest digests like a full one")
	}
}

// TestPreimageAppendJSON checks AppendJSON against json.Marshal on empty
// and nil preimages and on records whose strings need escaping, with and
// without names.
func TestPreimageAppendJSON(t *testing.T) {
	cases := []*Preimage{
		{},
		{Records: []Record{}},
		{Records: []Record{{Label: LabelCommand, Value: "echo \"<hi>\" & \\\n\t\x01\u2028 \xff"}}},
		{Records: []Record{{Label: "input", Name: "in/ä b.txt", Value: "0644 abc"}, {Label: "env", Name: "A", Value: ""}}},
	}
	for _, p := range cases {
		want, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Errorf("AppendJSON:\n got %s\nwant %s", got, want)
		}
	}
}
