package sign

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"os"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"golang.org/x/term"
)

// MaxKeyFileSize bounds a PEM key file read by LoadPEMSignerFile. Real key
// files are a few kilobytes.
const MaxKeyFileSize = 64 << 10

// PassphraseFunc returns the passphrase of an encrypted key. It is called
// only when the key is encrypted.
type PassphraseFunc func() ([]byte, error)

// PassphraseFromEnv reads the passphrase from the environment variable name.
// An unset or empty variable is ErrPassphrase, never an empty passphrase.
func PassphraseFromEnv(name string) PassphraseFunc {
	return func() ([]byte, error) {
		v, ok := os.LookupEnv(name)
		if !ok || v == "" {
			return nil, fmt.Errorf("%w: environment variable %s is not set", ErrPassphrase, name)
		}
		return []byte(v), nil
	}
}

// PassphraseFromTerminal prompts for the passphrase on the controlling
// terminal (/dev/tty) with echo off, so it works even when stdin and stdout
// are redirected and never lands in shell history.
func PassphraseFromTerminal(prompt string) PassphraseFunc {
	return func() ([]byte, error) {
		tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("%w: no terminal: %v", ErrPassphrase, err)
		}
		defer tty.Close()
		if _, err := fmt.Fprint(tty, prompt); err != nil {
			return nil, err
		}
		p, err := term.ReadPassword(int(tty.Fd()))
		fmt.Fprintln(tty)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrPassphrase, err)
		}
		if len(p) == 0 {
			return nil, fmt.Errorf("%w: empty passphrase", ErrPassphrase)
		}
		return p, nil
	}
}

// LoadPEMSigner parses a PEM private key (PKCS#8, PKCS#1 RSA or SEC 1 EC,
// plain or encrypted: "ENCRYPTED PRIVATE KEY" PKCS#8 or a legacy
// Proc-Type: 4,ENCRYPTED block) and returns a Signer with the scheme its
// key calls for. pass is asked only for an encrypted key; nil pass makes
// an encrypted key ErrPassphrase. Malformed input is ErrKeyFile; it never
// panics.
func LoadPEMSigner(ctx context.Context, data []byte, pass PassphraseFunc) (*Signer, error) {
	if len(data) > MaxKeyFileSize {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrTooLarge, len(data), MaxKeyFileSize)
	}
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrKeyFile)
	}
	// A second key after the first would be silently ignored; a file must
	// hold exactly the key it is named for.
	if bytes.Contains(rest, []byte("-----BEGIN")) {
		return nil, fmt.Errorf("%w: more than one PEM block", ErrKeyFile)
	}
	encrypted := block.Type == "ENCRYPTED PRIVATE KEY" || block.Headers["Proc-Type"] != ""
	var pf cryptoutils.PassFunc
	if encrypted {
		if pass == nil {
			return nil, fmt.Errorf("%w: key is encrypted", ErrPassphrase)
		}
		// Ask here, not inside sigstore's parser, so that the caller's
		// ErrPassphrase reaches them unflattened.
		pw, err := pass()
		if err != nil {
			return nil, err
		}
		pf = func(bool) ([]byte, error) { return pw, nil }
	}
	priv, err := unmarshalPrivateKey(data, pf)
	if err != nil {
		return nil, err
	}
	return SignerFromPrivateKey(ctx, priv)
}

// unmarshalPrivateKey calls sigstore's PEM parser, turning a panic inside
// any of the DER parsers it chains into an error: hostile key files must not
// take the release tool down.
func unmarshalPrivateKey(data []byte, pf cryptoutils.PassFunc) (priv any, err error) {
	defer func() {
		if r := recover(); r != nil {
			priv, err = nil, fmt.Errorf("%w: %v", ErrKeyFile, r)
		}
	}()
	priv, err = cryptoutils.UnmarshalPEMToPrivateKey(data, pf)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyFile, err)
	}
	return priv, nil
}

// LoadPEMSignerFile is LoadPEMSigner on the contents of a file.
func LoadPEMSignerFile(ctx context.Context, path string, pass PassphraseFunc) (*Signer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	defer f.Close()
	data, err := readLimited(f, MaxKeyFileSize)
	if err != nil {
		return nil, err
	}
	return LoadPEMSigner(ctx, data, pass)
}
