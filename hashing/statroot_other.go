//go:build !linux

package hashing

import "path/filepath"

// StatRoot stats paths relative to a directory (see the Linux version;
// here it joins paths and calls Lstat).
type StatRoot struct {
	root string
}

// OpenStatRoot returns a StatRoot for root; Close it when done.
func OpenStatRoot(root string) (*StatRoot, error) { return &StatRoot{root: root}, nil }

// Close releases nothing here.
func (r *StatRoot) Close() error { return nil }

// Lstat is Lstat of root/rel, rel "/"-separated.
func (r *StatRoot) Lstat(rel string) (Stat, bool, error) {
	return Lstat(filepath.Join(r.root, filepath.FromSlash(rel)))
}
