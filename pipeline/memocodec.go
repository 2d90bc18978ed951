package pipeline

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/rustypipe/rustypipe/internal/binread"
)

// The memo codec writes a parsed Pipeline in a compact binary form that
// decodes without reflection: encoding/gob took over a millisecond to
// decode a 1,000-task pipeline, a tenth of a no-op build, and its package
// initialisation was the costliest left in rustypipe's start. Backend
// options, decoded YAML values, are written with a tag per value; a value of
// a type YAML decoding does not produce fails the encoding, and the
// pipeline is then parsed on every load.
//
// Strings are a uvarint length and bytes; integers are varints; a slice or
// map is a uvarint n, 0 for nil and else its length plus one, so that nil
// and empty survive the round trip. TestMemoCodecCoversEveryField fails
// when a field is added to a type here without being encoded.

var errMemoShort = errors.New("pipeline memo: truncated")

type memoWriter struct{ b []byte }

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (w *memoWriter) uvarint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *memoWriter) int(v int64)      { w.b = binary.AppendVarint(w.b, v) }
func (w *memoWriter) str(s string) {
	w.uvarint(uint64(len(s)))
	w.b = append(w.b, s...)
}
func (w *memoWriter) bool(v bool) {
	if v {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}

func (w *memoWriter) strs(s []string) {
	if s == nil {
		w.uvarint(0)
		return
	}
	w.uvarint(uint64(len(s)) + 1)
	for _, v := range s {
		w.str(v)
	}
}

// strMap writes m's entries in sorted key order, so equal maps encode
// equally.
func (w *memoWriter) strMap(m map[string]string) {
	if m == nil {
		w.uvarint(0)
		return
	}
	w.uvarint(uint64(len(m)) + 1)
	for _, k := range sortedKeys(m) {
		w.str(k)
		w.str(m[k])
	}
}

func (w *memoWriter) pos(p Pos, file string) {
	// A task's position is almost always in the pipeline's own file.
	w.bool(p.File == file)
	if p.File != file {
		w.str(p.File)
	}
	w.int(int64(p.Line))
	w.int(int64(p.Col))
}

// memoReader reads what memoWriter wrote. Decoded strings share the
// memo's buffer: one allocation instead of one per string.
type memoReader struct{ *binread.Reader }

func (r memoReader) bool() bool { return r.Byte() != 0 }

// count reads a slice or map length: -1 for nil.
func (r memoReader) count() int {
	n := r.Uvarint()
	if n > uint64(r.Len())+1 { // every element takes at least a byte
		r.Fail()
		return -1
	}
	return int(n) - 1
}

func (r memoReader) strs() []string {
	n := r.count()
	if n < 0 {
		return nil
	}
	s := make([]string, n)
	for i := range s {
		s[i] = r.Str()
	}
	return s
}

func (r memoReader) strMap() map[string]string {
	n := r.count()
	if n < 0 {
		return nil
	}
	m := make(map[string]string, n)
	for range n {
		k := r.Str()
		m[k] = r.Str()
	}
	return m
}

func (r memoReader) pos(file string) Pos {
	p := Pos{File: file}
	if !r.bool() {
		p.File = r.Str()
	}
	p.Line = int(r.Varint())
	p.Col = int(r.Varint())
	return p
}

// encodeMemoPipeline encodes p. It fails only if gob cannot encode the
// backend options.
func encodeMemoPipeline(p *Pipeline) ([]byte, error) {
	w := &memoWriter{b: make([]byte, 0, 256*len(p.Tasks)+256)}
	w.str(p.File)
	w.str(p.Name)
	w.str(p.Description)
	w.int(int64(p.Concurrency))
	w.bool(p.StopOnFail)
	w.strMap(p.Env)
	w.strMap(p.Vars)
	w.str(p.Shell)
	w.str(p.Dir)
	if p.Backends == nil {
		w.uvarint(0)
	} else {
		w.uvarint(uint64(len(p.Backends)) + 1)
		for _, name := range sortedKeys(p.Backends) {
			b := p.Backends[name]
			w.str(name)
			w.bool(b != nil)
			if b == nil {
				continue
			}
			w.str(b.Name)
			w.str(b.Type)
			if err := w.value(b.Options); err != nil {
				return nil, fmt.Errorf("backend %q: %w", name, err)
			}
			w.pos(b.Pos, p.File)
		}
	}
	w.uvarint(uint64(len(p.Tasks)))
	for _, t := range p.Tasks {
		w.str(t.Name)
		w.str(t.Run)
		w.strs(t.DependsOn)
		w.int(int64(t.Retries))
		w.int(int64(t.Timeout))
		w.str(t.Backend)
		w.str(t.CacheKey)
		w.bool(t.ContinueOnFail)
		w.strMap(t.Env)
		w.strMap(t.Vars)
		w.str(t.Shell)
		w.str(t.Dir)
		w.strs(t.Inputs)
		w.strs(t.Outputs)
		w.str(t.Description)
		w.bool(t.Retry != nil)
		if r := t.Retry; r != nil {
			w.int(int64(r.Attempts))
			w.int(int64(r.Delay))
			w.uvarint(math.Float64bits(r.Backoff))
			w.int(int64(r.MaxDelay))
			if r.OnExitCodes == nil {
				w.uvarint(0)
			} else {
				w.uvarint(uint64(len(r.OnExitCodes)) + 1)
				for _, c := range r.OnExitCodes {
					w.int(int64(c))
				}
			}
		}
		w.str(t.Image)
		w.pos(t.Pos, p.File)
	}
	return w.b, nil
}

// decodeMemoPipeline decodes what encodeMemoPipeline wrote.
func decodeMemoPipeline(b []byte) (*Pipeline, error) {
	r := memoReader{binread.New(b)}
	p := &Pipeline{
		File:        r.Str(),
		Name:        r.Str(),
		Description: r.Str(),
		Concurrency: int(r.Varint()),
		StopOnFail:  r.bool(),
		Env:         r.strMap(),
		Vars:        r.strMap(),
		Shell:       r.Str(),
		Dir:         r.Str(),
	}
	if n := r.count(); n >= 0 {
		p.Backends = make(map[string]*BackendConfig, n)
		for range n {
			name := r.Str()
			if !r.bool() {
				p.Backends[name] = nil
				continue
			}
			b := &BackendConfig{Name: r.Str(), Type: r.Str()}
			opts, _ := r.value().(map[string]any)
			b.Options = opts
			b.Pos = r.pos(p.File)
			p.Backends[name] = b
		}
	}
	n := r.Uvarint()
	if n > uint64(r.Len()) {
		return nil, errMemoShort
	}
	tasks := make([]Task, n) // one allocation for all tasks
	p.Tasks = make([]*Task, n)
	for i := range tasks {
		t := &tasks[i]
		t.Name = r.Str()
		t.Run = r.Str()
		t.DependsOn = r.strs()
		t.Retries = int(r.Varint())
		t.Timeout = time.Duration(r.Varint())
		t.Backend = r.Str()
		t.CacheKey = r.Str()
		t.ContinueOnFail = r.bool()
		t.Env = r.strMap()
		t.Vars = r.strMap()
		t.Shell = r.Str()
		t.Dir = r.Str()
		t.Inputs = r.strs()
		t.Outputs = r.strs()
		t.Description = r.Str()
		if r.bool() {
			rt := &Retry{
				Attempts: int(r.Varint()),
				Delay:    time.Duration(r.Varint()),
				Backoff:  math.Float64frombits(r.Uvarint()),
				MaxDelay: time.Duration(r.Varint()),
			}
			if c := r.count(); c >= 0 {
				rt.OnExitCodes = make([]int, c)
				for j := range rt.OnExitCodes {
					rt.OnExitCodes[j] = int(r.Varint())
				}
			}
			t.Retry = rt
		}
		t.Image = r.Str()
		t.Pos = r.pos(p.File)
		p.Tasks[i] = t
	}
	if r.Bad() {
		return nil, errMemoShort
	}
	if r.Len() != 0 {
		return nil, errors.New("pipeline memo: trailing bytes")
	}
	return p, nil
}

// Tags of the values in backend options.
const (
	tagNil byte = iota
	tagString
	tagInt
	tagFloat
	tagBool
	tagList
	tagMap
	tagNilList
	tagNilMap
)

// value writes a decoded YAML value.
func (w *memoWriter) value(v any) error {
	switch v := v.(type) {
	case nil:
		w.b = append(w.b, tagNil)
	case string:
		w.b = append(w.b, tagString)
		w.str(v)
	case int:
		w.b = append(w.b, tagInt)
		w.int(int64(v))
	case float64:
		w.b = append(w.b, tagFloat)
		w.uvarint(math.Float64bits(v))
	case bool:
		w.b = append(w.b, tagBool)
		w.bool(v)
	case []any:
		if v == nil {
			w.b = append(w.b, tagNilList)
			return nil
		}
		w.b = append(w.b, tagList)
		w.uvarint(uint64(len(v)))
		for _, e := range v {
			if err := w.value(e); err != nil {
				return err
			}
		}
	case map[string]any:
		if v == nil {
			w.b = append(w.b, tagNilMap)
			return nil
		}
		w.b = append(w.b, tagMap)
		w.uvarint(uint64(len(v)))
		for _, k := range sortedKeys(v) {
			w.str(k)
			if err := w.value(v[k]); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("option value of type %T cannot be memoised", v)
	}
	return nil
}

// value reads what memoWriter.value wrote.
func (r memoReader) value() any {
	switch tag := r.Byte(); tag {
	case tagNil:
		return nil
	case tagString:
		return r.Str()
	case tagInt:
		return int(r.Varint())
	case tagFloat:
		return math.Float64frombits(r.Uvarint())
	case tagBool:
		return r.bool()
	case tagNilList:
		return []any(nil)
	case tagNilMap:
		return map[string]any(nil)
	case tagList:
		n := r.Uvarint()
		if n > uint64(r.Len()) {
			r.Fail()
			return nil
		}
		l := make([]any, n)
		for i := range l {
			l[i] = r.value()
		}
		return l
	case tagMap:
		n := r.Uvarint()
		if n > uint64(r.Len()) {
			r.Fail()
			return nil
		}
		m := make(map[string]any, n)
		for range n {
			k := r.Str()
			m[k] = r.value()
		}
		return m
	}
	r.Fail()
	return nil
}
