package demoapp_test

import (
	"context"
	"testing"
	"time"

	"github.com/fibercut/fibercut/demoapp"
	"github.com/fibercut/fibercut/lab/labtest"
	"github.com/fibercut/fibercut/topology"
)

// BenchmarkTransfersThroughGateway is issue 4's speed measurement: 64 users,
// each with one transfer in flight, through the gateway of a real default
// lab, with group commit and then without it, on the same lab in the same
// run. b.N is the number of transfers of each sub-benchmark; run it with a
// fixed count, e.g. -benchtime 10000x. It reports the committed rate and the
// latency of ok transfers, and fails if any transfer failed or timed out.
func BenchmarkTransfersThroughGateway(b *testing.B) {
	cli := labtest.RequireDocker(b)
	l := labtest.Up(b, cli, topology.Default)
	for _, mode := range []struct {
		name    string
		noBatch bool
	}{{"group-commit", false}, {"no-batch", true}} {
		b.Run(mode.name, func(b *testing.B) {
			const users = 64
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			b.ResetTimer()
			st, err := demoapp.RunLoad(ctx, demoapp.LoadConfig{
				BaseURL: l.Gateway.URL(), Users: users, Rate: 1e6, Duration: 3 * time.Minute,
				MaxOps: int64(b.N) + users, NoBatch: mode.noBatch,
			})
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			if st.Accounts != users || st.Transfers.Fail+st.Transfers.Unknown > 0 {
				b.Fatalf("%d accounts opened; transfers: %d ok, %d failed, %d unknown", st.Accounts, st.Transfers.OK, st.Transfers.Fail, st.Transfers.Unknown)
			}
			b.ReportMetric(st.CommittedPerSec, "transfers/s")
			b.ReportMetric(float64(st.Latency.P50.Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(st.Latency.P99.Microseconds())/1000, "p99-ms")
			b.ReportMetric(0, "ns/op") // the rate above says it; per-op time mixes in account opening
		})
	}
}
