package tufjson

import (
	"bytes"
	"fmt"
	"unicode/utf8"
)

// rawJSON writes the canonical form of a valid JSON value (a target's
// custom object), as cjson computes it: numbers keep their spelling but
// must be int64s, strings are decoded and re-escaped, a repeated key keeps
// its last value. Already canonical input (the usual case) is written
// without building anything; otherwise the value is decoded once.
func (w *canonWriter) rawJSON(raw []byte) error {
	saved := *w
	s := &scanner{data: raw}
	ok, err := w.rawFast(s)
	if err != nil || ok {
		return err
	}
	*w = saved
	if w.diff {
		w.out = w.out[:len(saved.out)]
	}
	s = &scanner{data: raw}
	v, err := s.numberValue()
	if err != nil {
		return err
	}
	return w.any(v)
}

// rawFast writes a value whose object keys are plain strings in strictly
// increasing order and whose numbers are int64s; it reports false, having
// written part of the value, when they are not.
func (w *canonWriter) rawFast(s *scanner) (bool, error) {
	switch c := s.peek(); c {
	case '{':
		s.pos++
		w.byte('{')
		var prev []byte
		for i := 0; ; i++ {
			if s.peek() == '}' {
				s.pos++
				break
			}
			if i > 0 {
				if err := s.expect(','); err != nil {
					return false, err
				}
				w.byte(',')
			}
			key, complex, err := s.stringSpan()
			if err != nil {
				return false, err
			}
			if complex || (i > 0 && bytes.Compare(prev, key) >= 0) {
				return false, nil
			}
			prev = key
			w.byte('"')
			w.rawBytes(key)
			w.byte('"')
			if err := s.expect(':'); err != nil {
				return false, err
			}
			w.byte(':')
			if ok, err := w.rawFast(s); !ok || err != nil {
				return ok, err
			}
		}
		w.byte('}')
	case '[':
		s.pos++
		w.byte('[')
		for i := 0; ; i++ {
			if s.peek() == ']' {
				s.pos++
				break
			}
			if i > 0 {
				if err := s.expect(','); err != nil {
					return false, err
				}
				w.byte(',')
			}
			if ok, err := w.rawFast(s); !ok || err != nil {
				return ok, err
			}
		}
		w.byte(']')
	case '"':
		raw, complex, err := s.stringSpan()
		if err != nil {
			return false, err
		}
		if !complex || utf8.Valid(raw) && !containsByte(raw, '\\') {
			w.byte('"')
			w.rawBytes(raw)
			w.byte('"')
		} else {
			w.str(unquote(raw, complex))
		}
	case 't', 'f', 'n':
		span, err := s.skip()
		if err != nil {
			return false, err
		}
		w.rawBytes(span)
	default:
		text, err := s.number()
		if err != nil {
			return false, err
		}
		if _, err := parseInt(text); err != nil {
			// Not necessarily an error: a later member of the same name
			// may replace this one. The slow path decides.
			return false, nil
		}
		w.rawBytes(text)
	}
	return true, nil
}

// Canonicalize returns the canonical JSON of the value in data, the bytes
// cjson.EncodeCanonical writes for json.RawMessage(data): object keys
// sorted (a repeated key keeps its last value), strings decoded and written
// escaping only '\\' and '"', numbers as spelled, refused with
// ErrNotCanonical unless they are int64s. data must hold exactly one JSON
// value (surrounding whitespace aside), nested at most MaxDepth deep.
func Canonicalize(data []byte) ([]byte, error) {
	s := &scanner{data: data}
	if _, err := s.skip(); err != nil {
		return nil, err
	}
	if s.ws(); s.pos != len(data) {
		return nil, s.errorf("data after the value")
	}
	w := &canonWriter{src: data}
	if err := w.rawJSON(data); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotCanonical, err)
	}
	return w.bytes(), nil
}
