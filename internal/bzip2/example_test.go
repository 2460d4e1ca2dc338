package bzip2_test

import (
	"bytes"
	stdbzip2 "compress/bzip2"
	"fmt"
	"io"
	"log"
	"strings"

	"github.com/otaseal/otaseal/internal/bzip2"
)

func ExampleNewWriter() {
	var stream bytes.Buffer
	z := bzip2.NewWriter(&stream)
	if _, err := io.Copy(z, strings.NewReader(strings.Repeat("add copy seek ", 1000))); err != nil {
		log.Fatal(err)
	}
	if err := z.Close(); err != nil {
		log.Fatal(err)
	}
	got, err := io.ReadAll(stdbzip2.NewReader(bytes.NewReader(stream.Bytes())))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%.4s... decodes to %d bytes\n", stream.Bytes(), len(got))
	// Output: BZh9... decodes to 14000 bytes
}
