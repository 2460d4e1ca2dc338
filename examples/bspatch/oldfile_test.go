package main

import (
	"bytes"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/otaseal/otaseal/delta"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOpenOldReadsLikeTheFile(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 100<<10+17)
	rand.New(rand.NewSource(9)).Read(data)
	path := filepath.Join(dir, "old")
	require.NoError(t, os.WriteFile(path, data, 0o644))

	old, size, err := openOld(path)
	require.NoError(t, err)
	defer old.Close()
	assert.Equal(t, int64(len(data)), size)
	if runtime.GOOS == "linux" {
		assert.IsType(t, &mappedFile{}, old, "a regular file is mapped")
	}
	for _, c := range []struct {
		off, n int64
		want   int
		eof    bool
	}{
		{0, 10, 10, false},
		{4095, 8192, 8192, false},
		{size - 5, 5, 5, false},
		{size - 5, 10, 5, true},
		{size, 1, 0, true},
		{size + 100, 1, 0, true},
	} {
		buf := make([]byte, c.n)
		n, err := old.ReadAt(buf, c.off)
		assert.Equal(t, c.want, n, "ReadAt(%d bytes at %d)", c.n, c.off)
		if c.eof {
			assert.ErrorIs(t, err, io.EOF)
		} else {
			assert.NoError(t, err)
		}
		if n > 0 {
			assert.Equal(t, data[c.off:c.off+int64(n)], buf[:n])
		}
	}
	_, err = old.ReadAt(make([]byte, 1), -1)
	assert.Error(t, err)

	// An empty file and a missing one.
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, nil, 0o644))
	e, size, err := openOld(empty)
	require.NoError(t, err)
	assert.Zero(t, size)
	require.NoError(t, e.Close())
	_, _, err = openOld(filepath.Join(dir, "missing"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// A file cut short while it is mapped makes the copy fault: the patch must
// fail with an error, not crash the program.
func TestOpenOldTruncatedWhileMapped(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("mapping is tested where SIGBUS on a truncated mapping is defined")
	}
	dir := t.TempDir()
	data := make([]byte, 256<<10)
	rand.New(rand.NewSource(10)).Read(data)
	newData := bytes.Clone(data)
	for i := 0; i < len(newData); i += 4096 {
		newData[i]++
	}
	d, err := delta.Diff(data, newData)
	require.NoError(t, err)
	var patch bytes.Buffer
	require.NoError(t, d.Encode(&patch, delta.FormatStream))

	path := filepath.Join(dir, "old")
	require.NoError(t, os.WriteFile(path, data, 0o644))
	old, size, err := openOld(path)
	require.NoError(t, err)
	defer old.Close()
	require.IsType(t, &mappedFile{}, old)
	require.NoError(t, os.Truncate(path, 4096))

	_, err = old.ReadAt(make([]byte, 100), 100<<10)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "changed while it was being read")

	_, err = delta.ApplyStream(io.Discard, old, size, &patch, &delta.ApplyOptions{MaxOutput: int64(len(newData))})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "changed while it was being read")
}

// Above mapMax the file is read, not mapped: a mapping's pages count in
// resident memory, which must stay flat in the image size.
func TestOpenOldLargeIsNotMapped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old")
	require.NoError(t, os.WriteFile(path, make([]byte, mapMax+1), 0o644))
	old, size, err := openOld(path)
	require.NoError(t, err)
	defer old.Close()
	assert.Equal(t, int64(mapMax+1), size)
	assert.IsType(t, &os.File{}, old)
}
