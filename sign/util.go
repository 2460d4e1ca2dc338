package sign

import (
	"fmt"
	"io"
)

// readLimited reads all of r, refusing more than max bytes: the extra byte
// read proves the input was too long without ever holding more than max+1.
func readLimited(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("sign: reading: %w", err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, max)
	}
	return b, nil
}
