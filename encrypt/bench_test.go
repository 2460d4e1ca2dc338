package encrypt

import (
	"bytes"
	"io"
	"testing"
)

// BenchmarkDecrypt measures decryption throughput (MB/s in the output)
// of a 16 MiB stream, the device's side.
func BenchmarkDecrypt(b *testing.B) {
	for _, c := range []Cipher{AES256GCM, ChaCha20Poly1305} {
		for _, chunk := range []int{16 << 10, DefaultChunkSize, 256 << 10} {
			p := Params{Cipher: c, ChunkSize: chunk}
			pt := make([]byte, 16<<20)
			ct := seal(b, testKey(1), p, pt)
			buf := make([]byte, 256<<10)
			b.Run(c.String()+"/"+size(chunk), func(b *testing.B) {
				b.SetBytes(int64(len(pt)))
				b.ReportAllocs()
				for b.Loop() {
					r, err := NewReader(bytes.NewReader(ct), testKey(1), p)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.CopyBuffer(io.Discard, r, buf); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkEncrypt is the publisher's side.
func BenchmarkEncrypt(b *testing.B) {
	pt := make([]byte, 16<<20)
	for _, c := range []Cipher{AES256GCM, ChaCha20Poly1305} {
		b.Run(c.String(), func(b *testing.B) {
			b.SetBytes(int64(len(pt)))
			for b.Loop() {
				w, err := NewWriter(io.Discard, testKey(1), Params{Cipher: c}, nil)
				if err != nil {
					b.Fatal(err)
				}
				w.Write(pt)
				w.Close()
			}
		})
	}
}

// BenchmarkUnwrap is the cost of opening one wrapped key on the device.
func BenchmarkUnwrap(b *testing.B) {
	for _, kem := range []KEM{MLKEM768X25519, X25519} {
		k, _ := GenerateKey(kem)
		w, _ := Wrap(k.Public(), testKey(1), "t", "1.0.0")
		b.Run(kem.String(), func(b *testing.B) {
			for b.Loop() {
				if _, err := k.Unwrap(w, "t", "1.0.0"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func size(n int) string {
	if n >= 1<<20 {
		return itoa(n>>20) + "MiB"
	}
	return itoa(n>>10) + "KiB"
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
