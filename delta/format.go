package delta

import "fmt"

// Format names a patch encoding.
//
// Its names are the wire names package manifest writes in a delta target's
// "format" field ("bsdiff40", "otaseal-zstd"), so a caller holding a
// manifest.Delta d converts with ParseFormat(string(d.Format)) and back
// with manifest.DeltaFormat(f.String()). This package does not import
// manifest; the two sets of names are kept equal by hand, and package
// verify's patch install tests, which convert this way, fail if they drift.
type Format int

const (
	// FormatBSDIFF40 is bsdiff 4.3's format: three bzip2 streams that must
	// be read side by side, so applying needs random access to the patch.
	// Its name is "bsdiff40".
	FormatBSDIFF40 Format = iota + 1
	// FormatStream is this package's format: one zstd stream of
	// segments of entries and their data, applied front to back as it
	// arrives. Its name is "otaseal-zstd".
	FormatStream
)

// String returns the wire name of f, the one ParseFormat accepts.
func (f Format) String() string {
	switch f {
	case FormatBSDIFF40:
		return "bsdiff40"
	case FormatStream:
		return "otaseal-zstd"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// ParseFormat returns the Format whose wire name is s ("bsdiff40" or
// "otaseal-zstd").
func ParseFormat(s string) (Format, error) {
	switch s {
	case "bsdiff40":
		return FormatBSDIFF40, nil
	case "otaseal-zstd":
		return FormatStream, nil
	}
	return 0, fmt.Errorf("%w: unknown format %q (want bsdiff40 or otaseal-zstd)", ErrFormat, s)
}

// MagicSize is how many bytes of a patch DetectFormat needs.
const MagicSize = 8

// DetectFormat returns the format of a patch from its first bytes, by the
// magic each format opens with ("BSDIFF40"; "OTADLT02" or "OTADLZ01", the
// streaming format's two layouts). It does not check anything past the
// magic: only applying a patch shows it is whole. A header that opens with
// none of them, or is shorter than MagicSize, is ErrFormat. A publisher uses it to label a patch by what it is rather
// than by what its file is called.
func DetectFormat(header []byte) (Format, error) {
	if len(header) < MagicSize {
		return 0, fmt.Errorf("%w: %d bytes, too short for a magic", ErrFormat, len(header))
	}
	switch string(header[:MagicSize]) {
	case bsdiff40Magic:
		return FormatBSDIFF40, nil
	case streamMagic, lzMagic, rcSegMagic, rcLZMagic:
		return FormatStream, nil
	}
	return 0, fmt.Errorf("%w: unknown magic %q", ErrFormat, header[:MagicSize])
}
