package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

// cmdKeygenSigning makes a signing key (cmdKeygen sends --recipient
// elsewhere).
func cmdKeygenSigning(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "keygen", "(--out FILE | --pkcs11 REF) [--type T] [--bits N] [--pub FILE]", `
Makes one signing key and prints its key ID and public key. Make one key
per role (root, targets, snapshot, timestamp): init refuses a root or
targets key that is also a snapshot or timestamp key, since the update
server holds those.

With --out, the private key is written to FILE as unencrypted PKCS#8 PEM
with mode 0600, and its public half to FILE.pub (or --pub); keep the
root and targets keys offline. With --pkcs11
"pkcs11:module=LIB;token=T;key=LABEL;pin-env=VAR" the key pair is
generated inside the token (an HSM, a smart card, SoftHSM2) and the
private key never leaves it; use the same reference as --ROLE-key and
--key later. An existing file or token label is never replaced.

Types: ed25519 (the default for files), ecdsa-p256 (the default in a
token, where ed25519 is not generally available), ecdsa-p384, rsa
(--bits, default 3072). Every type is read by go-tuf, python-tuf and
tuf-js clients.

"keygen --recipient" makes the key pair of a recipient of encrypted
releases instead (see "keygen --recipient --help").`)
	out := fs.String("out", "", "write the private key to this file (mode 0600)")
	hsm := fs.String("pkcs11", "", "generate the key pair in this token: pkcs11:module=LIB;token=T;key=LABEL;pin-env=VAR")
	pubOut := fs.String("pub", "", "write the public key to this file (default: --out FILE.pub)")
	typ := fs.String("type", "", "ed25519, ecdsa-p256, ecdsa-p384 or rsa")
	bits := fs.Int("bits", 0, "RSA modulus size in bits (default 3072, at least 2048)")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected arguments %q", fs.Args())
	}
	if (*out == "") == (*hsm == "") {
		return usageErr("give either --out FILE (a key file) or --pkcs11 REF (a key inside a token)")
	}
	def := sign.KeyEd25519
	if *hsm != "" {
		def = sign.KeyECDSAP256
	}
	alg := def
	if *typ != "" {
		var err error
		if alg, err = sign.ParseKeyAlgorithm(*typ); err != nil {
			return usageErr("--type %q: want ed25519, ecdsa-p256, ecdsa-p384 or rsa", *typ)
		}
	}
	if *bits != 0 && alg != sign.KeyRSA {
		return usageErr("--bits is only for --type rsa")
	}
	if *bits != 0 && *bits < sign.MinRSABits {
		return usageErr("--bits %d: RSA keys need at least %d bits", *bits, sign.MinRSABits)
	}

	var key *manifest.Key
	var where string
	var err error
	switch {
	case *hsm != "":
		key, err = keygenPKCS11(ctx, *hsm, alg, *bits, *pubOut)
		where = "in token"
	default:
		if *pubOut == "" {
			*pubOut = *out + ".pub"
		}
		key, err = keygenFile(*out, *pubOut, alg, *bits)
		where = *out
	}
	if err != nil {
		return err
	}
	id, err := sign.KeyID(key)
	if err != nil {
		return err
	}
	pemPub, err := publicPEM(key)
	if err != nil {
		return err
	}
	e.printf("created %s key %s\n", key.Scheme, where)
	if *pubOut != "" {
		e.printf("public key: %s\n", *pubOut)
	}
	e.printf("key ID: %s\n%s", id, pemPub)
	return nil
}

// keygenFile writes a new key of alg to out (0600) and its public half to
// pubOut, creating both or neither: a key file that exists is never
// overwritten, since whatever it signed would stop verifying.
func keygenFile(out, pubOut string, alg sign.KeyAlgorithm, bits int) (*manifest.Key, error) {
	for _, p := range []string{out, pubOut} {
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("%s exists: keygen never overwrites a key (pick another file name, or remove it if it is really unused)", p)
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	priv, err := sign.GenerateKey(alg, bits)
	if err != nil {
		return nil, err
	}
	key, err := sign.KeyFromPublic(priv.Public())
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	pubPEM, err := publicPEMOf(priv.Public())
	if err != nil {
		return nil, err
	}
	if err := createFile(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	if err := createFile(pubOut, pubPEM, 0o644); err != nil {
		os.Remove(out) // both or neither
		return nil, err
	}
	return key, nil
}

// keygenPKCS11 generates the key pair inside the token ref names and
// writes its public key to pubOut, if given (refusing an existing file
// before the token is touched).
func keygenPKCS11(ctx context.Context, ref string, alg sign.KeyAlgorithm, bits int, pubOut string) (*manifest.Key, error) {
	cfg, err := parsePKCS11(ref)
	if err != nil {
		return nil, err
	}
	if alg == sign.KeyEd25519 {
		return nil, usageErr("--type ed25519 cannot be generated in a PKCS#11 token: use ecdsa-p256, ecdsa-p384 or rsa")
	}
	if pubOut != "" {
		if _, err := os.Lstat(pubOut); err == nil {
			return nil, fmt.Errorf("%s exists: keygen never overwrites a key file", pubOut)
		}
	}
	key, err := sign.GeneratePKCS11Key(ctx, cfg, alg, bits)
	if err != nil {
		return nil, err
	}
	if pubOut != "" {
		data, err := publicPEM(key)
		if err != nil {
			return nil, err
		}
		if err := createFile(pubOut, data, 0o644); err != nil {
			return nil, fmt.Errorf("the key is in the token, but its public key file: %w", err)
		}
	}
	return key, nil
}

// createFile writes data to a new file path, failing if it exists.
func createFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// publicPEM is the "PUBLIC KEY" PEM of a TUF key, as init and rotate take
// it for keys held elsewhere.
func publicPEM(k *manifest.Key) ([]byte, error) {
	pub, err := sign.PublicKeyOf(k)
	if err != nil {
		return nil, err
	}
	return publicPEMOf(pub)
}

func publicPEMOf(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}
