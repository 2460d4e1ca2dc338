package rollback

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"

	"github.com/otaseal/otaseal/manifest"
)

// MaxSlotLength bounds an Image's slot name.
const MaxSlotLength = 64

// MaxFloors bounds the number of hardware IDs with a floor in one device's
// state. A device runs on one hardware ID; a few more cover boards that
// carry co-processors with their own images.
const MaxFloors = 64

// Image describes one firmware image in a slot: the installed one, or the
// candidate of a pending install. It holds everything a device agent needs
// to resume after a power cut: which slot, which target, how to check the
// bytes there, and the versions the policy compares.
type Image struct {
	HardwareID      string           // hardware the image was chosen for
	TargetPath      string           // TUF target path of the full image
	Version         manifest.Version // firmware version
	SecurityVersion uint64           // firmware security version
	Length          int64            // image length in bytes
	SHA256          []byte           // 32 bytes, the image's SHA-256
	Slot            string           // A/B slot name ("a", "b", "mmcblk0p3")
}

// Validate checks the image record's fields against their limits.
func (img *Image) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidImage, fmt.Sprintf(format, args...))
	}
	switch {
	case img.HardwareID == "" || len(img.HardwareID) > manifest.MaxHardwareIDLen:
		return bad("hardware ID length %d outside 1..%d", len(img.HardwareID), manifest.MaxHardwareIDLen)
	case img.TargetPath == "" || len(img.TargetPath) > manifest.MaxTargetPathLen:
		return bad("target path length %d outside 1..%d", len(img.TargetPath), manifest.MaxTargetPathLen)
	case img.Version.IsZero():
		return bad("no version")
	case img.SecurityVersion > manifest.MaxSafeInteger:
		return bad("security version %d above %d", img.SecurityVersion, uint64(manifest.MaxSafeInteger))
	case img.Length < 0 || img.Length > manifest.MaxSafeInteger:
		return bad("length %d outside 0..%d", img.Length, int64(manifest.MaxSafeInteger))
	case len(img.SHA256) != 32:
		return bad("sha256 of %d bytes", len(img.SHA256))
	case img.Slot == "" || len(img.Slot) > MaxSlotLength:
		return bad("slot length %d outside 1..%d", len(img.Slot), MaxSlotLength)
	}
	return nil
}

// Equal reports whether two image records are the same in every field.
func (img *Image) Equal(o *Image) bool {
	if img == nil || o == nil {
		return img == o
	}
	return img.HardwareID == o.HardwareID && img.TargetPath == o.TargetPath &&
		img.Version.String() == o.Version.String() && img.SecurityVersion == o.SecurityVersion &&
		img.Length == o.Length && bytes.Equal(img.SHA256, o.SHA256) && img.Slot == o.Slot
}

// Matches reports whether r yields exactly the image: Length bytes whose
// SHA-256 is the image's, then EOF. It is the health check's question
// "does this slot hold the image the state says it does?". It reads at
// most Length+1 bytes as a stream. A slot longer than its image (a
// partition) is passed as io.NewSectionReader(slot, 0, img.Length). An
// error is a failure to read, never a mismatch.
func (img *Image) Matches(r io.Reader) (bool, error) {
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(r, img.Length+1))
	if err != nil {
		return false, fmt.Errorf("rollback: reading slot %q: %w", img.Slot, err)
	}
	return n == img.Length && bytes.Equal(h.Sum(nil), img.SHA256), nil
}

// firmware is the policy's view of the image.
func (img *Image) firmware() *manifest.Firmware {
	return &manifest.Firmware{Version: img.Version, SecurityVersion: img.SecurityVersion, HardwareIDs: []string{img.HardwareID}}
}

func (img *Image) clone() *Image {
	if img == nil {
		return nil
	}
	c := *img
	c.SHA256 = bytes.Clone(img.SHA256)
	return &c
}

// imageJSON is Image's stored form.
type imageJSON struct {
	HardwareID      string `json:"hardware_id"`
	TargetPath      string `json:"target_path"`
	Version         string `json:"version"`
	SecurityVersion uint64 `json:"security_version"`
	Length          int64  `json:"length"`
	SHA256          string `json:"sha256"`
	Slot            string `json:"slot"`
}

// installFormat versions the install record's payload.
const installFormat = 1

// installRecord is the payload of the "install" record. The installed
// image, the pending candidate and the floors live in one record so that
// every transition of the install state machine is a single
// compare-and-swap: there is no crash point between raising the floor and
// marking the image installed.
type installRecord struct {
	Installed *Image
	Pending   *Image
	Floors    Floors
}

type installJSON struct {
	Format    int               `json:"format"`
	Installed *imageJSON        `json:"installed"`
	Pending   *imageJSON        `json:"pending"`
	Floors    map[string]uint64 `json:"floors"`
}

func toJSON(img *Image) *imageJSON {
	if img == nil {
		return nil
	}
	return &imageJSON{img.HardwareID, img.TargetPath, img.Version.String(), img.SecurityVersion, img.Length, hex.EncodeToString(img.SHA256), img.Slot}
}

func fromJSON(j *imageJSON) (*Image, error) {
	if j == nil {
		return nil, nil
	}
	v, err := manifest.ParseVersion(j.Version)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidImage, err)
	}
	sum, err := hex.DecodeString(j.SHA256)
	if err != nil || hex.EncodeToString(sum) != j.SHA256 {
		return nil, fmt.Errorf("%w: sha256 is not lower-case hex", ErrInvalidImage)
	}
	img := &Image{j.HardwareID, j.TargetPath, v, j.SecurityVersion, j.Length, sum, j.Slot}
	if err := img.Validate(); err != nil {
		return nil, err
	}
	return img, nil
}

func (r *installRecord) marshal() ([]byte, error) {
	for _, img := range []*Image{r.Installed, r.Pending} {
		if img != nil {
			if err := img.Validate(); err != nil {
				return nil, err
			}
		}
	}
	floors := map[string]uint64(r.Floors)
	if floors == nil {
		floors = map[string]uint64{}
	}
	return json.Marshal(installJSON{installFormat, toJSON(r.Installed), toJSON(r.Pending), floors})
}

// unmarshalInstall parses a stored install record strictly: the bytes
// passed the envelope checksum, but a record written by a buggy or newer
// build must fail loudly, not be half understood.
func unmarshalInstall(b []byte) (installRecord, error) {
	var j installJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return installRecord{}, fmt.Errorf("install record: %w", err)
	}
	if dec.More() {
		return installRecord{}, fmt.Errorf("install record: trailing data")
	}
	if j.Format != installFormat {
		return installRecord{}, fmt.Errorf("install record: unknown format %d", j.Format)
	}
	if len(j.Floors) > MaxFloors {
		return installRecord{}, fmt.Errorf("install record: %d floors (limit %d)", len(j.Floors), MaxFloors)
	}
	var r installRecord
	var err error
	if r.Installed, err = fromJSON(j.Installed); err != nil {
		return installRecord{}, fmt.Errorf("install record: installed: %w", err)
	}
	if r.Pending, err = fromJSON(j.Pending); err != nil {
		return installRecord{}, fmt.Errorf("install record: pending: %w", err)
	}
	r.Floors = Floors{}
	for hw, f := range j.Floors {
		if hw == "" || len(hw) > manifest.MaxHardwareIDLen || f > manifest.MaxSafeInteger {
			return installRecord{}, fmt.Errorf("install record: bad floor %q=%d", clip(hw), f)
		}
		r.Floors[hw] = f
	}
	return r, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
