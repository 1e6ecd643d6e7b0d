package drill

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/fibercut/fibercut/demoapp"
	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/lab/labtest"
	"github.com/fibercut/fibercut/topology"
)

// backend is one member's backend file: its size and the part in use.
type backend struct{ size, inUse int64 }

// backends asks every member of the lab's ledger for its backend sizes.
func backends(tb testing.TB, c *clientv3.Client) map[string]backend {
	tb.Helper()
	out := map[string]backend{}
	for _, ep := range c.Endpoints() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := c.Status(ctx, ep)
		cancel()
		if err != nil {
			tb.Fatalf("status of %s: %v", ep, err)
		}
		out[ep] = backend{st.DbSize, st.DbSizeInUse}
	}
	return out
}

// load runs n transfers of 64 users through the lab's gateway and fails
// on any transfer that did not commit.
func load(tb testing.TB, l *lab.Lab, n int64) demoapp.LoadStats {
	tb.Helper()
	if n < 1 {
		tb.Fatalf("load of %d transfers: want 1 or more (0 would run until the time limit)", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	st, err := demoapp.RunLoad(ctx, demoapp.LoadConfig{BaseURL: l.Gateway.URL(), Users: 64, Rate: 1e6,
		Duration: 9 * time.Minute, MaxOps: n})
	if err != nil {
		tb.Fatal(err)
	}
	if st.Transfers.Fail+st.Transfers.Unknown > 0 {
		tb.Fatalf("transfers: %d ok, %d failed, %d unknown", st.Transfers.OK, st.Transfers.Fail, st.Transfers.Unknown)
	}
	return st
}

// TestResetFreesTheBackend fills a real lab's ledger with transfers and
// resets it as every drill does first: each member's backend file shrinks
// back to about what a fresh one holds, so that drill after drill on a
// long-lived lab does not creep towards the quota.
func TestResetFreesTheBackend(t *testing.T) {
	cli := labtest.RequireDocker(t)
	l := labtest.Up(t, cli, topology.Default)
	c, err := ledgerClient(l)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := backends(t, c)
	load(t, l, 20_000)
	defer func(p int64) { clearPage = p }(clearPage)
	clearPage = 3000 // the reset deletes page after page
	full := backends(t, c)
	if err := resetLedger(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	after := backends(t, c)
	for _, p := range ledgerPrefixes {
		resp, err := c.Get(context.Background(), p, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil || resp.Count != 0 {
			t.Errorf("after the reset, %s* holds %v keys (%v)", p, resp.Count, err)
		}
	}
	for ep, f := range full {
		s, a := start[ep], after[ep]
		t.Logf("%s: in use %d → %d → %d bytes, file %d → %d → %d", ep, s.inUse, f.inUse, a.inUse, s.size, f.size, a.size)
		if f.inUse < s.inUse+2<<20 {
			t.Errorf("%s: 20,000 transfers left %d bytes in use (from %d): the test did not fill the ledger", ep, f.inUse, s.inUse)
		}
		if a.size >= f.size/2 || a.inUse > s.inUse+1<<20 {
			t.Errorf("%s after the reset: file %d bytes (was %d), in use %d (fresh %d); want the file shrunk and about a fresh member's use",
				ep, a.size, f.size, a.inUse, s.inUse)
		}
	}
}

// BenchmarkSoakAcrossDrills is the long-lived lab of issue 11: b.N
// transfers through the gateway of a real default lab, in five rounds,
// each followed by the reset every drill begins with. It logs each
// member's backend before and after each reset, and reports the largest
// backend file after a reset, in the first round and in the last: flat
// when the lab stays healthy drill after drill. Run it with -benchtime
// 1000000x.
func BenchmarkSoakAcrossDrills(b *testing.B) {
	cli := labtest.RequireDocker(b)
	l := labtest.Up(b, cli, topology.Default)
	c, err := ledgerClient(l)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	const rounds = 5
	largest := func(m map[string]backend) (size, inUse int64) {
		for _, v := range m {
			size, inUse = max(size, v.size), max(inUse, v.inUse)
		}
		return size, inUse
	}
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	var first, last, peak int64
	perRound := max(int64(b.N/rounds), 1) // the first call has b.N 1
	b.ResetTimer()
	for r := range rounds {
		st := load(b, l, perRound)
		fs, fu := largest(backends(b, c))
		if err := resetLedger(context.Background(), c); err != nil {
			b.Fatal(err)
		}
		as, au := largest(backends(b, c))
		b.Logf("round %d: %d transfers at %.0f/s; largest member before the reset: file %.1f MiB, %.1f in use; after: %.1f MiB, %.1f in use",
			r+1, st.Transfers.OK, st.CommittedPerSec, mib(fs), mib(fu), mib(as), mib(au))
		if r == 0 {
			first = as
		}
		last, peak = as, max(peak, fs)
	}
	b.StopTimer()
	b.ReportMetric(mib(peak), "MiB-peak-before-reset")
	b.ReportMetric(mib(first), "MiB-after-first-reset")
	b.ReportMetric(mib(last), "MiB-after-last-reset")
	b.ReportMetric(0, "ns/op")
}
