package pipeline

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string // substring of the error; "" means success
	}{
		{in: "90", want: 90 * time.Second},
		{in: "0", want: 0},
		{in: "1.5", want: 1500 * time.Millisecond},
		{in: " 30 ", want: 30 * time.Second},
		{in: "90s", want: 90 * time.Second},
		{in: "1m30s", want: 90 * time.Second},
		{in: "2h", want: 2 * time.Hour},
		{in: "1d", want: 24 * time.Hour},
		{in: "7d", want: 7 * 24 * time.Hour},
		{in: "12h", want: 12 * time.Hour},
		{in: "1d12h", want: 36 * time.Hour},
		{in: "1w", want: 7 * 24 * time.Hour},
		{in: "1.5h", want: 90 * time.Minute},
		{in: "250ms", want: 250 * time.Millisecond},
		{in: "3us", want: 3 * time.Microsecond},
		{in: "3µs", want: 3 * time.Microsecond},
		{in: "10ns", want: 10},
		{in: "", wantErr: "empty"},
		{in: "-5s", wantErr: "negative"},
		{in: "-5", wantErr: "negative"},
		{in: "1x", wantErr: `unknown unit "x"`},
		{in: "1h30", wantErr: "missing unit after 30"},
		{in: "h", wantErr: "expected a number"},
		{in: "1..5s", wantErr: "malformed number"},
		{in: "1e3", wantErr: `unknown unit "e"`},
		{in: "inf", wantErr: "expected a number"},
		{in: "1h 30m", wantErr: `unknown unit "h "`},
		{in: "300000d", wantErr: "too large"},
		{in: "9223372036854775807", wantErr: "too large"},
		{in: "200000d200000d", wantErr: "too large"},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseDuration(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{in: "1024", want: 1024},
		{in: "0", want: 0},
		{in: "500MB", want: 500_000_000},
		{in: "500mb", want: 500_000_000},
		{in: "500M", want: 500_000_000},
		{in: "2GiB", want: 2 << 30},
		{in: "2Gi", want: 2 << 30},
		{in: "2 GiB", want: 2 << 30},
		{in: "1.5GB", want: 1_500_000_000},
		{in: "0.5KiB", want: 512},
		{in: "10kB", want: 10_000},
		{in: "3TiB", want: 3 << 40},
		{in: "1PB", want: 1e15},
		{in: "12B", want: 12},
		{in: "1.9B", want: 1},
		{in: "", wantErr: "empty"},
		{in: "-1MB", wantErr: "negative"},
		{in: "MB", wantErr: "expected a number"},
		{in: "5 XB", wantErr: `unknown unit "XB"`},
		{in: "1e6", wantErr: `unknown unit "e6"`},
		{in: "10000PB", wantErr: "too large"},
		{in: "99999999999999999999", wantErr: "too large"},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseSize(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestEditDistanceAndSuggest(t *testing.T) {
	dist := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"abc", "abc", 0},
		{"depend_on", "depends_on", 1},
		{"retires", "retries", 1}, // transposition
		{"rn", "run", 1},
		{"kitten", "sitting", 3},
		{"", "env", 3},
	}
	for _, tt := range dist {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
	sugg := []struct {
		s          string
		candidates []string
		want       string
	}{
		{"depend_on", taskKeys, ` (did you mean "depends_on"?)`},
		{"Name", taskKeys, ` (did you mean "name"?)`},
		{"timout", taskKeys, ` (did you mean "timeout"?)`},
		{"dir", []string{"env"}, ""},
		{"xyzzy", taskKeys, ""},
		{"x", nil, ""},
		{"run", []string{"run"}, ""},
	}
	for _, tt := range sugg {
		if got := suggest(tt.s, tt.candidates); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.s, got, tt.want)
		}
	}
}
