package delta

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/otaseal/otaseal/internal/sais"
	"github.com/stretchr/testify/require"
)

// Benchmarks on real pairs read OTASEAL_BENCH_DIR (the directory
// examples/deltabench/fetch-pairs.sh fills); they are skipped without it. The
// synthetic ones always run.

func BenchmarkSuffixArray(b *testing.B) {
	for _, n := range []int{1 << 20, 8 << 20} {
		old, _ := synthPair(n)
		b.Run(fmt.Sprintf("%dMiB", n>>20), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				sais.Sort(old, make([]int32, len(old)))
			}
		})
	}
}

func BenchmarkDiff(b *testing.B) {
	old, new := synthPair(8 << 20)
	b.SetBytes(int64(len(new)))
	for b.Loop() {
		if _, err := Diff(old, new); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	old, new := synthPair(8 << 20)
	d, err := Diff(old, new)
	require.NoError(b, err)
	for _, f := range formats {
		b.Run(f.String(), func(b *testing.B) {
			b.SetBytes(int64(len(new)))
			var size int
			for b.Loop() {
				var buf bytes.Buffer
				if err := d.Encode(&buf, f); err != nil {
					b.Fatal(err)
				}
				size = buf.Len()
			}
			b.ReportMetric(float64(size), "patch-bytes")
		})
	}
}

// BenchmarkApplyStream shows that applying allocates the same whatever the
// image size (B/op stays flat from 1 to 100 MiB): the output is streamed.
func BenchmarkApplyStream(b *testing.B) {
	for _, n := range []int{1 << 20, 10 << 20, 100 << 20} {
		old, new, patch := applyBenchPatch(b, n, FormatStream)
		b.Run(fmt.Sprintf("%dMiB", n>>20), func(b *testing.B) {
			b.SetBytes(int64(len(new)))
			b.ReportAllocs()
			for b.Loop() {
				_, err := ApplyStream(io.Discard, bytes.NewReader(old), int64(len(old)), bytes.NewReader(patch), &ApplyOptions{MaxOutput: int64(len(new))})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkApplyBSDIFF40(b *testing.B) {
	for _, n := range []int{1 << 20, 10 << 20} {
		old, new, patch := applyBenchPatch(b, n, FormatBSDIFF40)
		b.Run(fmt.Sprintf("%dMiB", n>>20), func(b *testing.B) {
			b.SetBytes(int64(len(new)))
			b.ReportAllocs()
			for b.Loop() {
				_, err := ApplyBSDIFF40(io.Discard, bytes.NewReader(old), int64(len(old)), bytes.NewReader(patch), int64(len(patch)), &ApplyOptions{MaxOutput: int64(len(new))})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// applyBenchPatch builds a patch for an n-byte image without running Diff
// (which would dominate the set-up at 100 MiB): one add run over a copy of
// old with a changed byte every 4 KiB, then a block of extra data.
func applyBenchPatch(b *testing.B, n int, f Format) (old, new, patch []byte) {
	rng := newRand(31)
	old = structured(rng, n)
	new = bytes.Clone(old)
	for i := 0; i < n; i += 4096 {
		new[i] ^= byte(rng.Uint32())
	}
	new = append(new, randomBytes(rng, 64<<10)...)
	d := &Script{old: old, new: new, ops: []op{{oldPos: 0, newPos: 0, add: int64(n), copy: 64 << 10}}}
	var buf bytes.Buffer
	require.NoError(b, d.Encode(&buf, f))
	return old, new, buf.Bytes()
}

// BenchmarkPair runs Diff, both encoders and both appliers on the real
// pairs in OTASEAL_BENCH_DIR (e.g. medium-old.esbuild/medium-new.esbuild).
func BenchmarkPair(b *testing.B) {
	dir := os.Getenv("OTASEAL_BENCH_DIR")
	if dir == "" {
		b.Skip("set OTASEAL_BENCH_DIR to the fetch-pairs.sh cache directory")
	}
	olds, _ := filepath.Glob(filepath.Join(dir, "*-old.*"))
	for _, oldPath := range olds {
		base := filepath.Base(oldPath)
		name := base[:bytes.Index([]byte(base), []byte("-old"))]
		newPath := filepath.Join(dir, name+"-new"+base[len(name)+4:])
		// Everything per pair runs inside its sub-benchmark, so that
		// -bench 'Pair/small/' reads and diffs only that pair.
		b.Run(name, func(b *testing.B) {
			old, err := os.ReadFile(oldPath)
			require.NoError(b, err)
			new, err := os.ReadFile(newPath)
			require.NoError(b, err)
			b.Run("diff", func(b *testing.B) {
				b.SetBytes(int64(len(new)))
				for b.Loop() {
					if _, err := Diff(old, new); err != nil {
						b.Fatal(err)
					}
				}
			})
			d, err := Diff(old, new)
			require.NoError(b, err)
			runs, predicted := d.predictions()
			b.Run("predict", func(b *testing.B) {
				for b.Loop() {
				}
				b.ReportMetric(float64(runs), "runs")
				b.ReportMetric(100*float64(predicted)/float64(max(runs, 1)), "predicted-%")
			})
			for _, f := range formats {
				// Encoded here, not only in the encode benchmark, so that
				// -bench 'Pair/small/apply' has a patch to apply.
				var patch bytes.Buffer
				require.NoError(b, d.Encode(&patch, f))
				b.Run("encode-"+f.String(), func(b *testing.B) {
					var out bytes.Buffer
					for b.Loop() {
						out.Reset()
						if err := d.Encode(&out, f); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(out.Len()), "patch-bytes")
				})
				b.Run("apply-"+f.String(), func(b *testing.B) {
					b.SetBytes(int64(len(new)))
					b.ReportAllocs()
					opts := &ApplyOptions{MaxOutput: int64(len(new))}
					for b.Loop() {
						if _, err := applyDiscard(old, patch.Bytes(), f, opts); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}

// predictions returns how many runs of nonzero diff bytes the streaming
// encoder writes for d, and how many of them as a prediction.
func (d *Script) predictions() (runs, predicted int) {
	seg := newSegmentWriter(io.Discard, d.old, d.new)
	if err := d.writeSegments(seg); err != nil {
		panic(err) // io.Discard does not fail
	}
	return seg.nruns, seg.npredicted
}
