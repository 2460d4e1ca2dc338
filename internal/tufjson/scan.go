package tufjson

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// This file is the lexical layer of the one-pass targets decoder
// (targets.go). It accepts exactly the JSON that encoding/json accepts and
// decodes strings and numbers exactly as encoding/json does, because the
// signature check is over a re-encoding of what encoding/json (inside
// go-tuf) would have decoded: any difference here would make otaseal and
// go-tuf disagree on which documents are genuine.

// MaxDepth is the deepest nesting of objects and arrays accepted in a
// metadata document, counting the document's own object. It is
// encoding/json's limit, so that both decoders refuse the same documents.
const MaxDepth = 10000

// scanner walks a JSON document in place.
type scanner struct {
	data  []byte
	pos   int
	depth int
}

func (s *scanner) errorf(format string, args ...any) error {
	return fmt.Errorf("%w at byte %d: %s", ErrSyntax, s.pos, fmt.Sprintf(format, args...))
}

// ws skips JSON whitespace (exactly the four bytes RFC 8259 allows).
func (s *scanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.pos >= len(s.data) {
		return 0
	}
	return s.data[s.pos]
}

func (s *scanner) expect(c byte) error {
	if s.peek() != c {
		return s.errorf("want %q", c)
	}
	s.pos++
	return nil
}

func (s *scanner) enter() error {
	s.depth++
	if s.depth > MaxDepth {
		return s.errorf("nested deeper than %d", MaxDepth)
	}
	return nil
}

// literal consumes one of true, false, null.
func (s *scanner) literal(word string) error {
	if len(s.data)-s.pos < len(word) || string(s.data[s.pos:s.pos+len(word)]) != word {
		return s.errorf("invalid literal")
	}
	s.pos += len(word)
	return nil
}

// stringSpan consumes a string and returns its contents between the quotes,
// raw, and whether they need unquoting (escapes or non-ASCII bytes).
func (s *scanner) stringSpan() (raw []byte, complex bool, err error) {
	if s.peek() != '"' {
		return nil, false, s.errorf("want string")
	}
	s.pos++
	start := s.pos
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			raw = s.data[start:s.pos]
			s.pos++
			return raw, complex, nil
		case c == '\\':
			complex = true
			if s.pos+1 >= len(s.data) {
				return nil, false, s.errorf("unterminated escape")
			}
			switch s.data[s.pos+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.pos += 2
			case 'u':
				if len(s.data)-s.pos < 6 || !isHex4(s.data[s.pos+2:s.pos+6]) {
					return nil, false, s.errorf("invalid \\u escape")
				}
				s.pos += 6
			default:
				return nil, false, s.errorf("invalid escape")
			}
		case c < 0x20:
			return nil, false, s.errorf("control character in string")
		default:
			if c >= utf8.RuneSelf {
				complex = true
			}
			s.pos++
		}
	}
	return nil, false, s.errorf("unterminated string")
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// str consumes a string and returns it decoded.
func (s *scanner) str() (string, error) {
	raw, complex, err := s.stringSpan()
	if err != nil {
		return "", err
	}
	return unquote(raw, complex), nil
}

// unquote decodes the contents of a valid JSON string as encoding/json
// does: escapes resolved, each invalid UTF-8 byte and each unpaired
// surrogate replaced by U+FFFD.
func unquote(raw []byte, complex bool) string {
	if !complex || utf8.Valid(raw) && !containsByte(raw, '\\') {
		return string(raw)
	}
	out := make([]byte, 0, len(raw)+2*utf8.UTFMax)
	for r := 0; r < len(raw); {
		c := raw[r]
		switch {
		case c == '\\':
			switch raw[r+1] {
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				rr := hex4(raw[r+2 : r+6])
				r += 6
				if utf16.IsSurrogate(rr) {
					if r+6 <= len(raw) && raw[r] == '\\' && raw[r+1] == 'u' {
						if dec := utf16.DecodeRune(rr, hex4(raw[r+2:r+6])); dec != unicode.ReplacementChar {
							r += 6
							out = utf8.AppendRune(out, dec)
							continue
						}
					}
					rr = unicode.ReplacementChar
				}
				out = utf8.AppendRune(out, rr)
				continue
			default: // '"', '\\', '/'
				out = append(out, raw[r+1])
			}
			r += 2
		case c < utf8.RuneSelf:
			out = append(out, c)
			r++
		default:
			rr, size := utf8.DecodeRune(raw[r:])
			if rr == utf8.RuneError && size == 1 {
				out = utf8.AppendRune(out, unicode.ReplacementChar)
			} else {
				out = append(out, raw[r:r+size]...)
			}
			r += size
		}
	}
	return string(out)
}

func containsByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		default:
			c = c - 'A' + 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// number consumes a number and returns its text. Like encoding/json, it
// refuses a number that does not fit a float64 (go-tuf decodes every value
// of the document into a map[string]any as well, which fails on those).
func (s *scanner) number() ([]byte, error) {
	s.ws()
	start := s.pos
	d := s.data
	if s.pos < len(d) && d[s.pos] == '-' {
		s.pos++
	}
	switch {
	case s.pos < len(d) && d[s.pos] == '0':
		s.pos++
	case s.pos < len(d) && '1' <= d[s.pos] && d[s.pos] <= '9':
		for s.pos < len(d) && '0' <= d[s.pos] && d[s.pos] <= '9' {
			s.pos++
		}
	default:
		return nil, s.errorf("invalid number")
	}
	long := false
	if s.pos < len(d) && d[s.pos] == '.' {
		s.pos++
		if !s.digits() {
			return nil, s.errorf("invalid number")
		}
	}
	if s.pos < len(d) && (d[s.pos] == 'e' || d[s.pos] == 'E') {
		long = true
		s.pos++
		if s.pos < len(d) && (d[s.pos] == '+' || d[s.pos] == '-') {
			s.pos++
		}
		if !s.digits() {
			return nil, s.errorf("invalid number")
		}
	}
	text := d[start:s.pos]
	// Without an exponent, fewer than 300 digits cannot overflow a float64.
	if long || len(text) >= 300 {
		if _, err := strconv.ParseFloat(string(text), 64); err != nil {
			return nil, s.errorf("number %.40s out of range", text)
		}
	}
	return text, nil
}

func (s *scanner) digits() bool {
	start := s.pos
	for s.pos < len(s.data) && '0' <= s.data[s.pos] && s.data[s.pos] <= '9' {
		s.pos++
	}
	return s.pos > start
}

// anyValue decodes one value as encoding/json decodes into an `any`:
// objects to map[string]any (a repeated key: the last wins), arrays to
// []any, numbers to float64.
func (s *scanner) anyValue() (any, error) {
	switch c := s.peek(); {
	case c == '{':
		if err := s.enter(); err != nil {
			return nil, err
		}
		s.pos++
		m := map[string]any{}
		err := s.members(func(key string) error {
			v, err := s.anyValue()
			m[key] = v
			return err
		})
		s.depth--
		return m, err
	case c == '[':
		if err := s.enter(); err != nil {
			return nil, err
		}
		s.pos++
		a := make([]any, 0)
		err := s.elements(func() error {
			v, err := s.anyValue()
			a = append(a, v)
			return err
		})
		s.depth--
		return a, err
	case c == '"':
		return s.str()
	case c == 't':
		return true, s.literal("true")
	case c == 'f':
		return false, s.literal("false")
	case c == 'n':
		return nil, s.literal("null")
	default:
		text, err := s.number()
		if err != nil {
			return nil, err
		}
		f, _ := strconv.ParseFloat(string(text), 64) // range checked by number
		return f, nil
	}
}

// members calls f for each member of an object whose '{' is consumed, with
// the scanner at the member's value; f must consume the value.
func (s *scanner) members(f func(key string) error) error {
	if s.peek() == '}' {
		s.pos++
		return nil
	}
	for {
		raw, complex, err := s.stringSpan()
		if err != nil {
			return err
		}
		key, ok := "", false
		if !complex {
			key, ok = internedKeys[string(raw)]
		}
		if !ok {
			key = unquote(raw, complex)
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		if err := f(key); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.errorf("want , or }")
		}
	}
}

// internedKeys are member names that every target repeats; looking them up
// spares an allocation per member.
var internedKeys = map[string]string{}

func init() {
	for _, k := range []string{"length", "hashes", "custom", "sha256", "sha512", "otaseal",
		"kind", "version", "security_version", "hardware_ids", "severity", "advisories", "notes",
		"format", "from", "to", "path"} {
		internedKeys[k] = k
	}
}

// elements calls f for each element of an array whose '[' is consumed.
func (s *scanner) elements(f func() error) error {
	if s.peek() == ']' {
		s.pos++
		return nil
	}
	for {
		if err := f(); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		default:
			return s.errorf("want , or ]")
		}
	}
}

// skip consumes one value, checking its syntax, and returns its span.
func (s *scanner) skip() ([]byte, error) {
	s.ws()
	start := s.pos
	var err error
	switch c := s.peek(); c {
	case '{':
		if err = s.enter(); err != nil {
			return nil, err
		}
		s.pos++
		err = s.members(func(string) error { _, err := s.skip(); return err })
		s.depth--
	case '[':
		if err = s.enter(); err != nil {
			return nil, err
		}
		s.pos++
		err = s.elements(func() error { _, err := s.skip(); return err })
		s.depth--
	case '"':
		_, _, err = s.stringSpan()
	case 't':
		err = s.literal("true")
	case 'f':
		err = s.literal("false")
	case 'n':
		err = s.literal("null")
	default:
		_, err = s.number()
	}
	if err != nil {
		return nil, err
	}
	return s.data[start:s.pos], nil
}

// foldKey folds a member name as encoding/json does when it matches names
// to struct fields case-insensitively: "Length" and "LENGTH" (and
// "ſcheme", with a long s) all fill the field tagged "length".
func foldKey(name string) string {
	out := make([]byte, 0, len(name))
	for _, r := range name {
		if r < utf8.RuneSelf {
			if 'a' <= r && r <= 'z' {
				r -= 'a' - 'A'
			}
			out = append(out, byte(r))
			continue
		}
		for {
			r2 := unicode.SimpleFold(r)
			if r2 <= r {
				r = r2
				break
			}
			r = r2
		}
		out = utf8.AppendRune(out, r)
	}
	return string(out)
}

// numberValue is anyValue with numbers kept as json.Number, as cjson's
// decoder (UseNumber) keeps them.
func (s *scanner) numberValue() (any, error) {
	switch c := s.peek(); {
	case c == '{':
		s.pos++
		m := map[string]any{}
		err := s.members(func(key string) error {
			v, err := s.numberValue()
			m[key] = v
			return err
		})
		return m, err
	case c == '[':
		s.pos++
		a := make([]any, 0)
		err := s.elements(func() error {
			v, err := s.numberValue()
			a = append(a, v)
			return err
		})
		return a, err
	case c == '"', c == 't', c == 'f', c == 'n':
		return s.anyValue()
	default:
		text, err := s.number()
		return json.Number(text), err
	}
}
