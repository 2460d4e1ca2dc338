package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/otaseal/otaseal/encrypt"
	"github.com/otaseal/otaseal/verify"
)

// keyFiles collects -decryption-key, one file per use.
type keyFiles []string

func (k *keyFiles) String() string     { return strings.Join(*k, ",") }
func (k *keyFiles) Set(v string) error { *k = append(*k, v); return nil }

const decryptionKeyHelp = "private recipient key file for encrypted releases (repeatable: a group key and the device's own); made by \"release keygen --recipient\""

// loadDecryptionKeys reads the device's recipient keys. A key file others
// can read is logged: whoever reads it can decrypt the fleet's firmware.
// On a real board the key would rather stay in a TPM or secure element,
// behind a verify.DecryptionKey of its own.
func loadDecryptionKeys(files []string, log *slog.Logger) ([]verify.DecryptionKey, error) {
	var keys []verify.DecryptionKey
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fileErr("decryption-key", f, err)
		}
		k, err := encrypt.ParsePrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("-decryption-key %s: %w", f, err)
		}
		if st, err := os.Stat(f); err == nil && st.Mode().Perm()&0o077 != 0 {
			log.Warn("decryption key readable by others", "file", f, "mode", st.Mode().Perm().String())
		}
		log.Debug("decryption key", "keyid", k.KeyID(), "kem", k.Public().KEM())
		keys = append(keys, k)
	}
	return keys, nil
}
