package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	mrand "math/rand"
	"path/filepath"
	"time"

	"github.com/otaseal/otaseal/delta"
	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

const hardwareID = "acme-gw-r2"

// release is the release engineer's side: keys per role and the
// repository on disk that the update server serves.
type release struct {
	storageDir string
	rootJSON   []byte
	repo       *sign.Repository
	keys       map[string]*sign.Signer
}

// newRelease makes a fresh key per role (in a real deployment root and
// targets keys live offline or in an HSM, see package sign) and creates
// the repository.
func newRelease(ctx context.Context, dir string) (*release, error) {
	r := &release{storageDir: filepath.Join(dir, "repository"), keys: map[string]*sign.Signer{}}
	roles := map[string]sign.RoleKeys{}
	for _, role := range []string{manifest.RoleRoot, manifest.RoleTargets, manifest.RoleSnapshot, manifest.RoleTimestamp} {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		s, err := sign.SignerFromPrivateKey(ctx, priv)
		if err != nil {
			return nil, err
		}
		r.keys[role] = s
		roles[role] = sign.RoleKeys{Threshold: 1, Keys: []*manifest.Key{s.Key()}}
	}
	root, err := sign.NewRoot(sign.RootSpec{Roles: roles}, time.Now().Add(sign.DefaultRootExpiry))
	if err != nil {
		return nil, err
	}
	policy, err := sign.PolicyFromRoot(&root.Signed)
	if err != nil {
		return nil, err
	}
	if _, err := sign.SignRole(ctx, policy, manifest.RoleRoot, root, []*sign.Signer{r.keys[manifest.RoleRoot]}); err != nil {
		return nil, err
	}
	if r.rootJSON, err = root.ToBytes(false); err != nil {
		return nil, err
	}
	store, err := sign.NewDirStorage(r.storageDir)
	if err != nil {
		return nil, err
	}
	if r.repo, err = sign.CreateRepository(ctx, store, root, sign.RepositoryOptions{TempDir: dir}); err != nil {
		return nil, err
	}
	// The rollout control key is online, held by the update server like
	// the snapshot and timestamp keys: it can pause a rollout, never widen
	// one. The first publish signs its delegation with the targets key.
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if r.keys[manifest.RoleRolloutControl], err = sign.SignerFromPrivateKey(ctx, priv); err != nil {
		return nil, err
	}
	if err := r.repo.AddRolloutControl(sign.RoleKeys{Threshold: 1, Keys: []*manifest.Key{r.keys[manifest.RoleRolloutControl].Key()}}); err != nil {
		return nil, err
	}
	return r, nil
}

// signers are the keys a publish by the release engineer signs with.
func (r *release) signers() []*sign.Signer {
	return []*sign.Signer{r.keys[manifest.RoleTargets], r.keys[manifest.RoleRolloutControl], r.keys[manifest.RoleSnapshot], r.keys[manifest.RoleTimestamp]}
}

// control sets (rc non-nil) or lifts the online control of a release, as
// "release rollout pause|resume" does: signed with the control, snapshot
// and timestamp keys only, never the offline targets key.
func (r *release) control(ctx context.Context, version string, rc *manifest.ReleaseControl) error {
	var err error
	if rc != nil {
		err = r.repo.SetRolloutControl(imagePath(version), *rc)
	} else {
		err = r.repo.ClearRolloutControl(imagePath(version))
	}
	if err != nil {
		return err
	}
	return r.repo.Publish(ctx, []*sign.Signer{r.keys[manifest.RoleRolloutControl], r.keys[manifest.RoleSnapshot], r.keys[manifest.RoleTimestamp]})
}

func (r *release) close() { r.repo.Close() }

func imagePath(version string) string { return fmt.Sprintf("%s/%s/firmware.bin", hardwareID, version) }

// publishFirmware adds an image and, given the previous image, a delta in
// otaseal's streaming format from it; it returns the bytes the delta saves
// over the full image. Snapshot and timestamp are re-signed with the
// online keys in the same publish.
func (r *release) publishFirmware(ctx context.Context, version string, securityVersion uint64, image, previous []byte, rollout *manifest.Rollout) (int, error) {
	fw := manifest.Firmware{
		Rollout:         rollout,
		Version:         manifest.MustParseVersion(version),
		SecurityVersion: securityVersion,
		HardwareIDs:     []string{hardwareID},
		Severity:        manifest.SeveritySecurity,
		Advisories:      []string{fmt.Sprintf("CVE-2026-%04d", 1000+securityVersion)},
		Notes:           "demo release " + version,
	}
	if err := r.repo.AddFirmware(ctx, imagePath(version), bytes.NewReader(image), fw); err != nil {
		return 0, err
	}
	saved := 0
	if previous != nil {
		d, err := delta.Diff(previous, image)
		if err != nil {
			return 0, err
		}
		var patch bytes.Buffer
		if err := d.Encode(&patch, delta.FormatStream); err != nil {
			return 0, err
		}
		prevVersion := previousVersion(version)
		err = r.repo.AddDelta(ctx, fmt.Sprintf("%s/deltas/%s-%s.otz", hardwareID, prevVersion, version), imagePath(prevVersion), imagePath(version), bytes.NewReader(patch.Bytes()))
		if err != nil {
			return 0, err
		}
		saved = len(image) - patch.Len()
	}
	return saved, r.repo.Publish(ctx, r.signers())
}

// withdraw signs the entry of a published release again with a
// withdrawal, as "release withdraw" does: the image stays, unchanged, so a
// device already installing it finishes or reverts cleanly.
func (r *release) withdraw(ctx context.Context, version string, image []byte, w manifest.Withdrawal) error {
	path := imagePath(version)
	targets, _ := r.repo.Targets(manifest.RoleTargets)
	fw, err := manifest.FirmwareOf(targets.Signed.Targets[path])
	if err != nil {
		return err
	}
	fw.Withdrawn = &w
	if err := r.repo.RemoveTarget(path); err != nil {
		return err
	}
	if err := r.repo.AddFirmware(ctx, path, bytes.NewReader(image), *fw); err != nil {
		return err
	}
	return r.repo.Publish(ctx, r.signers())
}

func previousVersion(v string) string {
	switch v {
	case "1.1.0":
		return "1.0.0"
	case "1.2.0":
		return "1.1.0"
	}
	return ""
}

// firmwareImages makes four releases of a 4 MiB image standing in for a
// real firmware build. Each is the previous one rebuilt after a fix: a
// thousand small edits scattered through it (addresses that moved) and a
// 32 KiB block of new code.
func firmwareImages() map[string][]byte {
	rng := mrand.New(mrand.NewSource(2026))
	base := make([]byte, 4<<20)
	// Code-like bytes: a small alphabet, so the image compresses a little.
	for i := range base {
		base[i] = byte(rng.Intn(64) * 3)
	}
	images := map[string][]byte{"0.9.0": base}
	prev := base
	for _, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
		next := bytes.Clone(prev)
		for i := 0; i < 1000; i++ {
			next[rng.Intn(len(next))] ^= byte(1 + rng.Intn(255))
		}
		code := make([]byte, 32<<10)
		for i := range code {
			code[i] = byte(rng.Intn(64) * 3)
		}
		at := rng.Intn(len(next))
		next = append(next[:at:at], append(code, next[at:]...)...)
		images[v] = next
		prev = next
	}
	return images
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}
