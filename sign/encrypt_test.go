package sign

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/delta"
	"github.com/otaseal/otaseal/encrypt"
	"github.com/otaseal/otaseal/manifest"
)

const (
	encPath      = "acme/2.0.0/firmware.bin"
	encDeltaPath = "acme/deltas/1.1.0-2.0.0.otz"
)

// withEncryptedRelease adds release 2.0.0 encrypted for a new group key,
// and an encrypted delta to it from the plain 1.1.0, and publishes. The
// ciphertexts go to tr.images; it returns the group key.
func withEncryptedRelease(t *testing.T, tr *testRepo) *encrypt.PrivateKey {
	t.Helper()
	ctx := context.Background()
	group, err := encrypt.GenerateKey(encrypt.MLKEM768X25519)
	require.NoError(t, err)
	plain := image("e2", 5000)
	key, err := tr.repo.AddEncryptedFirmware(ctx, encPath, bytes.NewReader(plain), firmware("2.0.0", 3),
		EncryptOptions{Recipients: []*encrypt.PublicKey{group.Public()}, Params: encrypt.Params{ChunkSize: 1024}})
	require.NoError(t, err)
	patch := makePatch(t, tr.images["acme/1.1.0/firmware.bin"], plain, delta.FormatStream)
	require.NoError(t, tr.repo.AddEncryptedDelta(ctx, encDeltaPath, "acme/1.1.0/firmware.bin", encPath, bytes.NewReader(patch), DeltaKeys{To: &key}))
	require.NoError(t, tr.repo.Publish(ctx, allSigners(t)))
	for _, p := range []string{encPath, encDeltaPath} {
		rc, err := tr.repo.ReadTarget(ctx, p)
		require.NoError(t, err)
		tr.images[p], err = io.ReadAll(rc)
		rc.Close()
		require.NoError(t, err)
	}
	return group
}

// TestEncryptedReadByGoTUF: go-tuf downloads and hash-checks encrypted
// targets like any other (it ignores the member), and what it hands back
// decrypts, with the group key, to the plaintext the metadata signs.
func TestEncryptedReadByGoTUF(t *testing.T) {
	for _, consistent := range []bool{true, false} {
		t.Run(fmt.Sprintf("consistent=%v", consistent), func(t *testing.T) {
			tr := newTestRepo(t, consistent)
			group := withEncryptedRelease(t, tr)
			client := newGoTUFClient(t, serveDir(t, tr.dir), rootBytesOf(t, tr.root), tr.now)
			got, tf, err := client.fetch(encPath)
			require.NoError(t, err)
			assert.Equal(t, tr.images[encPath], got)
			fw, err := manifest.FirmwareOf(tf)
			require.NoError(t, err)
			require.NotNil(t, fw.Encryption)
			assert.Equal(t, fw.Encryption.CiphertextLength(), tf.Length)
			r := fw.Encryption.Recipient(group.KeyID())
			require.NotNil(t, r)
			key, err := group.Unwrap(r.WrappedKey, encPath, "2.0.0")
			require.NoError(t, err)
			dr, err := encrypt.NewReader(bytes.NewReader(got), key, encrypt.Params{ChunkSize: fw.Encryption.ChunkSize})
			require.NoError(t, err)
			plain, err := io.ReadAll(dr)
			require.NoError(t, err)
			sum := sha256.Sum256(plain)
			assert.Equal(t, fw.Encryption.PlaintextSHA256, sum[:])

			got, tf, err = client.fetch(encDeltaPath)
			require.NoError(t, err)
			assert.Equal(t, tr.images[encDeltaPath], got)
			d, err := manifest.DeltaOf(tf)
			require.NoError(t, err)
			require.NotNil(t, d.Encryption)
			assert.Equal(t, fw.Encryption.PlaintextSHA256, d.To.SHA256, "a delta names its to end by plaintext")
		})
	}
}

// TestEncryptedReadByTufJS: tuf-js, too, downloads encrypted targets and
// checks their hashes; the custom object it hands back holds the member.
func TestEncryptedReadByTufJS(t *testing.T) {
	node := requireTufJS(t)
	tr := newTestRepo(t, true)
	withEncryptedRelease(t, tr)
	url := serveDir(t, tr.dir)
	rootFile := filepath.Join(t.TempDir(), "root.json")
	require.NoError(t, os.WriteFile(rootFile, rootBytesOf(t, tr.root), 0o644))
	paths := []string{encPath, encDeltaPath}
	results, code, stderr := runTufJS(t, node, url, rootFile, t.TempDir(), paths...)
	require.Equal(t, 0, code, stderr)
	require.Len(t, results, len(paths))
	for i, p := range paths {
		sum := sha256.Sum256(tr.images[p])
		assert.Equal(t, hex.EncodeToString(sum[:]), results[i].SHA256, p)
		assert.Equal(t, int64(len(tr.images[p])), results[i].Length)
		e, err := manifest.ParseCustom(results[i].Custom)
		require.NoError(t, err, p)
		if e.Kind == manifest.KindFirmware {
			assert.NotNil(t, e.Firmware.Encryption)
		} else {
			assert.NotNil(t, e.Delta.Encryption)
		}
	}
}

func TestEncryptedRefusals(t *testing.T) {
	ctx := context.Background()
	tr := newTestRepo(t, false)
	withEncryptedRelease(t, tr)
	_, err := tr.repo.AddEncryptedFirmware(ctx, "acme/3.0.0/firmware.bin", bytes.NewReader([]byte("x")), firmware("3.0.0", 3), EncryptOptions{})
	assert.ErrorIs(t, err, ErrEncryption, "no recipients")

	patch := makePatch(t, tr.images["acme/1.1.0/firmware.bin"], image("e2", 5000), delta.FormatStream)
	err = tr.repo.AddDelta(ctx, "acme/deltas/x.otz", "acme/1.1.0/firmware.bin", encPath, bytes.NewReader(patch))
	assert.ErrorIs(t, err, ErrEncryption, "a plain delta to an encrypted release")
	err = tr.repo.AddEncryptedDelta(ctx, "acme/deltas/x.otz", "acme/1.1.0/firmware.bin", encPath, bytes.NewReader(patch), DeltaKeys{})
	assert.ErrorIs(t, err, ErrEncryption, "no content key")
	var wrong encrypt.ContentKey
	err = tr.repo.AddEncryptedDelta(ctx, "acme/deltas/x.otz", "acme/1.0.0/firmware.bin", encPath, bytes.NewReader(patch), DeltaKeys{To: &wrong})
	assert.ErrorIs(t, err, ErrBadDelta, "a patch from another base")
	err = tr.repo.AddEncryptedDelta(ctx, "acme/deltas/x.otz", encPath, "acme/1.1.0/firmware.bin", bytes.NewReader(patch), DeltaKeys{From: &wrong})
	assert.ErrorIs(t, err, ErrEncryption, "to a plain release")
}

// TestEncryptedEnvelopesReadByGoTUF: key envelopes are plain targets
// beside the image, which go-tuf downloads and hash-checks like any other;
// their content names the release.
func TestEncryptedEnvelopesReadByGoTUF(t *testing.T) {
	ctx := context.Background()
	tr := newTestRepo(t, true)
	k1, err := encrypt.GenerateKey(encrypt.X25519)
	require.NoError(t, err)
	k2, err := encrypt.GenerateKey(encrypt.MLKEM768X25519)
	require.NoError(t, err)
	_, err = tr.repo.AddEncryptedFirmware(ctx, "acme/3.0.0/firmware.bin", bytes.NewReader(image("e3", 2000)), firmware("3.0.0", 3),
		EncryptOptions{Envelopes: map[string][]*encrypt.PublicKey{"fleet-a": {k1.Public(), k2.Public()}}})
	require.NoError(t, err)
	_, err = tr.repo.AddEncryptedFirmware(ctx, "acme/3.0.1/firmware.bin", bytes.NewReader(image("e3", 2000)), firmware("3.0.1", 3),
		EncryptOptions{Envelopes: map[string][]*encrypt.PublicKey{"../x": {k1.Public()}}})
	assert.ErrorIs(t, err, ErrEncryption, "an envelope name is a file name")
	require.NoError(t, tr.repo.Publish(ctx, allSigners(t)))
	client := newGoTUFClient(t, serveDir(t, tr.dir), rootBytesOf(t, tr.root), tr.now)
	data, tf, err := client.fetch("acme/3.0.0/keys/fleet-a.json")
	require.NoError(t, err)
	assert.Nil(t, tf.Custom, "an envelope is a plain target")
	env, err := manifest.ParseKeyEnvelope(data)
	require.NoError(t, err)
	assert.Equal(t, "acme/3.0.0/firmware.bin", env.Target)
	require.Len(t, env.Recipients, 2)
	_, err = k2.Unwrap(env.Recipients[1].WrappedKey, "acme/3.0.0/firmware.bin", "3.0.0")
	assert.NoError(t, err)
	_, tf, err = client.fetch("acme/3.0.0/firmware.bin")
	require.NoError(t, err)
	fw, err := manifest.FirmwareOf(tf)
	require.NoError(t, err)
	assert.Equal(t, []string{"acme/3.0.0/keys/fleet-a.json"}, fw.Encryption.Envelopes)
}
