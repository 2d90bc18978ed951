package build

import (
	"strings"
	"testing"
	"time"
)

func TestSafeName(t *testing.T) {
	seen := map[string]string{}
	for _, tc := range []struct{ in, prefix string }{
		{"build", "build"},
		{"lint-go_1.2", "lint-go_1.2"},
		{"a/b", "a_b-"},
		{"a:b", "a_b-"},
		{"a b", "a_b-"},
		{"CON", "_CON-"},
		{"nul.txt", "_nul.txt-"},
		{"com1", "_com1-"},
		{"run", "_run-"},
		{"trailing.", "trailing-"},
		{".hidden", "_.hidden-"},
		{"ünï", "_n_-"},
	} {
		got := safeName(tc.in)
		if !strings.HasPrefix(got, tc.prefix) {
			t.Errorf("safeName(%q) = %q, want prefix %q", tc.in, got, tc.prefix)
		}
		if strings.ContainsAny(got, `/\:*?"<>| `) {
			t.Errorf("safeName(%q) = %q has a character Windows refuses", tc.in, got)
		}
		if other, dup := seen[got]; dup {
			t.Errorf("safeName(%q) = safeName(%q) = %q", tc.in, other, got)
		}
		seen[got] = tc.in
	}
	if safeName("a/b") == safeName("a:b") {
		t.Error("two names that differ only in unsafe characters share a file")
	}
}

func TestRunIDsSortByTime(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a, b := NewRunID(t0), NewRunID(t0.Add(time.Millisecond))
	if !(a < b) {
		t.Fatalf("run ids %q and %q do not sort by time", a, b)
	}
}

func TestRetryDelaysGrowWithBackoff(t *testing.T) {
	for _, jitter := range []float64{0, 0.5, 0.999} {
		p := retryPolicy{attempts: 6, delay0: 100 * time.Millisecond, backoff: 2, max: time.Second, jitter: func() float64 { return jitter }}
		prev := time.Duration(0)
		for n := 1; n < 6; n++ {
			d := p.delay(n)
			if d < prev {
				t.Fatalf("jitter %v: delay after attempt %d is %v, less than %v before", jitter, n, d, prev)
			}
			if d > time.Second {
				t.Fatalf("jitter %v: delay %v above max_delay", jitter, d)
			}
			prev = d
		}
	}
}
