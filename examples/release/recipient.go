package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/otaseal/otaseal/encrypt"
	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

// cmdKeygen makes key pairs: the recipient keys of encrypted releases
// with --recipient (here), signing keys otherwise (keygen.go).
func cmdKeygen(ctx context.Context, e *env, args []string) error {
	for _, a := range args {
		if a == "--recipient" || a == "-recipient" || a == "--recipient=true" || a == "-recipient=true" {
			return cmdKeygenRecipient(ctx, e, args)
		}
	}
	return cmdKeygenSigning(ctx, e, args)
}

func cmdKeygenRecipient(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "keygen", "--recipient --out PREFIX [--kem mlkem768-x25519|x25519]", `
Makes the key pair of a recipient of encrypted releases: a device group (all
devices of a model share it) or a single device. Writes PREFIX.pub, the
public key that "release add --encrypt-to" takes, and PREFIX.key, the
private key (mode 0600) that goes onto the devices, where
"deviceagent -decryption-key" reads it. Neither file is overwritten. Prints
the key ID that recipient entries carry.

The default KEM, mlkem768-x25519, is the ML-KEM-768 + X25519 hybrid: a
download recorded today stays secret even from a future quantum computer.
x25519 alone is for devices too small for ML-KEM.`)
	fs.Bool("recipient", true, "make a recipient key pair for encrypted releases")
	out := fs.String("out", "", "path prefix of the key files")
	kemName := fs.String("kem", encrypt.MLKEM768X25519.String(), "mlkem768-x25519 or x25519")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected arguments %q", fs.Args())
	}
	if *out == "" {
		return usageErr("--out is required")
	}
	kem, err := encrypt.ParseKEM(*kemName)
	if err != nil {
		return usageErr("%v", err)
	}
	k, err := encrypt.GenerateKey(kem)
	if err != nil {
		return err
	}
	priv, err := encrypt.MarshalPrivateKey(k)
	if err != nil {
		return err
	}
	if err := createFile(*out+".key", priv, 0o600); err != nil {
		return err
	}
	if err := createFile(*out+".pub", encrypt.MarshalPublicKey(k.Public()), 0o644); err != nil {
		os.Remove(*out + ".key")
		return err
	}
	e.printf("recipient key %s (%s)\n  public:  %s.pub\n  private: %s.key (0600: install it on the devices only)\n", k.KeyID(), kem, *out, *out)
	return nil
}

// readRecipients reads the public key files of --encrypt-to.
func readRecipients(files []string) ([]*encrypt.PublicKey, error) {
	var out []*encrypt.PublicKey
	seen := map[string]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		p, err := encrypt.ParsePublicKey(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if !seen[p.KeyID()] {
			seen[p.KeyID()] = true
			out = append(out, p)
		}
	}
	return out, nil
}

// contentKeyDir holds the content keys of the encrypted releases, beside
// the repository and never inside it, so that the update server does not
// serve them. Keep it with the images: whoever holds it can decrypt them.
// The next release's deltas need the key of the release they start from.
func contentKeyDir(repoDir string) string { return filepath.Clean(repoDir) + ".content-keys" }

func contentKeyFile(repoDir, target string) string {
	return filepath.Join(contentKeyDir(repoDir), filepath.FromSlash(target)+".key")
}

func saveContentKey(repoDir, target string, key encrypt.ContentKey) error {
	path := contentKeyFile(repoDir, target)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	os.Remove(path) // a re-added release gets its new key
	return createFile(path, []byte(fmt.Sprintf("%x\n", key[:])), 0o600)
}

func loadContentKey(repoDir, target string) (*encrypt.ContentKey, error) {
	data, err := os.ReadFile(contentKeyFile(repoDir, target))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no content key for the encrypted release %s in %s", target, contentKeyDir(repoDir))
	}
	if err != nil {
		return nil, err
	}
	var key encrypt.ContentKey
	b, err := hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(b) != len(key) {
		return nil, fmt.Errorf("%s: malformed content key", contentKeyFile(repoDir, target))
	}
	copy(key[:], b)
	return &key, nil
}

// readPlaintext reads a release's image whole, decrypted with its stored
// content key when it is encrypted, and checks it against the signed
// length and sha256.
func readPlaintext(ctx context.Context, s *session, r manifest.Release) ([]byte, error) {
	data, err := readTarget(ctx, s.repo, r.Path)
	if err != nil {
		return nil, err
	}
	if enc := r.Firmware.Encryption; enc != nil {
		key, err := loadContentKey(s.dir, r.Path)
		if err != nil {
			return nil, err
		}
		c, err := encrypt.ParseCipher(string(enc.Cipher))
		if err != nil {
			return nil, err
		}
		dr, err := encrypt.NewReader(bytes.NewReader(data), *key, encrypt.Params{Cipher: c, ChunkSize: enc.ChunkSize})
		if err != nil {
			return nil, fmt.Errorf("decrypt %s: %w", r.Path, err)
		}
		if data, err = io.ReadAll(dr); err != nil {
			return nil, fmt.Errorf("decrypt %s: %w", r.Path, err)
		}
	}
	return data, nil
}

// readEnvelopes reads the --envelope groups: NAME=FILE, or NAME=DIR for
// every *.pub file in DIR.
func readEnvelopes(specs []string) (map[string][]*encrypt.PublicKey, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	out := map[string][]*encrypt.PublicKey{}
	for _, spec := range specs {
		name, path, ok := strings.Cut(spec, "=")
		if !ok || name == "" || path == "" {
			return nil, usageErr("--envelope %q: want NAME=FILE or NAME=DIR", spec)
		}
		if _, dup := out[name]; dup {
			return nil, usageErr("--envelope %q given twice", name)
		}
		files := []string{path}
		if st, err := os.Stat(path); err == nil && st.IsDir() {
			if files, err = filepath.Glob(filepath.Join(path, "*.pub")); err != nil {
				return nil, err
			}
			if len(files) == 0 {
				return nil, fmt.Errorf("--envelope %s: no *.pub files in %s", name, path)
			}
		}
		keys, err := readRecipients(files)
		if err != nil {
			return nil, err
		}
		out[name] = keys
	}
	return out, nil
}

// addEncrypted encrypts the image for the recipients and envelope groups,
// stages it and keeps its content key.
func addEncrypted(ctx context.Context, e *env, s *session, target, image string, fw manifest.Firmware, recipients []*encrypt.PublicKey, groups map[string][]*encrypt.PublicKey) error {
	f, err := os.Open(image)
	if err != nil {
		return err
	}
	defer f.Close()
	key, err := s.repo.AddEncryptedFirmware(ctx, target, f, fw, sign.EncryptOptions{Recipients: recipients, Envelopes: groups})
	if err != nil {
		return err
	}
	if err := saveContentKey(s.dir, target, key); err != nil {
		return fmt.Errorf("keeping the content key: %w", err)
	}
	var ids []string
	for _, r := range recipients {
		ids = append(ids, r.KeyID()[:16]+" ("+r.KEM().String()+")")
	}
	for name, keys := range groups {
		ids = append(ids, fmt.Sprintf("envelope %s (%d keys)", name, len(keys)))
	}
	slices.Sort(ids)
	e.printf("encrypted %s for %s\n", target, strings.Join(ids, ", "))
	return nil
}

// printEncryption lists the recipients of the encrypted releases.
func printEncryption(w io.Writer, hws []string, byHW map[string][]release) error {
	any := false
	for _, hw := range hws {
		for _, r := range byHW[hw] {
			any = any || r.fw.Encryption != nil
		}
	}
	if !any {
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HARDWARE ID\tVERSION\tCIPHER\tCHUNK\tPLAINTEXT\tRECIPIENT KEY ID\tKEM")
	for _, hw := range hws {
		for _, r := range byHW[hw] {
			enc := r.fw.Encryption
			if enc == nil {
				continue
			}
			rows := make([][2]string, 0, len(enc.Recipients)+len(enc.Envelopes))
			for _, rc := range enc.Recipients {
				rows = append(rows, [2]string{rc.KeyID, string(rc.KEM)})
			}
			for _, p := range enc.Envelopes {
				rows = append(rows, [2]string{"envelope " + p, "-"})
			}
			for i, row := range rows {
				if i == 0 {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", hw, r.fw.Version, enc.Cipher, size(int64(enc.ChunkSize)), size(enc.PlaintextLength), row[0], row[1])
				} else {
					fmt.Fprintf(tw, "\t\t\t\t\t%s\t%s\n", row[0], row[1])
				}
			}
		}
	}
	return tw.Flush()
}
