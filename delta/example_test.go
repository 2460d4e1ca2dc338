package delta_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/otaseal/otaseal/delta"
)

func Example() {
	old := []byte("firmware v1: blink the led every second; log to uart")
	new := []byte("firmware v2: blink the led every 2 seconds; log to uart and usb")

	// Server: make the patch once.
	d, err := delta.Diff(old, new)
	if err != nil {
		panic(err)
	}
	var patch bytes.Buffer
	if err := d.Encode(&patch, delta.FormatStream); err != nil {
		panic(err)
	}

	// Device: apply it with the signed length and hash of the target.
	sum := sha256.Sum256(new)
	var slot bytes.Buffer
	n, err := delta.ApplyStream(&slot, bytes.NewReader(old), int64(len(old)), &patch,
		&delta.ApplyOptions{MaxOutput: int64(len(new)), SHA256: sum[:]})
	fmt.Println(n, err, bytes.Equal(slot.Bytes(), new))
	// Output: 63 <nil> true
}

func ExampleApplyBSDIFF40() {
	old := []byte("version 1.0 of the image")
	new := []byte("version 1.1 of the image, now bigger")
	d, err := delta.Diff(old, new)
	if err != nil {
		panic(err)
	}
	var patch bytes.Buffer
	if err := d.Encode(&patch, delta.FormatBSDIFF40); err != nil {
		panic(err)
	}

	// A limit below the declared size is refused before anything is
	// written.
	var out bytes.Buffer
	p := patch.Bytes()
	_, err = delta.ApplyBSDIFF40(&out, bytes.NewReader(old), int64(len(old)), bytes.NewReader(p), int64(len(p)),
		&delta.ApplyOptions{MaxOutput: 10})
	fmt.Println(errors.Is(err, delta.ErrOutputLimit), out.Len())

	_, err = delta.ApplyBSDIFF40(&out, bytes.NewReader(old), int64(len(old)), bytes.NewReader(p), int64(len(p)),
		&delta.ApplyOptions{MaxOutput: int64(len(new))})
	if err != nil {
		panic(err)
	}
	fmt.Println(out.String())
	// Output:
	// true 0
	// version 1.1 of the image, now bigger
}
