package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/otaseal/otaseal/encrypt"
	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
	"github.com/otaseal/otaseal/verify"
)

// encryptedRelease: the release engineer makes a key pair for a device
// group (ML-KEM-768 + X25519), publishes 1.3.0 encrypted for it, a new
// device of the group installs it, decrypting chunk by chunk into its
// slot, and a device outside the group refuses before it writes a byte.
func encryptedRelease(ctx context.Context, out io.Writer, rel *release, serverURL, dir string, images map[string][]byte, log *slog.Logger, record func(string, string, bool)) error {
	fmt.Fprintln(out, "== release engineer: 1.3.0 encrypted for the device group \"acme-gw-r2 fleet\"")
	group, err := encrypt.GenerateKey(encrypt.MLKEM768X25519)
	if err != nil {
		return err
	}
	image := append(bytes.Clone(images["1.2.0"]), "1.3.0"...)
	fw := manifest.Firmware{Version: manifest.MustParseVersion("1.3.0"), SecurityVersion: 4, HardwareIDs: []string{hardwareID},
		Severity: manifest.SeveritySecurity, Advisories: []string{"CVE-2026-1004"}, Notes: "demo release 1.3.0, encrypted"}
	if _, err := rel.repo.AddEncryptedFirmware(ctx, imagePath("1.3.0"), bytes.NewReader(image), fw,
		sign.EncryptOptions{Recipients: []*encrypt.PublicKey{group.Public()}}); err != nil {
		return err
	}
	if err := rel.repo.Publish(ctx, rel.signers()); err != nil {
		return err
	}
	rc, err := rel.repo.ReadTarget(ctx, imagePath("1.3.0"))
	if err != nil {
		return err
	}
	ct, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  published 1.3.0: %d bytes of ciphertext for %d bytes of image, content key wrapped with ML-KEM-768 + X25519 for group key %.16s\n",
		len(ct), len(image), group.KeyID())

	member, err := newDeviceIn(ctx, filepath.Join(dir, "device-group"), serverURL, rel.rootJSON, images["0.9.0"], []verify.DecryptionKey{group}, log)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "== a second device of the group, holding the group's private key, boots factory image 0.9.0")
	res := member.update(ctx)
	res.tell(out)
	slot, _ := os.ReadFile(filepath.Join(dir, "device-group", member.active))
	record("encrypted release 1.3.0", res.describe()+", decrypted into slot "+member.active,
		res.err == nil && res.installed == "1.3.0" && bytes.Equal(slot, image) && !bytes.Equal(ct, image))

	outsider, err := newDeviceIn(ctx, filepath.Join(dir, "device-outsider"), serverURL, rel.rootJSON, images["0.9.0"], nil, log)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "== a third device, without the group key, is offered 1.3.0 too")
	res = outsider.update(ctx)
	_, slotErr := os.Stat(filepath.Join(dir, "device-outsider", "b"))
	record("encrypted 1.3.0 without the key", "refused: "+res.errText(),
		errors.Is(res.err, verify.ErrNoDecryptionKey) && outsider.version() == "0.9.0" && os.IsNotExist(slotErr))
	return nil
}
