package verify_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/delta"
	"github.com/otaseal/otaseal/encrypt"
	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
	"github.com/otaseal/otaseal/verify"
)

// encImage is a test image of n bytes that diffs well against its
// neighbours.
func encImage(version string, n int) []byte {
	b := bytes.Repeat([]byte("firmware "+version+" "), n/len("firmware "+version+" ")+1)[:n]
	copy(b[n/2:], version) // a change in the middle
	return b
}

// releaseEncrypted publishes version encrypted for recipients, and an
// encrypted delta in format from the release from, if any. It returns the
// content key.
func (f *fleet) releaseEncrypted(t *testing.T, version string, sv uint64, from string, keys map[string]encrypt.ContentKey, params encrypt.Params, format delta.Format, recipients ...*encrypt.PublicKey) {
	ctx := context.Background()
	image := encImage(version, 20000)
	fw := manifest.Firmware{Version: manifest.MustParseVersion(version), SecurityVersion: sv, HardwareIDs: []string{f.hardwareID}}
	key, err := f.repo.AddEncryptedFirmware(ctx, f.imagePath(version), bytes.NewReader(image), fw, sign.EncryptOptions{Recipients: recipients, Params: params})
	require.NoError(t, err)
	keys[version] = key
	f.images[version] = image
	if from != "" {
		s, err := delta.Diff(f.images[from], image)
		require.NoError(t, err)
		var patch bytes.Buffer
		require.NoError(t, s.Encode(&patch, format))
		ext := map[delta.Format]string{delta.FormatStream: "otz", delta.FormatBSDIFF40: "bsdiff"}[format]
		fromKey, toKey := keys[from], key
		require.NoError(t, f.repo.AddEncryptedDelta(ctx, fmt.Sprintf("%s/deltas/%s-%s.%s", f.hardwareID, from, version, ext),
			f.imagePath(from), f.imagePath(version), &patch, sign.DeltaKeys{From: &fromKey, To: &toKey}))
	}
	require.NoError(t, f.repo.Publish(ctx, f.signers))
}

func genKey(t *testing.T, kem encrypt.KEM) *encrypt.PrivateKey {
	k, err := encrypt.GenerateKey(kem)
	require.NoError(t, err)
	return k
}

// encryptedDevice provisions a device running the plaintext of 1.0.0 with
// the given keys.
func encryptedDevice(t *testing.T, f *fleet, keys ...verify.DecryptionKey) *testDevice {
	d := factoryDevice(t, f, f.hardwareID, f.images["1.0.0"])
	d.keys = keys
	_, err := d.cycle().Provision(context.Background(), f.imagePath("1.0.0"), "a")
	require.NoError(t, err)
	return d
}

func slotBytes(t *testing.T, d *testDevice, slot string) []byte {
	r, err := d.slots.Open(slot)
	require.NoError(t, err)
	defer r.Close()
	var buf bytes.Buffer
	_, err = io.Copy(&buf, io.NewSectionReader(r, 0, 1<<30))
	require.NoError(t, err)
	return buf.Bytes()
}

// TestEncryptedInstall: both KEMs, both ciphers, several chunk sizes, and
// both patch formats install end to end; the slot holds the plaintext.
func TestEncryptedInstall(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		kem    encrypt.KEM
		params encrypt.Params
		format delta.Format
	}{
		{encrypt.MLKEM768X25519, encrypt.Params{}, delta.FormatStream},
		{encrypt.X25519, encrypt.Params{ChunkSize: encrypt.MinChunkSize}, delta.FormatBSDIFF40},
		{encrypt.MLKEM768X25519, encrypt.Params{Cipher: encrypt.ChaCha20Poly1305, ChunkSize: 1000}, delta.FormatBSDIFF40},
		{encrypt.X25519, encrypt.Params{Cipher: encrypt.ChaCha20Poly1305, ChunkSize: 4096}, delta.FormatStream},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%v/%v/%d/%v", tc.kem, tc.params.Cipher, tc.params.ChunkSize, tc.format), func(t *testing.T) {
			f, err := newFleet("acme-gw-r2")
			require.NoError(t, err)
			t.Cleanup(f.close)
			group, other := genKey(t, tc.kem), genKey(t, encrypt.MLKEM768X25519)
			keys := map[string]encrypt.ContentKey{}
			f.releaseEncrypted(t, "1.0.0", 1, "", keys, tc.params, tc.format, other.Public(), group.Public())
			f.releaseEncrypted(t, "1.1.0", 2, "1.0.0", keys, tc.params, tc.format, group.Public(), other.Public())

			d := encryptedDevice(t, f, group)
			c := d.cycle()
			u, err := c.Check(ctx)
			require.NoError(t, err)
			require.NotNil(t, u.Patch, "the encrypted delta is offered")
			require.NotNil(t, u.Patch.Delta.Encryption)
			img := u.Image("b")
			assert.Equal(t, int64(len(f.images["1.1.0"])), img.Length, "the record is the plaintext's")
			_, err = c.Begin(ctx, u, "b")
			require.NoError(t, err)
			rep, err := c.Install(ctx, u)
			require.NoError(t, err)
			assert.Equal(t, u.Patch.Path, rep.Patch, "installed through the patch, not the full image (%v)", rep.PatchErr)
			assert.Equal(t, f.images["1.1.0"], slotBytes(t, d, "b"))

			// The full image, decrypted straight into the slot.
			full := *u
			full.Patch = nil
			var buf bytes.Buffer
			require.NoError(t, c.Client.Install(ctx, &full, &buf, verify.InstallOptions{}))
			assert.Equal(t, f.images["1.1.0"], buf.Bytes())

			d.booted = "b"
			_, err = c.Confirm(ctx)
			require.NoError(t, err)
			assert.Equal(t, "1.1.0", d.status().Installed.Version.String())
		})
	}
}

// refused asserts that installing u failed and nothing counts: the slot
// does not hold the image, Confirm refuses, 1.0.0 is still installed.
func refused(t *testing.T, d *testDevice, c *verify.Cycle, u *verify.Update, err error, want error) {
	t.Helper()
	require.Error(t, err)
	if want != nil {
		assert.ErrorIs(t, err, want)
	}
	ctx := context.Background()
	st := d.status()
	assert.Equal(t, "1.0.0", st.Installed.Version.String(), "nothing counted as installed")
	if st.Pending != nil {
		ok, err := c.SlotHolds(*st.Pending)
		require.NoError(t, err)
		assert.False(t, ok, "the slot must not hold the image")
		_, err = c.Confirm(ctx)
		assert.ErrorIs(t, err, verify.ErrSlotContent)
	}
}

// TestEncryptedRefusals: a device without the key, a stream changed in
// any of the ways STREAM detects (published with valid TUF hashes by a
// publisher gone wrong, so that only the decryption can catch it), a
// plaintext other than the signed one, and a wrapped key moved from
// another release are all refused, with nothing counted as installed.
func TestEncryptedRefusals(t *testing.T) {
	ctx := context.Background()
	group := genKey(t, encrypt.MLKEM768X25519)
	const chunk = encrypt.MinChunkSize
	params := encrypt.Params{ChunkSize: chunk}
	newEncFleet := func(t *testing.T) (*fleet, map[string]encrypt.ContentKey) {
		f, err := newFleet("acme-gw-r2")
		require.NoError(t, err)
		t.Cleanup(f.close)
		keys := map[string]encrypt.ContentKey{}
		f.releaseEncrypted(t, "1.0.0", 1, "", keys, params, delta.FormatStream, group.Public())
		return f, keys
	}
	// publishRaw publishes 1.1.0 as the given ciphertext and member.
	publishRaw := func(t *testing.T, f *fleet, ct []byte, enc *manifest.Encryption, image []byte) {
		fw := manifest.Firmware{Version: manifest.MustParseVersion("1.1.0"), SecurityVersion: 2, HardwareIDs: []string{f.hardwareID}, Encryption: enc}
		require.NoError(t, f.repo.AddFirmware(ctx, f.imagePath("1.1.0"), bytes.NewReader(ct), fw))
		require.NoError(t, f.repo.Publish(ctx, f.signers))
		f.images["1.1.0"] = image
	}
	// sealed encrypts image for group as 1.1.0 and returns the parts.
	sealed := func(t *testing.T, image []byte) ([]byte, *manifest.Encryption) {
		key, err := encrypt.NewContentKey(nil)
		require.NoError(t, err)
		var ct bytes.Buffer
		w, err := encrypt.NewWriter(&ct, key, params, nil)
		require.NoError(t, err)
		w.Write(image)
		require.NoError(t, w.Close())
		wrapped, err := encrypt.Wrap(group.Public(), key, "acme-gw-r2/1.1.0/firmware.bin", "1.1.0")
		require.NoError(t, err)
		sum := sha256Sum(image)
		return ct.Bytes(), &manifest.Encryption{Cipher: manifest.CipherAES256GCM, ChunkSize: chunk, PlaintextLength: int64(len(image)), PlaintextSHA256: sum,
			Recipients: []manifest.Recipient{{KeyID: group.KeyID(), KEM: manifest.KEMMLKEM768X25519, WrappedKey: wrapped}}}
	}
	install := func(t *testing.T, d *testDevice) (*verify.Cycle, *verify.Update, error) {
		c := d.cycle()
		u, err := c.Check(ctx)
		require.NoError(t, err)
		if _, err := c.Begin(ctx, u, "b"); err != nil {
			return c, u, err
		}
		_, err = c.Install(ctx, u)
		return c, u, err
	}

	t.Run("no matching key", func(t *testing.T) {
		f, keys := newEncFleet(t)
		f.releaseEncrypted(t, "1.1.0", 2, "", keys, params, delta.FormatStream, group.Public())
		d := encryptedDevice(t, f, group)
		d.keys = []verify.DecryptionKey{genKey(t, encrypt.MLKEM768X25519)}
		c, u, err := install(t, d)
		refused(t, d, c, u, err, verify.ErrNoDecryptionKey)
		assert.Nil(t, d.status().Pending, "Begin refused before the state changed")
		_, err = d.slots.Open("b")
		assert.Error(t, err, "slot b never opened")
		d.keys = nil
		_, _, err = install(t, d)
		assert.ErrorIs(t, err, verify.ErrNoDecryptionKey, "no key at all")
	})

	image := encImage("1.1.0", 5*chunk+10)
	body := func(ct []byte, i int) []byte { // chunk i of the stream
		start := encrypt.HeaderSize + i*(chunk+encrypt.TagSize)
		return ct[start:min(len(ct), start+chunk+encrypt.TagSize)]
	}
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	streams := []struct {
		name   string
		change func(ct []byte) []byte
		want   error
	}{
		{"flipped bit in chunk 0", func(ct []byte) []byte { ct[encrypt.HeaderSize+3] ^= 1; return ct }, encrypt.ErrAuth},
		{"flipped bit in chunk 3", func(ct []byte) []byte { ct[encrypt.HeaderSize+3*(chunk+16)+7] ^= 0x80; return ct }, encrypt.ErrAuth},
		{"flipped bit in the last tag", func(ct []byte) []byte { ct[len(ct)-1] ^= 1; return ct }, encrypt.ErrAuth},
		{"flipped bit in the header", func(ct []byte) []byte { ct[20] ^= 1; return ct }, encrypt.ErrAuth},
		{"reordered", func(ct []byte) []byte {
			return join(ct[:encrypt.HeaderSize], body(ct, 1), body(ct, 0), body(ct, 2), body(ct, 3), body(ct, 4), body(ct, 5))
		}, encrypt.ErrAuth},
		{"duplicated", func(ct []byte) []byte {
			return join(ct[:encrypt.HeaderSize], body(ct, 0), body(ct, 0), body(ct, 2), body(ct, 3), body(ct, 4), body(ct, 5))
		}, encrypt.ErrAuth},
		{"truncated", func(ct []byte) []byte { return ct[:encrypt.HeaderSize+4*(chunk+16)] }, verify.ErrEncryption},
		{"extended", func(ct []byte) []byte { return join(ct, body(ct, 5)) }, verify.ErrEncryption},
	}
	for _, tc := range streams {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := newEncFleet(t)
			ct, enc := sealed(t, image)
			publishRaw(t, f, tc.change(bytes.Clone(ct)), enc, image)
			d := encryptedDevice(t, f, group)
			c, u, err := install(t, d)
			refused(t, d, c, u, err, tc.want)
		})
	}
	t.Run("truncated with a matching length", func(t *testing.T) {
		// The member claims the shorter plaintext: the length check passes
		// and the stream itself must say it ends early.
		f, _ := newEncFleet(t)
		ct, enc := sealed(t, image)
		enc.PlaintextLength = 4 * chunk
		publishRaw(t, f, ct[:encrypt.HeaderSize+4*(chunk+16)], enc, image[:4*chunk])
		d := encryptedDevice(t, f, group)
		c, u, err := install(t, d)
		refused(t, d, c, u, err, encrypt.ErrTruncated)
	})
	t.Run("plaintext other than signed", func(t *testing.T) {
		f, _ := newEncFleet(t)
		ct, enc := sealed(t, image)
		enc.PlaintextSHA256 = sha256Sum([]byte("another image"))
		publishRaw(t, f, ct, enc, image)
		d := encryptedDevice(t, f, group)
		c, u, err := install(t, d)
		refused(t, d, c, u, err, verify.ErrHashMismatch)
	})
	t.Run("ciphertext changed in transit", func(t *testing.T) {
		f, keys := newEncFleet(t)
		f.releaseEncrypted(t, "1.1.0", 2, "", keys, params, delta.FormatStream, group.Public())
		f.setTamper(func(path string, b []byte) []byte {
			if bytes.Contains([]byte(path), []byte("1.1.0/")) {
				b = bytes.Clone(b)
				b[len(b)/2] ^= 1
			}
			return b
		})
		d := encryptedDevice(t, f, group)
		c, u, err := install(t, d)
		refused(t, d, c, u, err, nil)
	})
	t.Run("wrapped key moved from another release", func(t *testing.T) {
		// 1.1.0 is encrypted under 1.0.0's content key, and 1.0.0's
		// recipient entry is copied into its metadata: the device holds
		// the right key, but the wrap is bound to 1.0.0.
		f, keys := newEncFleet(t)
		tf, _, err := d0(t, f).FindTarget(ctx, f.imagePath("1.0.0"))
		require.NoError(t, err)
		fw0, err := manifest.FirmwareOf(tf)
		require.NoError(t, err)
		var ct bytes.Buffer
		w, err := encrypt.NewWriter(&ct, keys["1.0.0"], params, nil)
		require.NoError(t, err)
		w.Write(image)
		require.NoError(t, w.Close())
		enc := *fw0.Encryption
		enc.PlaintextLength, enc.PlaintextSHA256 = int64(len(image)), sha256Sum(image)
		publishRaw(t, f, ct.Bytes(), &enc, image)
		d := encryptedDevice(t, f, group)
		c, u, err := install(t, d)
		refused(t, d, c, u, err, encrypt.ErrUnwrap)
		assert.ErrorIs(t, err, verify.ErrEncryption)
		assert.Nil(t, d.status().Pending, "refused at Begin")
	})
	t.Run("bad encrypted patch falls back to the full image", func(t *testing.T) {
		f, keys := newEncFleet(t)
		f.releaseEncrypted(t, "1.1.0", 2, "1.0.0", keys, params, delta.FormatStream, group.Public())
		f.setTamper(func(path string, b []byte) []byte {
			if bytes.Contains([]byte(path), []byte("/deltas/")) {
				b = bytes.Clone(b)
				b[encrypt.HeaderSize+2] ^= 1
			}
			return b
		})
		d := encryptedDevice(t, f, group)
		c, u, err := install(t, d)
		require.NoError(t, err)
		require.NotNil(t, u.Patch)
		assert.Equal(t, f.images["1.1.0"], slotBytes(t, d, "b"))
		_ = c
	})
}

// d0 is a refreshed client of a fresh device, for looking up targets.
func d0(t *testing.T, f *fleet) *verify.Client {
	d := factoryDevice(t, f, f.hardwareID, f.images["1.0.0"])
	c := d.cycle()
	require.NoError(t, c.Client.Refresh(context.Background()))
	return c.Client
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// BenchmarkInstallEncrypted installs the same 16 MiB image plain and
// encrypted from a server on 127.0.0.1 into io.Discard (MB/s and allocs;
// the test server reads each file whole, so B/op holds the image once;
// the difference between the two is the device's). examples/encbench
// compares whole processes, time and peak RSS, at 100 MiB:
//
//	go test -run '^$' -bench InstallEncrypted -benchmem ./verify
func BenchmarkInstallEncrypted(b *testing.B) {
	ctx := context.Background()
	f, err := newFleet("bench")
	require.NoError(b, err)
	defer f.close()
	image := make([]byte, 16<<20)
	rand.Read(image)
	group, err := encrypt.GenerateKey(encrypt.MLKEM768X25519)
	require.NoError(b, err)
	fw := func(v string) manifest.Firmware {
		return manifest.Firmware{Version: manifest.MustParseVersion(v), SecurityVersion: 1, HardwareIDs: []string{"bench"}}
	}
	require.NoError(b, f.repo.AddFirmware(ctx, "bench/1.0.0/firmware.bin", bytes.NewReader(image), fw("1.0.0")))
	_, err = f.repo.AddEncryptedFirmware(ctx, "bench/2.0.0/firmware.bin", bytes.NewReader(image), fw("2.0.0"),
		sign.EncryptOptions{Recipients: []*encrypt.PublicKey{group.Public()}})
	require.NoError(b, err)
	require.NoError(b, f.repo.Publish(ctx, f.signers))
	f.images["1.0.0"] = image
	_, root, err := f.repo.DeviceRoot()
	require.NoError(b, err)
	store := &verify.MemTrustStore{}
	require.NoError(b, verify.Bootstrap(ctx, store, root, manifest.Limits{}))
	c, err := verify.New(ctx, verify.Config{MetadataURL: f.srv.URL + "/metadata/", TargetsURL: f.srv.URL + "/targets/",
		Store: store, Clock: verify.SystemClock{}, DecryptionKeys: []verify.DecryptionKey{group}})
	require.NoError(b, err)
	require.NoError(b, c.Refresh(ctx))
	for _, tc := range []struct{ name, path string }{{"plain", "bench/1.0.0/firmware.bin"}, {"encrypted", "bench/2.0.0/firmware.bin"}} {
		tf, _, err := c.FindTarget(ctx, tc.path)
		require.NoError(b, err)
		rel, err := manifest.FirmwareOf(tf)
		require.NoError(b, err)
		u := &verify.Update{Release: manifest.Release{Path: tc.path, File: tf, Firmware: rel}}
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(image)))
			b.ReportAllocs()
			for b.Loop() {
				if err := c.Install(ctx, u, io.Discard, verify.InstallOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestEncryptedEnvelopes: a release whose recipients live in key
// envelopes installs on a device listed in one; a device in none is
// refused before anything is written; an envelope of another release is
// refused even though it is signed.
func TestEncryptedEnvelopes(t *testing.T) {
	ctx := context.Background()
	dev, stranger := genKey(t, encrypt.X25519), genKey(t, encrypt.MLKEM768X25519)
	others := []*encrypt.PublicKey{genKey(t, encrypt.X25519).Public(), genKey(t, encrypt.X25519).Public()}
	newEnvFleet := func(t *testing.T) *fleet {
		f, err := newFleet("acme-gw-r2")
		require.NoError(t, err)
		t.Cleanup(f.close)
		f.images["1.0.0"] = encImage("1.0.0", 20000)
		fw := manifest.Firmware{Version: manifest.MustParseVersion("1.0.0"), SecurityVersion: 1, HardwareIDs: []string{f.hardwareID}}
		_, err = f.repo.AddEncryptedFirmware(ctx, f.imagePath("1.0.0"), bytes.NewReader(f.images["1.0.0"]), fw, sign.EncryptOptions{
			Envelopes: map[string][]*encrypt.PublicKey{"eu": append([]*encrypt.PublicKey{dev.Public()}, others...), "us": others}})
		require.NoError(t, err)
		require.NoError(t, f.repo.Publish(ctx, f.signers))
		return f
	}
	t.Run("installs from an envelope", func(t *testing.T) {
		f := newEnvFleet(t)
		f.images["1.1.0"] = encImage("1.1.0", 30000)
		fw := manifest.Firmware{Version: manifest.MustParseVersion("1.1.0"), SecurityVersion: 2, HardwareIDs: []string{f.hardwareID}}
		_, err := f.repo.AddEncryptedFirmware(ctx, f.imagePath("1.1.0"), bytes.NewReader(f.images["1.1.0"]), fw, sign.EncryptOptions{
			Envelopes: map[string][]*encrypt.PublicKey{"us": others, "eu": {dev.Public()}}})
		require.NoError(t, err)
		require.NoError(t, f.repo.Publish(ctx, f.signers))
		d := encryptedDevice(t, f, dev)
		c := d.cycle()
		u, err := c.Check(ctx)
		require.NoError(t, err)
		assert.Empty(t, u.Release.Firmware.Encryption.Recipients)
		assert.Equal(t, []string{"acme-gw-r2/1.1.0/keys/eu.json", "acme-gw-r2/1.1.0/keys/us.json"}, u.Release.Firmware.Encryption.Envelopes)
		_, err = c.Begin(ctx, u, "b")
		require.NoError(t, err)
		_, err = c.Install(ctx, u)
		require.NoError(t, err)
		assert.Equal(t, f.images["1.1.0"], slotBytes(t, d, "b"))

		outsider := encryptedDevice(t, f, stranger)
		oc := outsider.cycle()
		u, err = oc.Check(ctx)
		require.NoError(t, err)
		_, err = oc.Begin(ctx, u, "b")
		assert.ErrorIs(t, err, verify.ErrNoDecryptionKey)
		assert.Nil(t, outsider.status().Pending)
	})
	t.Run("envelope of another release", func(t *testing.T) {
		f := newEnvFleet(t)
		d0c := d0(t, f)
		tf, _, err := d0c.FindTarget(ctx, f.imagePath("1.0.0"))
		require.NoError(t, err)
		fw0, err := manifest.FirmwareOf(tf)
		require.NoError(t, err)
		// 1.1.0 points at 1.0.0's envelope, encrypted under a key the
		// publisher chose; the envelope names 1.0.0.
		image := encImage("1.1.0", 3000)
		key, err := encrypt.NewContentKey(nil)
		require.NoError(t, err)
		var ct bytes.Buffer
		w, err := encrypt.NewWriter(&ct, key, encrypt.Params{}, nil)
		require.NoError(t, err)
		w.Write(image)
		require.NoError(t, w.Close())
		enc := &manifest.Encryption{Cipher: manifest.CipherAES256GCM, ChunkSize: encrypt.DefaultChunkSize, PlaintextLength: int64(len(image)),
			PlaintextSHA256: sha256Sum(image), Envelopes: fw0.Encryption.Envelopes}
		fw := manifest.Firmware{Version: manifest.MustParseVersion("1.1.0"), SecurityVersion: 2, HardwareIDs: []string{f.hardwareID}, Encryption: enc}
		require.NoError(t, f.repo.AddFirmware(ctx, f.imagePath("1.1.0"), bytes.NewReader(ct.Bytes()), fw))
		require.NoError(t, f.repo.Publish(ctx, f.signers))
		f.images["1.1.0"] = image
		d := encryptedDevice(t, f, dev)
		c := d.cycle()
		u, err := c.Check(ctx)
		require.NoError(t, err)
		_, err = c.Begin(ctx, u, "b")
		assert.ErrorIs(t, err, verify.ErrEncryption)
		assert.ErrorContains(t, err, "is for acme-gw-r2/1.0.0/firmware.bin 1.0.0")
		assert.Nil(t, d.status().Pending)
	})
}
