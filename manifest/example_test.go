package manifest_test

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/otaseal/otaseal/manifest"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// A release tool attaches firmware facts to a target; a device reads them.
func ExampleFirmwareOf() {
	image := []byte("firmware image bytes")
	tf, err := metadata.TargetFile().FromBytes("acme-gw-r2/2.4.1/firmware.bin", image, "sha256")
	if err != nil {
		panic(err)
	}
	err = manifest.SetFirmware(tf, manifest.Firmware{
		Version:         manifest.MustParseVersion("2.4.1"),
		SecurityVersion: 7,
		HardwareIDs:     []string{"acme-gw-r2"},
		Severity:        manifest.SeveritySecurity,
		Advisories:      []string{"CVE-2026-0001"},
	})
	if err != nil {
		panic(err)
	}

	fw, err := manifest.FirmwareOf(tf)
	if err != nil {
		panic(err)
	}
	fmt.Println(fw.Version, fw.SecurityVersion, fw.Severity, fw.Advisories, fw.Supports("acme-gw-r2"))
	// Output: 2.4.1 7 security [CVE-2026-0001] true
}

// Signed data that breaks a schema rule is refused with an error that names
// the field and the rule.
func ExampleParseCustom() {
	custom := []byte(`{"otaseal": {"kind": "firmware", "version": "2.4", "security_version": 7, "hardware_ids": ["acme-gw-r2"]}}`)
	_, err := manifest.ParseCustom(custom)
	fmt.Println(errors.Is(err, manifest.ErrSchema))
	var fe *manifest.FieldError
	if errors.As(err, &fe) {
		fmt.Println(fe.Field, fe.Rule == manifest.RuleMalformedVersion)
	}
	fmt.Println(err)
	// Output:
	// true
	// version true
	// manifest: otaseal field "version": malformed semantic version "2.4": want MAJOR.MINOR.PATCH
}

// A device lists the releases for its hardware and the patches from its
// installed image.
func ExampleFirmwareFor() {
	targets := metadata.Targets()
	add := func(path string, image []byte, v string) {
		tf, _ := metadata.TargetFile().FromBytes(path, image, "sha256")
		_ = manifest.SetFirmware(tf, manifest.Firmware{Version: manifest.MustParseVersion(v), HardwareIDs: []string{"acme-gw-r2"}})
		targets.Signed.Targets[path] = tf
	}
	add("acme-gw-r2/1.1.0/firmware.bin", []byte("v1.1"), "1.1.0")
	add("acme-gw-r2/1.0.0/firmware.bin", []byte("v1.0"), "1.0.0")

	installed := sha256.Sum256([]byte("v1.0"))
	next := targets.Signed.Targets["acme-gw-r2/1.1.0/firmware.bin"]
	patch, _ := metadata.TargetFile().FromBytes("acme-gw-r2/deltas/1.0.0-1.1.0.zst", []byte("patch"), "sha256")
	_ = manifest.SetDelta(patch, manifest.Delta{
		Format: manifest.FormatZstdStream,
		From:   manifest.DeltaEnd{Path: "acme-gw-r2/1.0.0/firmware.bin", Length: 4, SHA256: installed[:]},
		To:     manifest.DeltaEnd{Path: "acme-gw-r2/1.1.0/firmware.bin", Length: next.Length, SHA256: next.Hashes["sha256"]},
	})
	targets.Signed.Targets[patch.Path] = patch

	releases, _ := manifest.FirmwareFor(&targets.Signed, "acme-gw-r2")
	for _, r := range releases {
		fmt.Println(r.Firmware.Version, r.Path)
	}
	newest := releases[len(releases)-1]
	patches, _ := manifest.DeltasTo(&targets.Signed, newest.Path, installed[:])
	for _, p := range patches {
		fmt.Println("patch:", p.Path, p.Delta.Format)
	}
	// Output:
	// 1.0.0 acme-gw-r2/1.0.0/firmware.bin
	// 1.1.0 acme-gw-r2/1.1.0/firmware.bin
	// patch: acme-gw-r2/deltas/1.0.0-1.1.0.zst otaseal-zstd
}

// Untrusted bytes are parsed with a size limit before anything else.
func ExampleParseUnverified() {
	huge := make([]byte, manifest.DefaultTimestampLimit+1)
	_, err := manifest.ParseUnverified[manifest.Timestamp](manifest.RoleTimestamp, huge, manifest.Limits{})
	fmt.Println(errors.Is(err, manifest.ErrTooLarge))

	missing := []byte(`{"signed": {"_type": "timestamp", "spec_version": "1.0.31", "version": 3,
		"expires": "2030-01-01T00:00:00Z", "meta": {}}, "signatures": []}`)
	_, err = manifest.ParseUnverified[manifest.Timestamp](manifest.RoleTimestamp, missing, manifest.Limits{})
	fmt.Println(err)
	// Output:
	// true
	// timestamp metadata: manifest: timestamp does not describe snapshot.json
}
