package sign

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
)

func TestCheckName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"timestamp.json", true},
		{"targets/acme/1.0.0/fw.bin", true},
		{"", false},
		{"/etc/passwd", false},
		{"../x", false},
		{"a/../b", false},
		{"a/./b", false},
		{"a//b", false},
		{"a/", false},
		{`a\b`, false},
		{"a\x00b", false},
		{"a\nb", false},
	}
	for _, tt := range tests {
		got := CheckName(tt.name)
		if tt.ok {
			assert.NoError(t, got, "%q", tt.name)
		} else {
			assert.ErrorIs(t, got, ErrBadName, "%q", tt.name)
		}
	}
}

func TestDirStorage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := NewDirStorage(dir)
	require.NoError(t, err)

	_, err = s.Get(ctx, "metadata/timestamp.json")
	assert.ErrorIs(t, err, ErrBlobNotFound)
	require.NoError(t, s.Put(ctx, "metadata/timestamp.json", bytes.NewReader([]byte("one"))))
	require.NoError(t, s.Put(ctx, "metadata/timestamp.json", bytes.NewReader([]byte("two"))))
	require.NoError(t, s.Put(ctx, "targets/a/b.bin", bytes.NewReader([]byte("bin"))))
	rc, err := s.Get(ctx, "metadata/timestamp.json")
	require.NoError(t, err)
	got, err := io.ReadAll(rc)
	require.NoError(t, rc.Close())
	require.NoError(t, err)
	assert.Equal(t, "two", string(got))

	// A write that fails midway leaves the old content and no stray file.
	err = s.Put(ctx, "metadata/timestamp.json", io.MultiReader(bytes.NewReader([]byte("partial")), errReader{}))
	require.ErrorIs(t, err, errInjected)
	b, err := os.ReadFile(filepath.Join(dir, "metadata", "timestamp.json"))
	require.NoError(t, err)
	assert.Equal(t, "two", string(b))

	// A temp file of a write in progress is not listed.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "metadata", ".tmp-123"), nil, 0o644))
	names, err := s.List(ctx, "")
	require.NoError(t, err)
	assert.Equal(t, []string{"metadata/timestamp.json", "targets/a/b.bin"}, names)
	names, err = s.List(ctx, "targets/")
	require.NoError(t, err)
	assert.Equal(t, []string{"targets/a/b.bin"}, names)

	assert.ErrorIs(t, s.Put(ctx, "../escape", bytes.NewReader(nil)), ErrBadName)
	_, err = s.Get(ctx, "../../etc/passwd")
	assert.ErrorIs(t, err, ErrBadName)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	assert.ErrorIs(t, s.Put(cancelled, "x", bytes.NewReader([]byte("x"))), context.Canceled)
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errInjected }

// Corruption probe: flipping any byte of a signed, published document
// either breaks parsing or makes the signature check fail.
func TestCorruptedDocumentRefused(t *testing.T) {
	tr := newTestRepo(t, true)
	p, err := tr.repo.Policy()
	require.NoError(t, err)
	acme, _ := tr.repo.Targets("acme")
	doc := mustBytes(t, acme)
	d, err := ParseDocument(doc)
	require.NoError(t, err)
	_, err = p.Check("acme", d.Payload(), d.Signatures())
	require.NoError(t, err)

	accepted := 0
	for i := range doc {
		bad := bytes.Clone(doc)
		bad[i] ^= 0x01
		d, err := ParseDocument(bad)
		if err != nil {
			continue
		}
		if _, err := p.Check("acme", d.Payload(), d.Signatures()); err == nil {
			// Only a flip that leaves the canonical payload and the
			// signature bytes as they were (e.g. whitespace) may pass.
			if !bytes.Equal(d.Payload(), mustPayload(t, acme)) {
				t.Errorf("flip at byte %d changed the payload and still verified", i)
			}
			accepted++
		}
	}
	assert.Less(t, accepted, len(doc)/10)
}

func mustPayload(t *testing.T, md *manifest.Metadata[manifest.Targets]) []byte {
	b, err := Payload(md)
	require.NoError(t, err)
	return b
}

// The online refresh re-signs the snapshot only when it nears expiry.
func TestOnlineRefreshSnapshotRule(t *testing.T) {
	ctx := context.Background()
	tr := newTestRepo(t, true)
	snapV := tr.repo.Timestamp().Signed.Meta["snapshot.json"].Version

	tr.now = tr.now.Add(time.Hour)
	require.NoError(t, tr.repo.Publish(ctx, onlineSigners(t)))
	assert.Equal(t, snapV, tr.repo.Timestamp().Signed.Meta["snapshot.json"].Version)

	tr.now = tr.now.Add(DefaultSnapshotExpiry / 2)
	require.NoError(t, tr.repo.Publish(ctx, onlineSigners(t)))
	assert.Equal(t, snapV+1, tr.repo.Timestamp().Signed.Meta["snapshot.json"].Version)
}
