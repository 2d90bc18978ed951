package dag

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

// layered returns Build's arguments for layers × width nodes where each node
// depends on 2-3 nodes of the previous layer.
func layered(layers, width int) ([]string, [][]string) {
	r := rand.New(rand.NewPCG(7, 7))
	n := layers * width
	names := make([]string, n)
	deps := make([][]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("L%d/n%d", i/width, i%width)
	}
	for l := 1; l < layers; l++ {
		prev := names[(l-1)*width : l*width]
		for j := range width {
			k := 2 + r.IntN(2)
			ds := make([]string, k)
			for x := range ds {
				ds[x] = prev[r.IntN(width)]
			}
			deps[l*width+j] = ds
		}
	}
	return names, deps
}

func nop(context.Context, int) error { return nil }

// BenchmarkWalk100k is Build + Walk over 100 layers × 1,000 trivial nodes
// with one worker per CPU: the scheduler's own overhead.
func BenchmarkWalk100k(b *testing.B) {
	names, deps := layered(100, 1000)
	opts := WalkOptions{Workers: runtime.NumCPU()}
	b.ReportAllocs()
	for b.Loop() {
		g, err := Build(names, deps)
		if err != nil {
			b.Fatal(err)
		}
		out := g.Walk(context.Background(), opts, nop)
		if out[len(out)-1].Status != Succeeded {
			b.Fatal(out[len(out)-1])
		}
	}
}

// BenchmarkBuild100k and BenchmarkWalkOnly100k split BenchmarkWalk100k.
func BenchmarkBuild100k(b *testing.B) {
	names, deps := layered(100, 1000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(names, deps); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWalkOnly100k(b *testing.B) {
	g, err := Build(layered(100, 1000))
	if err != nil {
		b.Fatal(err)
	}
	for _, workers := range []int{1, runtime.NumCPU(), 8} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			opts := WalkOptions{Workers: workers}
			b.ReportAllocs()
			for b.Loop() {
				g.Walk(context.Background(), opts, nop)
			}
		})
	}
}
