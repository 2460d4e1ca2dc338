package delta

import (
	"io"
	"os"
	"testing"
	"time"
)

func TestProfPhases(t *testing.T) {
	old, _ := os.ReadFile(os.Getenv("B") + "/medium-old.esbuild")
	new, _ := os.ReadFile(os.Getenv("B") + "/medium-new.esbuild")
	s := time.Now()
	m := newMatcher(old)
	t.Log("index", time.Since(s)); s = time.Now()
	ops := m.scan(new, 0, 0)
	t.Log("scan serial", time.Since(s), len(ops)); s = time.Now()
	d, _ := Diff(old, new)
	t.Log("Diff total", time.Since(s)); s = time.Now()
	d.Encode(io.Discard, FormatBSDIFF40)
	t.Log("bz", time.Since(s)); s = time.Now()
	d.Encode(io.Discard, FormatStream)
	t.Log("zstd", time.Since(s))
}
