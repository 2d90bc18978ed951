package local

import "testing"

func TestParseStat(t *testing.T) {
	tests := []struct {
		in        string
		wantState byte
		wantPgrp  int
		wantOK    bool
	}{
		{"123 (sleep) S 1 120 120 0 -1", 'S', 120, true},
		{"7 (a b) c) Z 1 7 7 0", 'Z', 7, true},
		{"8 ((sd-pam)) R 7 8 8", 'R', 8, true},
		{"9 (x) S 1", 0, 0, false},
		{"9 (x) S 1 notanumber", 0, 0, false},
		{"no parenthesis", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tc := range tests {
		state, pgrp, ok := parseStat([]byte(tc.in))
		if state != tc.wantState || pgrp != tc.wantPgrp || ok != tc.wantOK {
			t.Errorf("parseStat(%q) = %q, %d, %v; want %q, %d, %v",
				tc.in, state, pgrp, ok, tc.wantState, tc.wantPgrp, tc.wantOK)
		}
	}
}
