package pipeline

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
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
