package pipeline

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestLoadCachedMatchesLoadAndNoticesChanges(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "rustypipe.yaml")
	memo := filepath.Join(dir, ".rustypipe", "pipeline.memo")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("name: a\nbackends: {b: {type: docker, image: x, mounts: [a, b], memory: 5}}\ntasks:\n  - name: t\n    run: echo {{ vars.v }}\n    retry: {attempts: 3, delay: 1s}\nvars: {v: one}\n")
	want, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // the first call writes the memo, the second reads it
		got, err := LoadCached(file, memo, "stamp")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Tasks, want.Tasks) || !reflect.DeepEqual(got.Vars, want.Vars) || !reflect.DeepEqual(got.Backends, want.Backends) {
			t.Fatalf("call %d: LoadCached differs from Load:\n%+v\n%+v", i, got, want)
		}
		if got.Task("t") == nil {
			t.Fatalf("call %d: index not rebuilt", i)
		}
	}
	if _, err := os.Stat(memo); err != nil {
		t.Fatalf("no memo written: %v", err)
	}
	write("name: a\ntasks:\n  - name: u\n    run: echo changed\n")
	got, err := LoadCached(file, memo, "stamp")
	if err != nil || got.Task("u") == nil || got.Task("t") != nil {
		t.Fatalf("a changed file was not parsed again: %v, %+v", err, got)
	}
	write("tasks:\n  - name: bad\n")
	if _, err := LoadCached(file, memo, "stamp"); err == nil {
		t.Fatal("an invalid pipeline loaded from the memo")
	}
	os.WriteFile(memo, []byte("garbage"), 0o644)
	write("tasks:\n  - name: ok\n    run: echo\n")
	if p, err := LoadCached(file, memo, "stamp"); err != nil || p.Task("ok") == nil {
		t.Fatalf("a corrupt memo broke loading: %v", err)
	}
}

// TestMemoCodecRoundTrip encodes the feature-complete example and a
// pipeline with every field set, and checks that decoding gives them back.
func TestMemoCodecRoundTrip(t *testing.T) {
	full, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Every field of Task, Retry and Pos set, nil and empty slices and maps,
	// a position in another file.
	every := &Pipeline{File: "p.yaml", Name: "n", Description: "d", Concurrency: 3, StopOnFail: true,
		Env: map[string]string{"A": "1", "B": ""}, Vars: map[string]string{}, Shell: "bash", Dir: "sub",
		Backends: map[string]*BackendConfig{
			"box": {Name: "box", Type: "docker", Pos: Pos{File: "p.yaml", Line: 2, Col: 3}, Options: map[string]any{
				"image": "busybox", "cpus": 1.5, "memory": 512, "neg": -3, "pull": false, "none": nil,
				"mounts": []any{"a:/a", map[string]any{"src": "b", "ro": true}}, "empty": []any{}, "nolist": []any(nil),
				"env": map[string]any{}, "nomap": map[string]any(nil),
			}},
			"bare": {Name: "bare", Type: "local", Pos: Pos{File: "other.yaml", Line: 1, Col: 1}},
		},
		Tasks: []*Task{{
			Name: "t", Run: "echo {{ vars.x }}", DependsOn: []string{"u", "v"}, Retries: 2, Timeout: 90 * time.Second,
			Backend: "box", CacheKey: "salt", ContinueOnFail: true, Env: map[string]string{"E": "é"}, Vars: map[string]string{"x": "y"},
			Shell: "sh", Dir: "d", Inputs: []string{"src/**/*.go"}, Outputs: []string{}, Description: "desc",
			Retry: &Retry{Attempts: 3, Delay: time.Second, Backoff: 1.5, MaxDelay: time.Minute, OnExitCodes: []int{-1, 0, 255}},
			Image: "img@sha256:00", Pos: Pos{File: "other.yaml", Line: 7, Col: 3},
		}, {Name: "u", Run: "true", Retry: &Retry{Attempts: 1}, Pos: Pos{File: "p.yaml", Line: 9, Col: 5}}},
	}
	for _, p := range []*Pipeline{full, every} {
		b, err := encodeMemoPipeline(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeMemoPipeline(b)
		if err != nil {
			t.Fatalf("%s: %v", p.File, err)
		}
		got.byName, got.keyPos, got.source = p.byName, p.keyPos, p.source
		if !reflect.DeepEqual(got, p) {
			t.Errorf("%s: round trip changed the pipeline:\n got %+v\nwant %+v", p.File, got, p)
		}
		// Every truncation is an error, never a panic or a partial pipeline.
		for n := range len(b) {
			if _, err := decodeMemoPipeline(b[:n]); err == nil {
				t.Fatalf("%s: decoding the first %d of %d bytes succeeded", p.File, n, len(b))
			}
		}
	}
}

// TestMemoCodecCoversEveryField fails when a field is added to a type the
// memo codec writes: add it to encodeMemoPipeline and decodeMemoPipeline
// (and to TestMemoCodecRoundTrip), then to this list.
func TestMemoCodecCoversEveryField(t *testing.T) {
	known := map[reflect.Type]int{
		reflect.TypeFor[Pipeline]():      14, // 11 encoded; byName is rebuilt, keyPos absent, source set by the loader
		reflect.TypeFor[Task]():          18,
		reflect.TypeFor[Retry]():         5,
		reflect.TypeFor[Pos]():           3,
		reflect.TypeFor[BackendConfig](): 4,
	}
	for typ, n := range known {
		if typ.NumField() != n {
			t.Errorf("%s has %d fields, the memo codec knows %d", typ, typ.NumField(), n)
		}
	}
}

// Source is the bytes that were parsed, whether from the memo or not.
func TestLoadCachedSource(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "p.yaml")
	src := []byte("tasks:\n  - name: a\n    run: echo a\n")
	if err := os.WriteFile(file, src, 0o644); err != nil {
		t.Fatal(err)
	}
	memo := filepath.Join(dir, "memo")
	for i, how := range []string{"parsed", "from the memo"} {
		p, err := LoadCached(file, memo, "stamp")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(p.Source(), src) {
			t.Errorf("load %d (%s): Source() = %q, want %q", i, how, p.Source(), src)
		}
	}
	// The bytes given win over the file's current content.
	other := []byte("tasks:\n  - name: b\n    run: echo b\n")
	p, err := LoadCachedSource(file, other, memo, "stamp")
	if err != nil {
		t.Fatal(err)
	}
	if p.Task("b") == nil || p.Task("a") != nil || !bytes.Equal(p.Source(), other) {
		t.Errorf("LoadCachedSource did not parse the bytes it was given: tasks %v", p.Tasks)
	}
}
