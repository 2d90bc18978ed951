package build

import (
	"sync"
	"sync/atomic"
	"testing"
)

// A preload runs its load exactly once, whoever gets there first, and every
// get sees its value.
func TestPreloadLoadsOnce(t *testing.T) {
	for range 100 {
		var loads atomic.Int32
		p := startPreload(func() int { loads.Add(1); return 42 })
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if v := p.get(); v != 42 {
					t.Errorf("get = %d, want 42", v)
				}
			})
		}
		wg.Wait()
		if n := loads.Load(); n != 1 {
			t.Fatalf("loaded %d times, want once", n)
		}
	}
}
