package build

import "sync"

// preload is a value loaded in the background that whoever needs it first
// may load itself: get runs the load on the caller's goroutine when the
// background goroutine has not started it yet. On a machine whose cores
// are all busy, a goroutine started early may not run for milliseconds; a
// caller then waiting for it would wait for nothing.
type preload[T any] struct {
	once sync.Once
	load func() T
	val  T
}

// startPreload starts loading in the background.
func startPreload[T any](load func() T) *preload[T] {
	p := &preload[T]{load: load}
	go p.get()
	return p
}

// get returns the value, loading it now unless a load has begun, in which
// case it waits for that one.
func (p *preload[T]) get() T {
	p.once.Do(func() { p.val = p.load() })
	return p.val
}
