package tufjson

import (
	"encoding/json"
	"fmt"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// The typed decoders of the one-pass targets decoder (targets.go), one
// per go-tuf type, each replaying what that type's UnmarshalJSON does.

// envelope decodes the document: {"signed": ..., "signatures": [...]}. It
// returns the span of the signed part as received, for the canonical
// encoder to compare against.
func (d *targetsDecoder) envelope() (*metadata.Metadata[metadata.TargetsType], []byte, error) {
	s := &d.s
	md := &metadata.Metadata[metadata.TargetsType]{}
	// What go-tuf (and manifest.ParseUnverified) check by exact name (the type and
	// the envelope's shape) and what encoding/json decodes by folded name
	// (the last case-insensitive match) may be different members.
	var exactSigned, foldSigned []byte
	var exactSignatures byte
	var typeIsTargets bool
	if s.peek() != '{' {
		_, err := s.skip()
		if err == nil {
			err = fmt.Errorf("%w: not a JSON object", ErrMalformed)
		}
		return nil, nil, err
	}
	unknown, err := d.object(envelopeFields, func(i int, exact bool) error {
		s.ws()
		start := s.pos
		if i == 1 {
			if exact {
				exactSignatures = s.peek()
			}
			return d.signatures(&md.Signatures)
		}
		if d.isNull() {
			// go-tuf decodes null to an empty document, which a later
			// member may replace; checked below if it is the last.
			md.Signed = metadata.TargetsType{}
			foldSigned = s.data[start:s.pos]
			if exact {
				exactSigned, typeIsTargets = foldSigned, false
			}
			return nil
		}
		if s.peek() != '{' {
			return s.errorf("\"signed\" is not an object")
		}
		var signed metadata.TargetsType
		var isTargets bool
		d.order, d.ordered = d.order[:0], true
		if err := d.targets(&signed, &isTargets); err != nil {
			return err
		}
		md.Signed = signed
		foldSigned = s.data[start:s.pos]
		if exact {
			exactSigned = foldSigned
			typeIsTargets = isTargets
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if s.ws(); s.pos != len(s.data) {
		return nil, nil, s.errorf("data after the document")
	}
	md.UnrecognizedFields = unknown
	switch {
	case exactSigned == nil:
		return nil, nil, fmt.Errorf("%w: \"signed\" is missing or not an object", ErrMalformed)
	case len(exactSigned) != len(foldSigned) || &exactSigned[0] != &foldSigned[0]:
		return nil, nil, fmt.Errorf("%w: \"signed\" given twice under different cases", ErrMalformed)
	case exactSignatures != '[':
		return nil, nil, fmt.Errorf("%w: \"signatures\" is missing or not a list", ErrMalformed)
	case !typeIsTargets:
		return nil, nil, fmt.Errorf("%w: expected metadata type %s", ErrWrongType, metadata.TARGETS)
	}
	seen := make(map[string]bool, len(md.Signatures))
	for _, sig := range md.Signatures {
		if seen[sig.KeyID] {
			return nil, nil, fmt.Errorf("%w: multiple signatures found for key ID %s", ErrMalformed, clip(sig.KeyID))
		}
		seen[sig.KeyID] = true
	}
	return md, foldSigned, nil
}

// signatures decodes the list into dst like encoding/json: elements are
// replaced whole (Signature has its own UnmarshalJSON), [] empties, null
// drops.
func (d *targetsDecoder) signatures(dst *[]metadata.Signature) error {
	return decodeObjects(d, dst, "signature", func(sig *metadata.Signature) error {
		unknown, err := d.object(signatureFields, func(i int, _ bool) error {
			if i == 0 {
				return d.str(&sig.KeyID)
			}
			return d.hexBytes(&sig.Signature)
		})
		sig.UnrecognizedFields = unknown
		return err
	})
}

// targets decodes the signed part. isTargets reports whether the last
// member named exactly "_type" is the string "targets", which is what
// go-tuf checks before decoding.
func (d *targetsDecoder) targets(t *metadata.TargetsType, isTargets *bool) error {
	s := &d.s
	unknown, err := d.object(targetsFields, func(i int, exact bool) error {
		switch i {
		case 0:
			if exact {
				*isTargets = false
				if s.peek() == '"' {
					err := d.str(&t.Type)
					*isTargets = err == nil && t.Type == metadata.TARGETS
					return err
				}
			}
			return d.str(&t.Type)
		case 1:
			return d.str(&t.SpecVersion)
		case 2:
			return d.int64(&t.Version)
		case 3:
			return d.time(&t.Expires)
		case 4:
			return d.targetMap(&t.Targets)
		}
		if d.isNull() {
			t.Delegations = nil
			return nil
		}
		t.Delegations = &metadata.Delegations{}
		return d.delegations(t.Delegations)
	})
	if err != nil {
		return err
	}
	for path, tf := range t.Targets {
		if tf == nil {
			// go-tuf v2.4.2 dereferences it and crashes; manifest.ParseUnverified
			// refuses it first.
			return fmt.Errorf("%w: target %q is not an object", ErrMalformed, clip(path))
		}
		tf.Path = path
	}
	t.UnrecognizedFields = unknown
	return nil
}

// targetMap decodes "targets": a repeated member adds to the map, null
// empties it.
func (d *targetsDecoder) targetMap(dst *map[string]*metadata.TargetFiles) error {
	s := &d.s
	return decodeMap(d, dst, 0, func(m map[string]*metadata.TargetFiles, path string) error {
		if n := len(d.order); n > 0 && d.order[n-1] >= path {
			d.ordered = false
		}
		d.order = append(d.order, path)
		if d.isNull() {
			m[path] = nil
			return nil
		}
		if s.peek() != '{' {
			return s.errorf("target %q is not an object", clip(path))
		}
		if len(d.files) == cap(d.files) {
			d.files = make([]metadata.TargetFiles, 0, 256)
		}
		d.files = d.files[:len(d.files)+1]
		tf := &d.files[len(d.files)-1]
		if err := d.targetFile(tf); err != nil {
			return err
		}
		m[path] = tf
		return nil
	})
}

func (d *targetsDecoder) targetFile(tf *metadata.TargetFiles) error {
	s := &d.s
	unknown, err := d.object(targetFileFields, func(i int, _ bool) error {
		switch i {
		case 0:
			return d.int64(&tf.Length)
		case 1:
			return d.hashes(&tf.Hashes)
		}
		if d.isNull() {
			tf.Custom = nil
			return nil
		}
		span, err := s.skip()
		if err != nil {
			return err
		}
		if len(d.raws) == cap(d.raws) {
			d.raws = make([]json.RawMessage, 0, 256)
		}
		d.raws = append(d.raws, span[:len(span):len(span)])
		tf.Custom = &d.raws[len(d.raws)-1]
		return nil
	})
	if err != nil {
		return err
	}
	// go-tuf's TargetFiles.UnmarshalJSON rule.
	if len(tf.Hashes) == 0 {
		return ErrEmptyHashes
	}
	tf.UnrecognizedFields = unknown
	return nil
}

func (d *targetsDecoder) hashes(dst *metadata.Hashes) error {
	return decodeMap(d, (*map[string]metadata.HexBytes)(dst), 2, func(h map[string]metadata.HexBytes, alg string) error {
		var b metadata.HexBytes
		if err := d.hexBytes(&b); err != nil {
			return err
		}
		h[alg] = b
		return nil
	})
}

func (d *targetsDecoder) delegations(dl *metadata.Delegations) error {
	s := &d.s
	unknown, err := d.object(delegationsFields, func(i int, _ bool) error {
		switch i {
		case 0:
			return d.keys(&dl.Keys)
		case 1:
			return d.roles(&dl.Roles)
		}
		if d.isNull() {
			dl.SuccinctRoles = nil
			return nil
		}
		if s.peek() != '{' {
			return s.errorf("succinct_roles is not an object")
		}
		sr := &metadata.SuccinctRoles{}
		dl.SuccinctRoles = sr
		u, err := d.object(succinctFields, func(i int, _ bool) error {
			switch i {
			case 0:
				return d.strings(&sr.KeyIDs)
			case 1:
				return d.int(&sr.Threshold)
			case 2:
				return d.int(&sr.BitLength)
			}
			return d.str(&sr.NamePrefix)
		})
		if err != nil {
			return err
		}
		// go-tuf's SuccinctRoles.UnmarshalJSON rule.
		if sr.BitLength < 1 || sr.BitLength > 32 {
			return fmt.Errorf("%w: invalid bit_length %d", ErrMalformed, sr.BitLength)
		}
		sr.UnrecognizedFields = u
		return nil
	})
	dl.UnrecognizedFields = unknown
	return err
}

func (d *targetsDecoder) keys(dst *map[string]*metadata.Key) error {
	s := &d.s
	return decodeMap(d, dst, 0, func(m map[string]*metadata.Key, id string) error {
		if d.isNull() {
			m[id] = nil // refused by the shape checks
			return nil
		}
		if s.peek() != '{' {
			return s.errorf("key %q is not an object", clip(id))
		}
		k := &metadata.Key{}
		u, err := d.object(keyFields, func(i int, _ bool) error {
			switch i {
			case 0:
				return d.str(&k.Type)
			case 1:
				return d.str(&k.Scheme)
			}
			k.Value = metadata.KeyVal{}
			if d.isNull() {
				return nil
			}
			if s.peek() != '{' {
				return s.errorf("keyval is not an object")
			}
			u, err := d.object(keyValFields, func(int, bool) error { return d.str(&k.Value.PublicKey) })
			k.Value.UnrecognizedFields = u
			return err
		})
		k.UnrecognizedFields = u
		m[id] = k
		return err
	})
}

// decodeMap decodes a JSON object into a map field with encoding/json's
// rules: null sets the map to nil, an object adds its members to the map
// (a repeated member merges into what an earlier one decoded), each member
// decoded by one. size hints a new map's capacity.
func decodeMap[V any](d *targetsDecoder, dst *map[string]V, size int, one func(m map[string]V, key string) error) error {
	s := &d.s
	if d.isNull() {
		*dst = nil
		return nil
	}
	if err := s.expect('{'); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	if *dst == nil {
		*dst = make(map[string]V, size)
	}
	m := *dst
	err := s.members(func(key string) error { return one(m, key) })
	s.depth--
	return err
}

// roles decodes the delegated roles; each element is replaced whole, as
// DelegatedRole has its own UnmarshalJSON.
func (d *targetsDecoder) roles(dst *[]metadata.DelegatedRole) error {
	return decodeObjects(d, dst, "delegated role", func(r *metadata.DelegatedRole) error {
		u, err := d.object(roleFields, func(i int, _ bool) error {
			switch i {
			case 0:
				return d.str(&r.Name)
			case 1:
				return d.strings(&r.KeyIDs)
			case 2:
				return d.int(&r.Threshold)
			case 3:
				return d.bool(&r.Terminating)
			case 4:
				return d.strings(&r.PathHashPrefixes)
			}
			return d.strings(&r.Paths)
		})
		r.UnrecognizedFields = u
		return err
	})
}

// decodeObjects decodes a JSON array of objects into a slice field the way
// encoding/json does when the element type has its own UnmarshalJSON: null
// sets the slice to nil, an array replaces the elements whole (an empty
// array gives an empty, non-nil slice), a null element is the zero value.
// what names an element in errors.
func decodeObjects[V any](d *targetsDecoder, dst *[]V, what string, one func(*V) error) error {
	s := &d.s
	if d.isNull() {
		*dst = nil
		return nil
	}
	if err := s.expect('['); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	v := (*dst)[:0]
	err := s.elements(func() error {
		var x V
		if !d.isNull() {
			if s.peek() != '{' {
				return s.errorf("%s is not an object", what)
			}
			if err := one(&x); err != nil {
				return err
			}
		}
		v = append(v, x)
		return nil
	})
	s.depth--
	if len(v) == 0 {
		v = []V{}
	}
	*dst = v
	return err
}
