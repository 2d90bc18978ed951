package kube

import (
	"bytes"
	"io"
	"testing"
)

// TestGateWaitsForBothStreams plays the gate's shell: the task is released
// ("go") only after a probe came back on stdout and on stderr, probes that
// come back late are dropped, and the task's output passes untouched.
func TestGateWaitsForBothStreams(t *testing.T) {
	g := newGate()
	var out, errOut bytes.Buffer
	fo := &probeFilter{probe: g.probe, echoed: func() { g.echoed(0) }, w: &out}
	fe := &probeFilter{probe: g.probe, echoed: func() { g.echoed(1) }, w: &errOut}
	buf := make([]byte, 4096)

	n, err := g.Read(buf)
	if err != nil || !bytes.Equal(buf[:n], g.probe) {
		t.Fatalf("first read = %q, %v; want the probe", buf[:n], err)
	}
	// Only stdout is connected so far: the gate keeps probing.
	fo.Write(g.probe[:5])
	fo.Write(g.probe[5:])
	n, err = g.Read(buf)
	if err != nil || !bytes.Equal(buf[:n], g.probe) {
		t.Fatalf("read with one stream echoed = %q, %v; want another probe", buf[:n], err)
	}
	fe.Write(g.probe)
	n, err = g.Read(buf)
	if err != nil || string(buf[:n]) != "go\n" {
		t.Fatalf("read with both echoed = %q, %v; want go", buf[:n], err)
	}
	select {
	case <-g.released:
	default:
		t.Fatal("released not closed after go")
	}
	if _, err := g.Read(buf); err != io.EOF {
		t.Fatalf("read after go = %v, want EOF", err)
	}
	if n := g.probes(); n != 2 {
		t.Errorf("probes() = %d, want the 2 sent", n)
	}
	// The second probe's echo arrives before the task's output and is
	// dropped; output that merely starts like a probe is kept.
	fo.Write(append(append([]byte{}, g.probe...), "task says hi\n"...))
	fe.Write([]byte("rustypipe-att"))
	fe.flush()
	if out.String() != "task says hi\n" {
		t.Errorf("stdout = %q", out.String())
	}
	if errOut.String() != "rustypipe-att" {
		t.Errorf("stderr = %q, want the held-back bytes flushed", errOut.String())
	}
	if g.abort() {
		t.Error("abort after release reported success")
	}
}

func TestGateAbortBeforeRelease(t *testing.T) {
	g := newGate()
	buf := make([]byte, 4096)
	g.Read(buf)
	done := make(chan error, 1)
	go func() { _, err := g.Read(buf); done <- err }()
	if !g.abort() {
		t.Fatal("abort before release failed")
	}
	for err := range done {
		if err != io.EOF {
			// A probe may be returned first if the timer fired; then the
			// next read must end.
			if _, err2 := g.Read(buf); err2 != io.EOF {
				t.Fatalf("read after abort = %v", err2)
			}
		}
		break
	}
}
