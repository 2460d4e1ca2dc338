package delta

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func expPair(t *testing.T, name string) (old, new []byte) {
	dir := filepath.Join(os.Getenv("HOME"), ".cache/otaseal-bench")
	m, _ := filepath.Glob(filepath.Join(dir, name+"-old.*"))
	if len(m) == 0 {
		t.Skip("no pair")
	}
	old, _ = os.ReadFile(m[0])
	m, _ = filepath.Glob(filepath.Join(dir, name+"-new.*"))
	new, _ = os.ReadFile(m[0])
	return
}

func rclzRoundTrip(t *testing.T, buf []byte, start int, p rclzParams) int {
	t0 := time.Now()
	enc := encodeRCLZ(nil, buf, start, StreamWindow, p)
	t1 := time.Now()
	r, err := newRCLZReader(bufio.NewReader(bytes.NewReader(enc)), start, func(b []byte) error { copy(b, buf); return nil }, StreamWindow, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, buf[start:]) {
		t.Fatal("mismatch")
	}
	t.Logf("enc %v dec %v", t1.Sub(t0), time.Since(t1))
	return len(enc)
}

func TestExpRCLZ(t *testing.T) {
	if os.Getenv("EXP") == "" {
		t.Skip()
	}
	for _, name := range []string{"smallfar", "small"} {
		old, new := expPair(t, name)
		oldF, newF := bytes.Clone(old), bytes.Clone(new)
		f := newX86Filter()
		f.convert(oldF, 0, true, true)
		f = newX86Filter()
		f.convert(newF, 0, true, true)
		buf := append(oldF, newF...)
		p := rclzDefault
		n := rclzRoundTrip(t, buf, len(oldF), p)
		t.Logf("%s LZ variant: %d", name, n)
		d, _ := Diff(old, new)
		var seg bytes.Buffer
		d.writeSegmentsPatch(&seg)
		payload := streamPayload(t, seg.Bytes())
		n2 := rclzRoundTrip(t, payload, 0, p)
		t.Logf("%s segments: zstd %d raw %d rclz %d", name, seg.Len(), len(payload), n2)
	}
}
