package verify

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The block pipe passes every byte in order however the two sides size
// their reads, ends with the writer's error after the blocks put before
// it, and refuses a writer once the reader closed.
func TestBlockPipe(t *testing.T) {
	data := make([]byte, 10*hashBlock+123)
	for i := range data {
		data[i] = byte(rand.IntN(256))
	}
	p := newBlockPipe(hashAhead)
	go func() {
		rest := data
		for len(rest) > 0 {
			b := p.get()
			n := copy(b[:1+rand.IntN(len(b))], rest)
			rest = rest[n:]
			if err := p.put(b[:n]); err != nil {
				return
			}
		}
		p.Close()
	}()
	var got bytes.Buffer
	buf := make([]byte, 7777)
	for {
		n, err := p.Read(buf[:1+rand.IntN(len(buf))])
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
	}
	assert.True(t, bytes.Equal(data, got.Bytes()))

	boom := errors.New("download failed")
	p = newBlockPipe(hashAhead)
	b := p.get()
	require.NoError(t, p.put(append(b[:0], "abc"...)))
	p.CloseWithError(boom)
	all, err := io.ReadAll(p)
	assert.Equal(t, "abc", string(all), "blocks put before the error are read")
	assert.ErrorIs(t, err, boom)

	p = newBlockPipe(hashAhead)
	p.CloseWithError(io.ErrClosedPipe) // the reader gave up
	assert.ErrorIs(t, p.put(p.get()[:1]), io.ErrClosedPipe)
}
