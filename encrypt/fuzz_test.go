package encrypt

import (
	"bytes"
	"io"
	"testing"
)

// FuzzReader feeds arbitrary streams to the decryptor under a fixed key:
// it must never panic, and whatever it returns without error must be the
// plaintext the seed streams were made of (anything else would be a
// forgery). Seeds are valid streams of both ciphers and their prefixes.
func FuzzReader(f *testing.F) {
	key := testKey(7)
	pt := katPlaintext(300)
	for _, c := range []Cipher{AES256GCM, ChaCha20Poly1305} {
		for _, n := range []int{0, 1, 64, 200, 300} {
			ct := seal(f, key, Params{Cipher: c, ChunkSize: MinChunkSize}, pt[:n])
			f.Add(uint16(c), ct)
			f.Add(uint16(c), ct[:len(ct)/2])
		}
	}
	f.Fuzz(func(t *testing.T, cipher uint16, ct []byte) {
		r, err := NewReader(bytes.NewReader(ct), key, Params{Cipher: Cipher(cipher), ChunkSize: MinChunkSize})
		if err != nil {
			return
		}
		got, err := io.ReadAll(r)
		if err != nil {
			return
		}
		if !bytes.Equal(got, pt[:min(len(pt), len(got))]) || len(got) > len(pt) {
			t.Fatalf("decrypted %d bytes that no seed holds", len(got))
		}
	})
}
