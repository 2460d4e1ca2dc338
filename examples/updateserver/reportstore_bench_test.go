package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/otaseal/otaseal/fleet"
)

// BenchmarkStoreAdd measures committed reports per second into each
// database, from many goroutines (devices) at once; each report is its
// own transaction, durable before add returns.
func BenchmarkStoreAdd(b *testing.B) {
	for _, kind := range storeKinds {
		b.Run(kind, func(b *testing.B) {
			st, _ := openTestStore(b, kind)
			var next atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				dev := fmt.Sprintf("bench-%d", next.Add(1))
				seq := uint64(0)
				for pb.Next() {
					seq++
					if _, err := st.add(context.Background(), newStoredReport(dev, seq, fleet.Confirmed, testTarget)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
		})
	}
}
