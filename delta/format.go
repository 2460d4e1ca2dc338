package delta

import "fmt"

// Format names a patch encoding.
type Format int

const (
	// FormatBSDIFF40 is bsdiff 4.3's format: three bzip2 streams that must
	// be read side by side, so applying needs random access to the patch.
	FormatBSDIFF40 Format = iota + 1
	// FormatStream is this package's format: one zstd stream of
	// segments of entries and their data, applied front to back as it arrives.
	FormatStream
)

// String returns the name ParseFormat accepts.
func (f Format) String() string {
	switch f {
	case FormatBSDIFF40:
		return "bsdiff40"
	case FormatStream:
		return "stream"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// ParseFormat returns the Format named s ("bsdiff40" or "stream").
func ParseFormat(s string) (Format, error) {
	switch s {
	case "bsdiff40":
		return FormatBSDIFF40, nil
	case "stream":
		return FormatStream, nil
	}
	return 0, fmt.Errorf("%w: unknown format %q (want bsdiff40 or stream)", ErrFormat, s)
}
