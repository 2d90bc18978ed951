package backendkit

import (
	"context"
	"errors"
	"testing"
)

func TestLimiter(t *testing.T) {
	ctx := context.Background()
	none := NewLimiter(0)
	for range 3 {
		if err := none.Acquire(ctx); err != nil {
			t.Fatalf("unbounded Acquire: %v", err)
		}
	}
	none.Release()

	l := NewLimiter(2)
	for range 2 {
		if err := l.Acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	full, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.Acquire(full); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire on a full limiter with a done ctx = %v, want context.Canceled", err)
	}
	if got := len(l.sem); got != 2 {
		t.Fatalf("slots held after a refused Acquire = %d, want 2", got)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := l.Acquire(ctx); err != nil {
			t.Error(err)
		}
	}()
	l.Release() // lets the waiting Acquire through
	<-done
	if got := len(l.sem); got != 2 {
		t.Errorf("slots held = %d, want 2", got)
	}
}
