package tufjson

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func BenchmarkDecodeTargets(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		data := targetsJSON(b, n)
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				doc, err := DecodeTargets(data)
				require.NoError(b, err)
				_, err = doc.Canonical()
				require.NoError(b, err)
			}
		})
	}
}

func BenchmarkCanonicalize(b *testing.B) {
	for name, data := range map[string][]byte{
		"sorted":   []byte(`{"a":[1,2,3],"b":{"c":"d","e":true},"f":"xyz"}`),
		"unsorted": []byte(`{"f":"xyz","b":{"e":true,"c":"d"},"a":[1,2,3]}`),
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, err := Canonicalize(data)
				require.NoError(b, err)
			}
		})
	}
}
