package hashing

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkDigest1MiB measures hashing throughput on 1 MiB buffers, the size
// Memo reads files with.
func BenchmarkDigest1MiB(b *testing.B) {
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	b.Run("DigestBytes", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			DigestBytes(buf)
		}
	})
	b.Run("Digester", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		dg := NewDigester()
		for b.Loop() {
			dg.Reset()
			dg.Write(buf)
			dg.Sum()
		}
	})
	// One buffer per goroutine, GOMAXPROCS goroutines: the aggregate rate
	// of a build hashing several files at once, as -j workers do. ns/op is
	// wall time per buffer over all goroutines.
	b.Run("DigestBytesParallel", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		b.RunParallel(func(pb *testing.PB) {
			own := append([]byte(nil), buf...)
			for pb.Next() {
				DigestBytes(own)
			}
		})
	})
}

// BenchmarkTaskKey: 1 input, 1 output, 2 deps, 3 env vars.
func BenchmarkTaskKey(b *testing.B) {
	r := &Recipe{
		Command:     "go build -o bin/app ./cmd/app",
		Shell:       "bash",
		Dir:         ".",
		Env:         map[string]string{"CGO_ENABLED": "0", "GOOS": "linux", "GOFLAGS": "-trimpath"},
		Inputs:      []FileEntry{{Path: "cmd/app/main.go", Mode: 0o644, Digest: d("main")}},
		Outputs:     []string{"bin/app"},
		Deps:        []DepEntry{{Name: "generate", Output: d("gen")}, {Name: "vet", Output: d("vet")}},
		EnvIdentity: "local linux/amd64",
	}
	b.Run("TaskKey", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			TaskKey(r)
		}
	})
	b.Run("KeyOf", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			KeyOf(r)
		}
	})
	// The preimage's JSON, stored with every task a build runs.
	_, pre := TaskKey(r)
	b.Run("PreimageMarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(pre); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("PreimageAppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			pre.AppendJSON(nil)
		}
	})
}

// BenchmarkMemoHit measures a lookup of an unchanged file: one lstat and a
// map hit, no read.
func BenchmarkMemoHit(b *testing.B) {
	root := b.TempDir()
	writeFile(b, root, "src/main.go", "package main\nfunc main() {}\n", 0o644, past)
	m := openTestMemo(b, filepath.Join(root, ".rustypipe", "statmemo"))
	mustDigest(b, m, root, "src/main.go")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Digest(root, "src/main.go"); err != nil {
			b.Fatal(err)
		}
	}
	if m.hashed.Load() != 1 {
		b.Fatalf("%d reads, want 1", m.hashed.Load())
	}
}

// BenchmarkMemoMissSmall measures hashing a small file written just now,
// which the memo cannot answer: what a build does for every output of a
// task it ran.
func BenchmarkMemoMissSmall(b *testing.B) {
	root := b.TempDir()
	writeFile(b, root, "out/7.txt", "7\n", 0o644, time.Now())
	m := openTestMemo(b, filepath.Join(root, ".rustypipe", "statmemo"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Digest(root, "out/7.txt"); err != nil {
			b.Fatal(err)
		}
	}
}
