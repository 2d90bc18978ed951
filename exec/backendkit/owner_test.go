package backendkit

import (
	"os"
	"testing"
)

func TestParseOwner(t *testing.T) {
	tests := []struct {
		in   string
		host string
		pid  int
		ok   bool
	}{
		{"vm:123", "vm", 123, true},
		{"build-1:42", "build-1", 42, true},
		{"build.example.com:1", "build.example.com", 1, true},
		{"::1:99", "::1", 99, true},
		{"vm", "", 0, false},
		{":12", "", 0, false},
		{"vm:", "", 0, false},
		{"vm:0", "", 0, false},
		{"vm:-3", "", 0, false},
		{"vm:x", "", 0, false},
	}
	for _, tc := range tests {
		host, pid, ok := ParseOwner(tc.in)
		if host != tc.host || pid != tc.pid || ok != tc.ok {
			t.Errorf("ParseOwner(%q) = %q, %d, %v; want %q, %d, %v", tc.in, host, pid, ok, tc.host, tc.pid, tc.ok)
		}
	}
	if got := Owner("vm", 7); got != "vm:7" {
		t.Errorf("Owner = %q, want vm:7", got)
	}
	if host, pid, ok := ParseOwner(Owner("h", os.Getpid())); host != "h" || pid != os.Getpid() || !ok {
		t.Errorf("ParseOwner(Owner) = %q, %d, %v", host, pid, ok)
	}
}

func TestExitResult(t *testing.T) {
	tests := []struct {
		code     int64
		stopped  bool
		wantCode int
		wantSig  string
	}{
		{0, false, 0, ""},
		{3, false, 3, ""},
		{143, false, 143, ""}, // the task's own exit code
		{137, false, 137, ""},
		{143, true, -1, "terminated"},
		{137, true, -1, "killed"},
		{130, true, -1, "interrupt"},
		{129, true, -1, "hangup"},
		{131, true, -1, "quit"},
		{134, true, -1, "aborted"},
		{141, true, -1, "broken pipe"},
		{142, true, -1, "alarm clock"},
		{138, true, -1, "signal 10"},
		{1, true, 1, ""}, // exited on its own during the grace period
		{200, true, 200, ""},
		{255, true, 255, ""},
	}
	for _, tc := range tests {
		code, sig := ExitResult(tc.code, tc.stopped)
		if code != tc.wantCode || sig != tc.wantSig {
			t.Errorf("ExitResult(%d, %v) = %d, %q; want %d, %q", tc.code, tc.stopped, code, sig, tc.wantCode, tc.wantSig)
		}
	}
}

func TestProcessAliveSelf(t *testing.T) {
	if !ProcessAlive(os.Getpid()) {
		t.Error("ProcessAlive(own pid) = false")
	}
}
