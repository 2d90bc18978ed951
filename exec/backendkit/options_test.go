package backendkit

import (
	"errors"
	"maps"
	"strings"
	"testing"
)

type sample struct {
	name   string
	port   int
	debug  bool
	labels map[string]string
	kind   string
}

func parseSample(opts map[string]any) (sample, error) {
	c := sample{name: "default"}
	o := NewOptions("demo", opts)
	o.Type("demo")
	o.String("name", &c.name)
	o.Int("port", &c.port)
	o.Bool("debug", &c.debug)
	o.StringMap("labels", &c.labels)
	o.Field("kind", func(v any) (err error) {
		c.kind, err = AsString(v)
		if err == nil && c.kind != "a" && c.kind != "b" {
			err = errors.ErrUnsupported
		}
		return err
	})
	return c, o.Err()
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name string
		opts map[string]any
		want sample
		err  string // exact error text; "" for none
	}{
		{"empty keeps defaults", nil, sample{name: "default"}, ""},
		{"all keys", map[string]any{"type": "demo", "name": "x", "port": 22, "debug": true, "labels": map[string]any{"v": 2, "b": true, "s": "t"}, "kind": "a"},
			sample{name: "x", port: 22, debug: true, labels: map[string]string{"v": "2", "b": "true", "s": "t"}, kind: "a"}, ""},
		{"null string", map[string]any{"name": nil}, sample{}, ""},
		{"float port", map[string]any{"port": 8.0}, sample{name: "default", port: 8}, ""},
		{"wrong type", map[string]any{"type": "other"}, sample{}, `demo: config key "type": is "other", want "demo"`},
		{"unknown key", map[string]any{"nmae": "x"}, sample{}, `demo: unknown config key "nmae" (want one of type, name, port, debug, labels, kind)`},
		{"bad string", map[string]any{"name": 3}, sample{}, `demo: config key "name": want a string, got a number`},
		{"bad int", map[string]any{"port": 1.5}, sample{}, `demo: config key "port": want a whole number, got a number`},
		{"huge int64", map[string]any{"port": int64(1) << 40}, sample{}, `demo: config key "port": want a whole number, got a number`},
		{"bad bool", map[string]any{"debug": "yes"}, sample{}, `demo: config key "debug": want true or false, got a string`},
		{"bad map", map[string]any{"labels": []any{}}, sample{}, `demo: config key "labels": want a map, got a list`},
		{"bad map value", map[string]any{"labels": map[string]any{"k": []any{}}}, sample{}, `demo: config key "labels": k: want a string, number or boolean, got a list`},
		{"custom field", map[string]any{"kind": "c"}, sample{}, `demo: config key "kind": unsupported operation`},
		{"first bad key in sorted order", map[string]any{"port": "x", "debug": 1, "zzz": 1}, sample{}, `demo: config key "debug": want true or false, got a number`},
		{"unknown sorts first", map[string]any{"port": "x", "aaa": 1}, sample{}, `demo: unknown config key "aaa" (want one of type, name, port, debug, labels, kind)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSample(tc.opts)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v, want %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.name != tc.want.name || got.port != tc.want.port || got.debug != tc.want.debug ||
				got.kind != tc.want.kind || !maps.Equal(got.labels, tc.want.labels) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestOptionsCustomMessages(t *testing.T) {
	o := NewOptions("x", map[string]any{"b": 1, "c": 2})
	o.WrapKey = func(k string, err error) error { return &keyErr{k, err} }
	o.Unknown = func(k string, known []string) error { return &keyErr{k + "?" + strings.Join(known, "|"), nil} }
	var s string
	o.String("a", &s)
	o.String("b", &s)
	if err := o.Err(); err == nil || err.Error() != "b: want a string, got a number" {
		t.Errorf("WrapKey: %v", err)
	}
	o = NewOptions("x", map[string]any{"c": 2})
	o.Unknown = func(k string, known []string) error { return &keyErr{k + "?" + strings.Join(known, "|"), nil} }
	o.String("a", &s)
	o.String("b", &s)
	if err := o.Err(); err == nil || err.Error() != "c?a|b" {
		t.Errorf("Unknown: %v", err)
	}
}

type keyErr struct {
	key string
	err error
}

func (e *keyErr) Error() string {
	if e.err == nil {
		return e.key
	}
	return e.key + ": " + e.err.Error()
}

func TestInt(t *testing.T) {
	tests := []struct {
		in   any
		want int
		ok   bool
	}{
		{7, 7, true},
		{int64(-3), -3, true},
		{uint64(9), 9, true},
		{2.0, 2, true},
		{-2.0, -2, true},
		{2.5, 0, false},
		{int64(1) << 40, 0, false},
		{uint64(1) << 40, 0, false},
		{1e12, 0, false},
		{"3", 0, false},
		{nil, 0, false},
	}
	for _, tc := range tests {
		if got, ok := Int(tc.in); got != tc.want || ok != tc.ok {
			t.Errorf("Int(%#v) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestScalarStringAndTypeName(t *testing.T) {
	tests := []struct {
		in       any
		str      string
		ok       bool
		typeName string
	}{
		{"s", "s", true, "a string"},
		{true, "true", true, "a boolean"},
		{3, "3", true, "a number"},
		{int64(-4), "-4", true, "a number"},
		{uint64(5), "5", true, "a number"},
		{1.5, "1.5", true, "a number"},
		{nil, "", false, "nothing"},
		{[]any{}, "", false, "a list"},
		{map[string]any{}, "", false, "a map"},
		{struct{}{}, "", false, "struct {}"},
	}
	for _, tc := range tests {
		if s, ok := ScalarString(tc.in); s != tc.str || ok != tc.ok {
			t.Errorf("ScalarString(%#v) = %q, %v; want %q, %v", tc.in, s, ok, tc.str, tc.ok)
		}
		if got := TypeName(tc.in); got != tc.typeName {
			t.Errorf("TypeName(%#v) = %q, want %q", tc.in, got, tc.typeName)
		}
	}
}
