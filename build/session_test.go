package build

import (
	"context"
	"io"
	"testing"

	"github.com/rustypipe/rustypipe/cas"
)

func newTestSession(t *testing.T) (*session, cas.Options) {
	t.Helper()
	o := cas.Options{Dir: t.TempDir(), LockWait: -1}
	st, err := cas.Open(context.Background(), o) // creates the store
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return newSession(o, true, NewJSON(io.Discard, io.Discard)), o
}

// A prefetched session is the one the next lookup gets.
func TestSessionPrefetchServesLookup(t *testing.T) {
	s, _ := newTestSession(t)
	defer s.close()
	<-s.prefetch()
	s.mu.Lock()
	pre := s.st
	s.mu.Unlock()
	if pre == nil {
		t.Fatal("prefetch opened no store")
	}
	st, err := s.acquire(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	s.release()
	if st != pre {
		t.Error("the lookup opened a second store instead of using the prefetched one")
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st != nil {
		t.Error("close left the prefetched store open")
	}
}

// Prefetch neither waits for another holder of the store nor opens
// anything after close.
func TestSessionPrefetchGivesWay(t *testing.T) {
	s, o := newTestSession(t)
	holder, err := cas.Open(context.Background(), o) // writable: exclusive
	if err != nil {
		t.Fatal(err)
	}
	<-s.prefetch() // returns although the store is held
	s.mu.Lock()
	opened := s.st != nil
	s.mu.Unlock()
	if opened {
		t.Error("prefetch opened a store another holder had locked")
	}
	if err := holder.Close(); err != nil {
		t.Fatal(err)
	}

	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	<-s.prefetch()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st != nil {
		s.closeLocked()
		t.Error("prefetch opened a store after close")
	}
}
