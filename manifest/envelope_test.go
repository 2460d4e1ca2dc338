package manifest

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// encoding/json decodes members whose names match a field case-insensitively,
// repeats included; each such member reaches go-tuf's decoder, which
// dereferences every target entry. None of these may panic.
func TestEnvelopeCaseAndRepeats(t *testing.T) {
	const valid = `{"_type":"targets","spec_version":"1.0.31","version":1,"expires":"2030-01-01T00:00:00Z","targets":{}}`
	const evil = `{"_type":"targets","targets":{"x":null}}`
	for _, doc := range []string{
		`{"signed":` + valid + `,"Signed":` + evil + `,"signatures":[]}`,
		`{"signed":` + evil + `,"signed":` + valid + `,"signatures":[]}`,
		`{"SIGNED":` + evil + `,"signed":` + valid + `,"signatures":[]}`,
		`{"signed":{"_type":"targets","spec_version":"1.0.31","version":1,"expires":"2030-01-01T00:00:00Z","targets":{},"targets":{"x":null}},"signatures":[]}`,
		`{"signed":{"_type":"targets","spec_version":"1.0.31","version":1,"expires":"2030-01-01T00:00:00Z","targets":{},"Targets":{"x":null}},"signatures":[]}`,
		`{"signed":` + valid + `}`,
		`{"signatures":[]}`,
		`{"signed":5,"signatures":[]}`,
	} {
		assert.NotPanics(t, func() {
			_, err := ParseUnverified[Targets](RoleTargets, []byte(doc), Limits{})
			assert.ErrorIs(t, err, ErrMalformed, doc)
		})
	}
	// What encoding/json merges away or skips is no crash, and go-tuf
	// reads it: a null entry replaced by a later "targets" member, a null
	// map, a null "signed" before the real one. (The envelope itself must
	// still have "signed" and "signatures" spelled exactly.)
	for _, doc := range []string{
		`{"signed":{"_type":"targets","spec_version":"1.0.31","version":1,"expires":"2030-01-01T00:00:00Z","targets":null},"signatures":[]}`,
		`{"signed":{"_type":"targets","spec_version":"1.0.31","version":1,"expires":"2030-01-01T00:00:00Z","targets":{"x":null},"targets":null},"signatures":[]}`,
		`{"signed":null,"signed":` + valid + `,"signatures":[]}`,
	} {
		_, err := ParseUnverified[Targets](RoleTargets, []byte(doc), Limits{})
		assert.NoError(t, err, doc)
	}
}
