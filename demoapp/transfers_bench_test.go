package demoapp_test

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
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

// BenchmarkJoinsThroughGateway is the hall joining at once (issue 11): 64
// clients open b.N accounts through the gateway of a real default lab as
// fast as they are answered (from the lab's host, so no rate limit), then
// the same lab's transfers/s for comparison. Run it with -benchtime 2000x.
// It reports opens/s and the latency of an open, and fails on any failed
// open.
func BenchmarkJoinsThroughGateway(b *testing.B) {
	cli := labtest.RequireDocker(b)
	l := labtest.Up(b, cli, topology.Default)
	const clients = 64
	// Each phone in a hall keeps its own connection: so do the clients
	// here (http.DefaultClient keeps 2, and would measure TCP set-ups).
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	defer hc.CloseIdleConnections()
	c := demoapp.Client{Base: l.Gateway.URL(), As: demoapp.ClientLoad, HTTP: hc}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b.Run("opens", func(b *testing.B) {
		lat := make([]time.Duration, b.N)
		var next atomic.Int64
		var failed atomic.Int64
		var wg sync.WaitGroup
		b.ResetTimer()
		start := time.Now()
		for range clients {
			wg.Go(func() {
				for {
					i := next.Add(1) - 1
					if i >= int64(b.N) {
						return
					}
					t0 := time.Now()
					if _, _, err := c.Open(ctx); err != nil {
						failed.Add(1)
						b.Log(err)
					}
					lat[i] = time.Since(t0)
				}
			})
		}
		wg.Wait()
		took := time.Since(start)
		b.StopTimer()
		if n := failed.Load(); n > 0 {
			b.Fatalf("%d of %d openings failed", n, b.N)
		}
		slices.Sort(lat)
		b.ReportMetric(float64(b.N)/took.Seconds(), "opens/s")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(took.Seconds(), "s-total")
	})
	b.Run("transfers", func(b *testing.B) {
		st, err := demoapp.RunLoad(ctx, demoapp.LoadConfig{BaseURL: l.Gateway.URL(), Users: 64, Rate: 1e6, Duration: 3 * time.Minute, MaxOps: int64(b.N) + 64})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(st.CommittedPerSec, "transfers/s")
		b.ReportMetric(0, "ns/op")
	})
}
