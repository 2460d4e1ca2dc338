package tufjson

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// The canonical encoder. go-tuf signs and verifies cjson.EncodeCanonical of
// the decoded signed part: each go-tuf type's MarshalJSON builds a map of
// its fields and unrecognised fields, encoding/json marshals it, and cjson
// decodes that again (numbers as json.Number) and writes it with sorted
// keys, escaping only '\\' and '"', refusing any number that is not an
// int64. This encoder writes the same bytes straight from the typed value.
//
// Most repositories publish their documents compact with sorted keys, so
// the canonical form usually is the signed part as received: the writer
// compares its output with those bytes and materialises a copy only from
// the first byte that differs.

var errNotInteger = errors.New("number is not an integer")

// canonWriter writes canonical JSON, sharing src while the output equals it.
type canonWriter struct {
	src  []byte
	n    int    // output so far is src[:n] while out is nil
	out  []byte // the output, once it differs from src
	diff bool
}

func (w *canonWriter) diverge() {
	w.diff = true
	w.out = make([]byte, w.n, len(w.src)+len(w.src)/8+64)
	copy(w.out, w.src[:w.n])
}

func (w *canonWriter) byte(c byte) {
	if !w.diff {
		if w.n < len(w.src) && w.src[w.n] == c {
			w.n++
			return
		}
		w.diverge()
	}
	w.out = append(w.out, c)
}

func (w *canonWriter) raw(s string) {
	if !w.diff {
		if len(w.src)-w.n >= len(s) && string(w.src[w.n:w.n+len(s)]) == s {
			w.n += len(s)
			return
		}
		w.diverge()
	}
	w.out = append(w.out, s...)
}

func (w *canonWriter) rawBytes(b []byte) {
	if !w.diff {
		if len(w.src)-w.n >= len(b) && bytes.Equal(w.src[w.n:w.n+len(b)], b) {
			w.n += len(b)
			return
		}
		w.diverge()
	}
	w.out = append(w.out, b...)
}

func (w *canonWriter) bytes() []byte {
	if w.diff {
		return w.out
	}
	return w.src[:w.n:w.n]
}

// str writes a string the OLPC way: only '\\' and '"' are escaped.
func (w *canonWriter) str(s string) {
	w.byte('"')
	for {
		i := 0
		for i < len(s) && s[i] != '"' && s[i] != '\\' {
			i++
		}
		w.raw(s[:i])
		if i == len(s) {
			break
		}
		w.byte('\\')
		w.byte(s[i])
		s = s[i+1:]
	}
	w.byte('"')
}

func (w *canonWriter) int(n int64) {
	var buf [20]byte
	w.rawBytes(strconv.AppendInt(buf[:0], n, 10))
}

func (w *canonWriter) bool(b bool) {
	if b {
		w.raw("true")
	} else {
		w.raw("false")
	}
}

func (w *canonWriter) hex(b []byte) {
	var buf [130]byte
	var out []byte
	if n := 2*len(b) + 2; n <= len(buf) {
		out = buf[:n]
	} else {
		out = make([]byte, n)
	}
	out[0], out[len(out)-1] = '"', '"'
	hex.Encode(out[1:], b)
	w.rawBytes(out)
}

// object writes an object of present known fields (names sorted) and
// unrecognised ones, all in key order, calling known for the former.
func (w *canonWriter) object(names []string, unknown map[string]any, known func(name string) error) error {
	w.byte('{')
	keys := names
	if len(unknown) > 0 {
		keys = make([]string, 0, len(names)+len(unknown))
		keys = append(keys, names...)
		for k := range unknown {
			keys = append(keys, k) // never a known name: those were decoded
		}
		sort.Strings(keys)
	}
	for i, k := range keys {
		if i > 0 {
			w.byte(',')
		}
		w.str(k)
		w.byte(':')
		var err error
		if v, ok := unknown[k]; ok {
			err = w.any(v)
		} else {
			err = known(k)
		}
		if err != nil {
			return err
		}
	}
	w.byte('}')
	return nil
}

// any writes a value decoded by encoding/json into an `any` after the
// round trip through json.Marshal and a json.Number decoder that cjson
// makes: a float64 survives only if encoding/json prints it as an int64.
func (w *canonWriter) any(v any) error {
	switch v := v.(type) {
	case nil:
		w.raw("null")
	case bool:
		w.bool(v)
	case string:
		w.str(v)
	case float64:
		// encoding/json prints |v| < 1e-6 and |v| >= 1e21 with an exponent.
		if a := math.Abs(v); a != 0 && (a < 1e-6 || a >= 1e21) {
			return fmt.Errorf("%w: %g", errNotInteger, v)
		}
		var buf [32]byte
		text := strconv.AppendFloat(buf[:0], v, 'f', -1, 64)
		if _, err := strconv.ParseInt(string(text), 10, 64); err != nil {
			return fmt.Errorf("%w: %s", errNotInteger, text)
		}
		w.rawBytes(text)
	case json.Number:
		if _, err := v.Int64(); err != nil {
			return fmt.Errorf("%w: %.40s", errNotInteger, v)
		}
		w.raw(string(v))
	case []any:
		w.byte('[')
		for i, e := range v {
			if i > 0 {
				w.byte(',')
			}
			if err := w.any(e); err != nil {
				return err
			}
		}
		w.byte(']')
	case map[string]any:
		return w.object(nil, v, nil)
	default:
		return fmt.Errorf("unsupported type %T", v) // programmer error, reported
	}
	return nil
}

// canonicalTargets returns the canonical JSON of t, sharing src (the signed
// part as received) when they are equal. order lists the target paths as
// received; ordered says they were strictly increasing.
func canonicalTargets(t *metadata.TargetsType, src []byte, order []string, ordered bool) ([]byte, error) {
	w := &canonWriter{src: src}
	names := []string{"_type", "expires", "spec_version", "targets", "version"}
	if t.Delegations != nil {
		names = []string{"_type", "delegations", "expires", "spec_version", "targets", "version"}
	}
	err := w.object(names, t.UnrecognizedFields, func(name string) error {
		switch name {
		case "_type":
			w.str(t.Type)
		case "delegations":
			return w.delegations(t.Delegations)
		case "expires":
			b, err := t.Expires.MarshalJSON()
			if err != nil {
				return err
			}
			w.rawBytes(b) // RFC 3339: nothing to escape
		case "spec_version":
			w.str(t.SpecVersion)
		case "targets":
			return w.targets(t.Targets, order, ordered)
		case "version":
			w.int(t.Version)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return w.bytes(), nil
}

func (w *canonWriter) targets(m map[string]*metadata.TargetFiles, order []string, ordered bool) error {
	if m == nil {
		w.raw("null")
		return nil
	}
	paths := order
	if !ordered || len(order) != len(m) {
		paths = make([]string, 0, len(m))
		for p := range m {
			paths = append(paths, p)
		}
		slices.Sort(paths)
	}
	w.byte('{')
	for i, p := range paths {
		if i > 0 {
			w.byte(',')
		}
		w.str(p)
		w.byte(':')
		if err := w.targetFile(m[p]); err != nil {
			return err
		}
	}
	w.byte('}')
	return nil
}

var (
	targetFileNames       = []string{"custom", "hashes", "length"}
	targetFileNamesCustom = targetFileNames[1:]
)

func (w *canonWriter) targetFile(tf *metadata.TargetFiles) error {
	names := targetFileNames
	if tf.Custom == nil {
		names = targetFileNamesCustom
	}
	return w.object(names, tf.UnrecognizedFields, func(name string) error {
		switch name {
		case "custom":
			return w.rawJSON(*tf.Custom)
		case "hashes":
			w.hashes(tf.Hashes)
		case "length":
			w.int(tf.Length)
		}
		return nil
	})
}

func (w *canonWriter) hashes(h metadata.Hashes) {
	if h == nil {
		w.raw("null")
		return
	}
	var buf [4]string
	algs := buf[:0]
	for a := range h {
		algs = append(algs, a)
	}
	slices.Sort(algs)
	w.byte('{')
	for i, a := range algs {
		if i > 0 {
			w.byte(',')
		}
		w.str(a)
		w.byte(':')
		w.hex(h[a])
	}
	w.byte('}')
}

func (w *canonWriter) strings(s []string) {
	if s == nil {
		w.raw("null")
		return
	}
	w.byte('[')
	for i, v := range s {
		if i > 0 {
			w.byte(',')
		}
		w.str(v)
	}
	w.byte(']')
}

func (w *canonWriter) delegations(d *metadata.Delegations) error {
	names := []string{"keys"}
	switch {
	case d.Roles != nil:
		names = []string{"keys", "roles"}
	case d.SuccinctRoles != nil:
		names = []string{"keys", "succinct_roles"}
	}
	return w.object(names, d.UnrecognizedFields, func(name string) error {
		switch name {
		case "keys":
			return w.keys(d.Keys)
		case "roles":
			w.byte('[')
			for i := range d.Roles {
				if i > 0 {
					w.byte(',')
				}
				if err := w.role(&d.Roles[i]); err != nil {
					return err
				}
			}
			w.byte(']')
			return nil
		}
		s := d.SuccinctRoles
		return w.object([]string{"bit_length", "keyids", "name_prefix", "threshold"}, s.UnrecognizedFields, func(name string) error {
			switch name {
			case "bit_length":
				w.int(int64(s.BitLength))
			case "keyids":
				w.strings(s.KeyIDs)
			case "name_prefix":
				w.str(s.NamePrefix)
			case "threshold":
				w.int(int64(s.Threshold))
			}
			return nil
		})
	})
}

func (w *canonWriter) keys(m map[string]*metadata.Key) error {
	if m == nil {
		w.raw("null")
		return nil
	}
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	w.byte('{')
	for i, id := range ids {
		if i > 0 {
			w.byte(',')
		}
		w.str(id)
		w.byte(':')
		k := m[id]
		if k == nil {
			w.raw("null")
			continue
		}
		err := w.object([]string{"keytype", "keyval", "scheme"}, k.UnrecognizedFields, func(name string) error {
			switch name {
			case "keytype":
				w.str(k.Type)
			case "keyval":
				return w.object([]string{"public"}, k.Value.UnrecognizedFields, func(string) error {
					w.str(k.Value.PublicKey)
					return nil
				})
			case "scheme":
				w.str(k.Scheme)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	w.byte('}')
	return nil
}

func (w *canonWriter) role(r *metadata.DelegatedRole) error {
	if r.Paths != nil && r.PathHashPrefixes != nil {
		// go-tuf's DelegatedRole.MarshalJSON refuses this.
		return fmt.Errorf("role %q has both paths and path_hash_prefixes", clip(r.Name))
	}
	names := []string{"keyids", "name", "terminating", "threshold"}
	switch {
	case r.Paths != nil:
		names = []string{"keyids", "name", "paths", "terminating", "threshold"}
	case r.PathHashPrefixes != nil:
		names = []string{"keyids", "name", "path_hash_prefixes", "terminating", "threshold"}
	}
	return w.object(names, r.UnrecognizedFields, func(name string) error {
		switch name {
		case "keyids":
			w.strings(r.KeyIDs)
		case "name":
			w.str(r.Name)
		case "paths":
			w.strings(r.Paths)
		case "path_hash_prefixes":
			w.strings(r.PathHashPrefixes)
		case "terminating":
			w.bool(r.Terminating)
		case "threshold":
			w.int(int64(r.Threshold))
		}
		return nil
	})
}
