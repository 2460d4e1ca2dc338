package encrypt_test

import (
	"bytes"
	"fmt"
	"io"

	"github.com/otaseal/otaseal/encrypt"
)

// A publisher encrypts an image for a device group; a device of the group
// unwraps the content key and decrypts the stream.
func Example() {
	group, _ := encrypt.GenerateKey(encrypt.MLKEM768X25519) // the private half goes onto the devices
	const target, version = "acme-gw-r2/2.4.1/firmware.bin", "2.4.1"

	// Publisher: a new content key, the image encrypted under it, the key
	// wrapped for the group (the wrap goes into the signed metadata).
	key, _ := encrypt.NewContentKey(nil)
	var ciphertext bytes.Buffer
	w, _ := encrypt.NewWriter(&ciphertext, key, encrypt.Params{}, nil)
	io.WriteString(w, "firmware image 2.4.1")
	w.Close()
	wrapped, _ := encrypt.Wrap(group.Public(), key, target, version)

	// Device: unwrap, then decrypt chunk by chunk.
	got, err := group.Unwrap(wrapped, target, version)
	if err != nil {
		panic(err)
	}
	r, _ := encrypt.NewReader(&ciphertext, got, encrypt.Params{})
	image, err := io.ReadAll(r)
	fmt.Printf("%s, %v\n", image, err)

	// The same wrap does not open for another release.
	_, err = group.Unwrap(wrapped, "acme-gw-r2/2.4.2/firmware.bin", "2.4.2")
	fmt.Println(err)
	fmt.Println(len(wrapped), "bytes wrapped")
	// Output:
	// firmware image 2.4.1, <nil>
	// encrypt: wrapped key does not open for this key and release
	// 1168 bytes wrapped
}
