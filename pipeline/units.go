package pipeline

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// durationUnits are the units ParseDuration accepts, Go's own plus days and
// weeks (a day is 24 hours: durations here are elapsed time, not calendar
// time).
var durationUnits = map[string]time.Duration{
	"ns": time.Nanosecond,
	"us": time.Microsecond,
	"µs": time.Microsecond, // U+00B5 micro sign, as Go accepts
	"μs": time.Microsecond, // U+03BC Greek mu, as Go accepts
	"ms": time.Millisecond,
	"s":  time.Second,
	"m":  time.Minute,
	"h":  time.Hour,
	"d":  24 * time.Hour,
	"w":  7 * 24 * time.Hour,
}

// ParseDuration parses a duration as written in pipeline files and on the
// command line: a bare number of seconds ("90", "1.5"), or one or more
// number-unit pairs in Go's syntax extended with days and weeks ("90s",
// "1m30s", "2h", "7d", "1d12h"). Negative durations are an error.
func ParseDuration(s string) (time.Duration, error) {
	orig := s
	s = strings.TrimSpace(s)
	bad := func(why string) (time.Duration, error) {
		return 0, fmt.Errorf("invalid duration %q: %s", orig, why)
	}
	if s == "" {
		return bad("empty")
	}
	if s[0] == '-' {
		return bad("negative")
	}
	if isPlainNumber(s) {
		return secondsDuration(s)
	}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && (isDigit(s[i]) || s[i] == '.') {
			i++
		}
		num := s[:i]
		if num == "" {
			return bad(fmt.Sprintf("expected a number at %q", s))
		}
		if !isPlainNumber(num) {
			return bad(fmt.Sprintf("malformed number %q", num))
		}
		s = s[i:]
		j := 0
		for j < len(s) && !isDigit(s[j]) && s[j] != '.' {
			j++
		}
		unit := s[:j]
		s = s[j:]
		if unit == "" {
			return bad(fmt.Sprintf("missing unit after %s (use s, m, h or d)", num))
		}
		mult, ok := durationUnits[unit]
		if !ok {
			return bad(fmt.Sprintf("unknown unit %q (use ns, us, ms, s, m, h, d or w)", unit))
		}
		d, ok := scale(num, float64(mult))
		if !ok || int64(total) > math.MaxInt64-d {
			return bad("too large")
		}
		total += time.Duration(d)
	}
	return total, nil
}

// secondsDuration converts a plain number of seconds.
func secondsDuration(num string) (time.Duration, error) {
	d, ok := scale(num, float64(time.Second))
	if !ok {
		return 0, fmt.Errorf("invalid duration %q: too large", num)
	}
	return time.Duration(d), nil
}

// durationOfSeconds converts a number of seconds decoded from YAML.
func durationOfSeconds(f float64) (time.Duration, error) {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return 0, fmt.Errorf("invalid duration %v", f)
	case f < 0:
		return 0, fmt.Errorf("invalid duration %v: negative", f)
	case f*float64(time.Second) >= math.MaxInt64:
		return 0, fmt.Errorf("invalid duration %v: too large", f)
	}
	return time.Duration(math.Round(f * float64(time.Second))), nil
}

// scale multiplies a plain non-negative decimal by mult, reporting overflow.
// Whole numbers are multiplied exactly; fractions go through float64 and are
// rounded to the nearest unit.
func scale(num string, mult float64) (int64, bool) {
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || (n != 0 && int64(mult) > math.MaxInt64/n) {
			return 0, false
		}
		return n * int64(mult), true
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, false
	}
	v := math.Round(f * mult)
	if v >= math.MaxInt64 {
		return 0, false
	}
	return int64(v), true
}

// isPlainNumber reports whether s is digits with at most one '.', and at
// least one digit: no sign, exponent, hex, "inf" or "nan".
func isPlainNumber(s string) bool {
	digits, dots := 0, 0
	for i := 0; i < len(s); i++ {
		switch {
		case isDigit(s[i]):
			digits++
		case s[i] == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// sizeUnits are the units ParseSize accepts, lower-cased. As in Kubernetes
// quantities, K, M, G... are decimal (SI) and Ki, Mi, Gi... binary (IEC),
// with or without a trailing B.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1e3, "kb": 1e3, "ki": 1 << 10, "kib": 1 << 10,
	"m": 1e6, "mb": 1e6, "mi": 1 << 20, "mib": 1 << 20,
	"g": 1e9, "gb": 1e9, "gi": 1 << 30, "gib": 1 << 30,
	"t": 1e12, "tb": 1e12, "ti": 1 << 40, "tib": 1 << 40,
	"p": 1e15, "pb": 1e15, "pi": 1 << 50, "pib": 1 << 50,
}

// ParseSize parses a size in bytes: a number with an optional unit, decimal
// (kB, MB, GB, TB, PB; also K, M, G...) or binary (KiB, MiB, GiB, TiB, PiB;
// also Ki, Mi...), case-insensitive, with optional space: "1024", "500MB",
// "2GiB", "1.5 GB". Fractions are rounded down to whole bytes. Negative
// sizes are an error.
func ParseSize(s string) (int64, error) {
	orig := s
	s = strings.TrimSpace(s)
	bad := func(why string) (int64, error) {
		return 0, fmt.Errorf("invalid size %q: %s", orig, why)
	}
	if s == "" {
		return bad("empty")
	}
	if s[0] == '-' {
		return bad("negative")
	}
	i := 0
	for i < len(s) && (isDigit(s[i]) || s[i] == '.') {
		i++
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	if !isPlainNumber(num) {
		return bad("expected a number followed by an optional unit such as MB or GiB")
	}
	mult, ok := sizeUnits[unit]
	if !ok {
		return bad(fmt.Sprintf("unknown unit %q (use B, kB, MB, GB, TB, KiB, MiB, GiB or TiB)", strings.TrimSpace(s[i:])))
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || (n != 0 && mult > math.MaxInt64/n) {
			return bad("too large")
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return bad(err.Error())
	}
	v := math.Floor(f * float64(mult))
	if v >= math.MaxInt64 {
		return bad("too large")
	}
	return int64(v), nil
}
