// Package atomicfile writes a file whole or not at all: the content goes
// to a temporary file in the same directory, which is then renamed over
// the target. A reader sees the old content or the new, never a part, and
// processes writing the same file at once do not mix their bytes; a crash
// leaves at most a temporary file behind, whose name starts with a dot
// and contains ".tmp-".
package atomicfile
