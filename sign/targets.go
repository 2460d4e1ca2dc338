package sign

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path"

	"github.com/otaseal/otaseal/manifest"
)

// spool copies rd to a temp file while computing its length, SHA-256 and
// SHA-512, so that a multi-gigabyte image is hashed in one pass and never
// held in memory.
func (r *Repository) spool(ctx context.Context, rd io.Reader) (*spooled, error) {
	limit := r.opts.MaxTargetSize
	if limit <= 0 {
		limit = 4 << 30
	}
	f, err := os.CreateTemp(r.opts.TempDir, "otaseal-target-*")
	if err != nil {
		return nil, fmt.Errorf("sign: spooling target: %w", err)
	}
	h256, h512 := sha256.New(), sha512.New()
	n, err := io.Copy(io.MultiWriter(f, h256, h512), ctxReader{ctx, io.LimitReader(rd, limit+1)})
	if err == nil && n > limit {
		err = fmt.Errorf("%w: target over %d bytes", ErrTooLarge, limit)
	}
	if err == nil {
		err = f.Close()
	} else {
		f.Close()
	}
	if err != nil {
		os.Remove(f.Name())
		return nil, fmt.Errorf("sign: spooling target: %w", err)
	}
	s := &spooled{file: f.Name(), sha256: hexSum(h256), sha512: hexSum(h512)}
	s.tf = &manifest.TargetFile{
		Length: n,
		Hashes: manifest.Hashes{"sha256": mustHex(s.sha256), "sha512": mustHex(s.sha512)},
	}
	return s, nil
}

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

func mustHex(s string) manifest.HexBytes {
	b, _ := hex.DecodeString(s) // only ever given hexSum output
	return b
}

// AddFirmware reads a firmware image from rd, computing its length and
// hashes as it streams, and stages it as target path with fw as its
// otaseal object. The target goes to the role the delegations assign path
// to. A path that already holds different content is ErrTargetExists:
// published images are immutable, so a device never gets two different
// images under one name (RemoveTarget first to replace one).
func (r *Repository) AddFirmware(ctx context.Context, targetPath string, rd io.Reader, fw manifest.Firmware) error {
	return r.addTarget(ctx, targetPath, rd, func(s *spooled) error { return manifest.SetFirmware(s.tf, fw) })
}

// addTarget spools rd and stages it as targetPath once setCustom, given
// the spooled file, has checked it and set its otaseal object.
func (r *Repository) addTarget(ctx context.Context, targetPath string, rd io.Reader, setCustom func(*spooled) error) error {
	if err := CheckName(targetPath); err != nil {
		return err
	}
	role, err := r.roleFor(targetPath)
	if err != nil {
		return err
	}
	s, err := r.spool(ctx, rd)
	if err != nil {
		return err
	}
	s.tf.Path = targetPath
	if err := setCustom(s); err != nil {
		os.Remove(s.file)
		return err
	}
	if old, _, ok := r.findTarget(targetPath); ok {
		if !old.Equal(*s.tf) {
			os.Remove(s.file)
			return fmt.Errorf("%w: %q", ErrTargetExists, targetPath)
		}
	}
	if prev, ok := r.pending[targetPath]; ok {
		os.Remove(prev.file)
	}
	r.pending[targetPath] = s
	r.targets[role].Signed.Targets[targetPath] = s.tf
	r.markDirty(role)
	return nil
}

// RemoveTarget unlists target path from the role holding it. The file
// itself stays in storage: clients holding older metadata may still fetch
// it, and it is no longer reachable from new metadata.
func (r *Repository) RemoveTarget(targetPath string) error {
	_, role, ok := r.findTarget(targetPath)
	if !ok {
		return fmt.Errorf("%w: %q", ErrNoTarget, targetPath)
	}
	delete(r.targets[role].Signed.Targets, targetPath)
	if s, ok := r.pending[targetPath]; ok {
		os.Remove(s.file)
		delete(r.pending, targetPath)
	}
	r.markDirty(role)
	return nil
}

func (r *Repository) findTarget(targetPath string) (*manifest.TargetFile, string, bool) {
	for role, md := range r.targets {
		if tf, ok := md.Signed.Targets[targetPath]; ok {
			return tf, role, true
		}
	}
	return nil, "", false
}

// roleFor walks the delegations from the top-level targets role the way a
// client searches them and returns the deepest role that path is
// delegated to. Placing the target there means clients find it, and a role
// not trusted for path can never be made to list it.
func (r *Repository) roleFor(targetPath string) (string, error) {
	role := manifest.RoleTargets
	for depth := 0; depth < 32; depth++ {
		d := r.targets[role].Signed.Delegations
		if d == nil {
			return role, nil
		}
		var next string
		if d.SuccinctRoles != nil {
			next = d.SuccinctRoles.GetRolesForTarget(targetPath)[0].Name
		} else {
			for _, dr := range d.Roles {
				ok, err := dr.IsDelegatedPath(targetPath)
				if err != nil {
					return "", fmt.Errorf("%w: delegation %q: %v", ErrBadPolicy, dr.Name, err)
				}
				if ok {
					next = dr.Name
					break
				}
			}
		}
		if next == "" {
			return role, nil
		}
		if _, ok := r.targets[next]; !ok {
			return "", fmt.Errorf("%w %q", ErrUnknownRole, next)
		}
		role = next
	}
	return "", fmt.Errorf("%w: delegations nest deeper than 32", ErrBadPolicy)
}

// targetBlobNames returns the storage names of a target file: with
// consistent snapshots one "DIR/HASH.BASE" per hash (clients pick any one
// hash to build the name), else the plain path.
func (r *Repository) targetBlobNames(targetPath string, s *spooled) []string {
	if !r.root.Signed.ConsistentSnapshot {
		return []string{TargetsDir + "/" + targetPath}
	}
	dir, base := path.Split(targetPath)
	return []string{
		TargetsDir + "/" + dir + s.sha256 + "." + base,
		TargetsDir + "/" + dir + s.sha512 + "." + base,
	}
}

// ReadTarget opens a published or staged target file's content by target
// path (the first stored copy), for servers and tests.
func (r *Repository) ReadTarget(ctx context.Context, targetPath string) (io.ReadCloser, error) {
	if s, ok := r.pending[targetPath]; ok {
		return os.Open(s.file)
	}
	tf, _, ok := r.findTarget(targetPath)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoTarget, targetPath)
	}
	s := &spooled{sha256: fmt.Sprintf("%x", []byte(tf.Hashes["sha256"])), sha512: fmt.Sprintf("%x", []byte(tf.Hashes["sha512"]))}
	return r.store.Get(ctx, r.targetBlobNames(targetPath, s)[0])
}
