package manifest

import (
	"crypto/sha256"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func TestFirmwareFor(t *testing.T) {
	r := newTestRepo(t)
	tg := &r.targets.Signed
	add := func(path, v string, hw ...string) {
		tf, err := metadata.TargetFile().FromBytes(path, []byte(path), "sha256")
		require.NoError(t, err)
		require.NoError(t, SetFirmware(tf, Firmware{Version: MustParseVersion(v), HardwareIDs: hw}))
		tg.Targets[path] = tf
	}
	add("acme-gw-r2/1.1.0-rc.1/firmware.bin", "1.1.0-rc.1", "acme-gw-r2")
	add("acme-gw-r2/10.0.0/firmware.bin", "10.0.0", "acme-gw-r2", "acme-gw-r3")
	add("acme-gw-r3/2.0.0/firmware.bin", "2.0.0", "acme-gw-r3")
	// Same precedence, different build metadata: ordered by path.
	add("acme-gw-r2/1.0.0+b/firmware.bin", "1.0.0+b", "acme-gw-r2")

	got, err := FirmwareFor(tg, "acme-gw-r2")
	require.NoError(t, err)
	var paths []string
	for _, rel := range got {
		paths = append(paths, rel.Path)
		assert.Same(t, tg.Targets[rel.Path], rel.File)
	}
	assert.Equal(t, []string{
		"acme-gw-r2/1.0.0+b/firmware.bin",
		"acme-gw-r2/1.0.0/firmware.bin",
		"acme-gw-r2/1.1.0-rc.1/firmware.bin",
		"acme-gw-r2/1.1.0/firmware.bin",
		"acme-gw-r2/10.0.0/firmware.bin",
	}, paths)

	got, err = FirmwareFor(tg, "acme-gw-r3")
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, "2.0.0", got[0].Firmware.Version.String())

	got, err = FirmwareFor(tg, "nobody")
	require.NoError(t, err)
	assert.Empty(t, got)

	add("acme-gw-r2/bad/firmware.bin", "3.0.0", "acme-gw-r2")
	bad := json.RawMessage(`{"otaseal":{"kind":"firmware","version":"1","security_version":1,"hardware_ids":["acme-gw-r2"]}}`)
	tg.Targets["acme-gw-r2/bad/firmware.bin"].Custom = &bad
	_, err = FirmwareFor(tg, "acme-gw-r2")
	var te *EntryError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "acme-gw-r2/bad/firmware.bin", te.Path)
	assertRule(t, err, "version", RuleMalformedVersion)
}

func TestDeltasTo(t *testing.T) {
	r := newTestRepo(t)
	tg := &r.targets.Signed
	from := sha256.Sum256([]byte("image 1.0.0"))
	to := "acme-gw-r2/1.1.0/firmware.bin"

	got, err := DeltasTo(tg, to, from[:])
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, "acme-gw-r2/deltas/1.0.0-1.1.0.bsdiff", got[0].Path)
	assert.Equal(t, FormatBSDIFF40, got[0].Delta.Format)

	// A second, smaller patch in the other format comes first.
	toSum := tg.Targets[to].Hashes["sha256"]
	small, err := metadata.TargetFile().FromBytes("z.zst", []byte("p"), "sha256")
	require.NoError(t, err)
	require.NoError(t, SetDelta(small, Delta{Format: FormatZstdStream,
		From: DeltaEnd{Path: "acme-gw-r2/1.0.0/firmware.bin", Length: 11, SHA256: from[:]},
		To:   DeltaEnd{Path: to, Length: 11, SHA256: toSum}}))
	tg.Targets["z.zst"] = small
	// A patch whose "to" disagrees with the signed target is useless.
	wrong, err := metadata.TargetFile().FromBytes("w.zst", []byte(""), "sha256")
	require.NoError(t, err)
	other := sha256.Sum256([]byte("other"))
	require.NoError(t, SetDelta(wrong, Delta{Format: FormatZstdStream,
		From: DeltaEnd{Path: "acme-gw-r2/1.0.0/firmware.bin", Length: 11, SHA256: from[:]},
		To:   DeltaEnd{Path: to, Length: 11, SHA256: other[:]}}))
	tg.Targets["w.zst"] = wrong

	got, err = DeltasTo(tg, to, from[:])
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, "z.zst", got[0].Path)
	assert.Equal(t, "acme-gw-r2/deltas/1.0.0-1.1.0.bsdiff", got[1].Path)

	// Another base image: nothing.
	got, err = DeltasTo(tg, to, other[:])
	require.NoError(t, err)
	assert.Empty(t, got)
	// Unknown destination: nothing.
	got, err = DeltasTo(tg, "acme-gw-r2/9.9.9/firmware.bin", from[:])
	require.NoError(t, err)
	assert.Empty(t, got)
	// A malformed delta object is reported with its path.
	bad := json.RawMessage(`{"otaseal":{"kind":"delta","format":"xdelta"}}`)
	tg.Targets["w.zst"].Custom = &bad
	_, err = DeltasTo(tg, to, from[:])
	assert.ErrorAs(t, err, new(*EntryError))
	assertRule(t, err, "format", RuleUnknownFormat)
}
