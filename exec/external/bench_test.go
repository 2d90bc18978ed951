package external_test

import (
	"context"
	"fmt"
	"io"
	"testing"
)

// BenchmarkRoundTrip is one run that prints nothing, through the protocol
// to a helper that is already started.
func BenchmarkRoundTrip(b *testing.B) {
	f := newFixture(b, fixtureOpts{})
	s := spec(b, "#!helper:spew 0")
	for b.Loop() {
		if _, err := f.b.Run(context.Background(), s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkThroughput streams 8 MiB of stdout and 4 MiB of stderr per run
// through the protocol.
func BenchmarkThroughput(b *testing.B) {
	f := newFixture(b, fixtureOpts{})
	const n = 8 << 20
	b.SetBytes(n + n/2)
	s := spec(b, fmt.Sprintf("#!helper:spew %d", n))
	s.Stdout, s.Stderr = io.Discard, io.Discard
	for b.Loop() {
		if _, err := f.b.Run(context.Background(), s); err != nil {
			b.Fatal(err)
		}
	}
}
