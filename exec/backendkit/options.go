package backendkit

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Options decodes a backend's option map key by key. Each decoding method
// marks its key as known and, when the key is present, converts its value
// and records the conversion's error; Err then reports the first unknown
// or bad key in sorted order. Decoding into a destination happens only for
// present keys, so defaults set beforehand stay. Not safe for concurrent
// use; an Options lives for one ParseConfig call.
type Options struct {
	backend string
	opts    map[string]any
	known   []string
	errs    map[string]error

	// WrapKey, when set, replaces the default wrapping of a key's error,
	// `<backend>: config key "<key>": <err>`.
	WrapKey func(key string, err error) error
	// Unknown, when set, replaces the default error for a key no method
	// named, `<backend>: unknown config key "<key>" (want one of <known>)`;
	// known lists the keys in the order the methods named them.
	Unknown func(key string, known []string) error
}

// NewOptions returns an Options for the option map opts of the backend
// named backend (the prefix of its error messages). opts is only read.
func NewOptions(backend string, opts map[string]any) *Options {
	return &Options{backend: backend, opts: opts, errs: map[string]error{}}
}

// Field marks key as known and, when it is present, calls decode with its
// value and records decode's error for Err.
func (o *Options) Field(key string, decode func(v any) error) {
	o.known = append(o.known, key)
	v, ok := o.opts[key]
	if !ok {
		return
	}
	if err := decode(v); err != nil {
		o.errs[key] = err
	}
}

// Type accepts the key "type" when its value is want.
func (o *Options) Type(want string) {
	o.Field("type", func(v any) error {
		s, err := AsString(v)
		if err == nil && s != want {
			err = fmt.Errorf("is %q, want %q", s, want)
		}
		return err
	})
}

// String decodes key with AsString into dst.
func (o *Options) String(key string, dst *string) {
	o.Field(key, func(v any) (err error) { *dst, err = AsString(v); return err })
}

// Bool decodes key with AsBool into dst.
func (o *Options) Bool(key string, dst *bool) {
	o.Field(key, func(v any) (err error) { *dst, err = AsBool(v); return err })
}

// Int decodes key with AsInt into dst.
func (o *Options) Int(key string, dst *int) {
	o.Field(key, func(v any) (err error) { *dst, err = AsInt(v); return err })
}

// StringMap decodes key with AsStringMap into dst.
func (o *Options) StringMap(key string, dst *map[string]string) {
	o.Field(key, func(v any) (err error) { *dst, err = AsStringMap(v); return err })
}

// Err returns the error of the first key, in sorted order, that no method
// named or whose value did not decode; nil when every key decoded.
func (o *Options) Err() error {
	for _, k := range slices.Sorted(maps.Keys(o.opts)) {
		if !slices.Contains(o.known, k) {
			if o.Unknown != nil {
				return o.Unknown(k, o.known)
			}
			return fmt.Errorf("%s: unknown config key %q (want one of %s)", o.backend, k, strings.Join(o.known, ", "))
		}
		if err := o.errs[k]; err != nil {
			if o.WrapKey != nil {
				return o.WrapKey(k, err)
			}
			return fmt.Errorf("%s: config key %q: %w", o.backend, k, err)
		}
	}
	return nil
}

// AsString accepts a string; nothing (YAML's null or an empty value) is "".
func AsString(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case nil:
		return "", nil
	}
	return "", fmt.Errorf("want a string, got %s", TypeName(v))
}

// AsBool accepts true or false.
func AsBool(v any) (bool, error) {
	if b, ok := v.(bool); ok {
		return b, nil
	}
	return false, fmt.Errorf("want true or false, got %s", TypeName(v))
}

// Int converts a YAML or JSON number that is a whole number: any int, and
// an int64, uint64 or float64 within the range of an int32 (so that it fits
// int everywhere).
func Int(v any) (int, bool) {
	switch v := v.(type) {
	case int:
		return v, true
	case int64:
		if v >= math.MinInt32 && v <= math.MaxInt32 {
			return int(v), true
		}
	case uint64:
		if v <= math.MaxInt32 {
			return int(v), true
		}
	case float64:
		if v == math.Trunc(v) && math.Abs(v) <= math.MaxInt32 {
			return int(v), true
		}
	}
	return 0, false
}

// AsInt accepts what Int converts.
func AsInt(v any) (int, error) {
	if n, ok := Int(v); ok {
		return n, nil
	}
	return 0, fmt.Errorf("want a whole number, got %s", TypeName(v))
}

// AsMap accepts a map; nothing is a nil map.
func AsMap(v any) (map[string]any, error) {
	switch v := v.(type) {
	case map[string]any:
		return v, nil
	case nil:
		return nil, nil
	}
	return nil, fmt.Errorf("want a map, got %s", TypeName(v))
}

// AsStringMap accepts a map whose values are strings, numbers or booleans
// (YAML's `version: 2` is a number), formatted with ScalarString; nothing
// is a nil map. An error names the bad entry's key.
func AsStringMap(v any) (map[string]string, error) {
	m, err := AsMap(v)
	if err != nil || m == nil {
		return nil, err
	}
	out := make(map[string]string, len(m))
	for k, val := range m {
		s, ok := ScalarString(val)
		if !ok {
			return nil, fmt.Errorf("%s: want a string, number or boolean, got %s", k, TypeName(val))
		}
		out[k] = s
	}
	return out, nil
}

// ScalarString formats a YAML scalar (string, boolean or number) as a
// string; ok is false for anything else.
func ScalarString(v any) (s string, ok bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case bool:
		return strconv.FormatBool(v), true
	case int:
		return strconv.Itoa(v), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case uint64:
		return strconv.FormatUint(v, 10), true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	}
	return "", false
}

// TypeName names the YAML kind of v for an error message: "nothing",
// "a string", "a boolean", "a number", "a list", "a map", or the Go type.
func TypeName(v any) string {
	switch v.(type) {
	case nil:
		return "nothing"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int, int64, uint64, float64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "a map"
	}
	return fmt.Sprintf("%T", v)
}
