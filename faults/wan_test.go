package faults_test

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/fibercut/fibercut/faults"
	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/topology"
)

// The bounds a baseline round trip is judged by. A holder never releases
// a packet more than a quarter of its latency early, so a round trip over
// a link of one-way latency L takes at least 1.5 L; the upper bounds keep
// the classes apart (1 ms, 5 ms, 15 ms one way) with room for a busy
// machine.
const (
	cityRTTMin, cityRTTMax = 1500 * time.Microsecond, 10 * time.Millisecond  // 1 ms one way
	szRTTMin, szRTTMax     = 22500 * time.Microsecond, 60 * time.Millisecond // 15 ms one way
	undelayedRTT           = 1 * time.Millisecond                            // a connect across the bridge
)

// expectRTT checks the median connect time from one DC to another, with
// every try through.
func (f *fixture) expectRTT(what, from, to string, lo, hi time.Duration) {
	f.t.Helper()
	d, p := f.rtt(from, to)
	if d < lo || d >= hi || p.Reach != lab.ReachOK || p.OK != p.Tries {
		f.t.Errorf("%s: %s→%s takes %s (%s, %d of %d tries through); want %s to %s, every try through", what, from, to, d, p.Reach, p.OK, p.Tries, lo, hi)
	}
}

// TestBaselineWANLatency puts the topology's latencies on a real lab: a
// round trip to Shenzhen takes about 30 ms and one within Hangzhou about
// 2 ms. Faults act on top of it (cuts and isolations cut, a delay adds)
// and their heals return the links to it, not to zero; heal --all keeps
// it. A DC powered off and on again gets it back from the holder, which
// follows the engine. Residue does not count it. Killed, the holder fails
// open: the links carry traffic at once, undelayed; a new start delays
// them again, and a stop leaves nothing.
func TestBaselineWANLatency(t *testing.T) {
	f := newFixture(t, topology.Default)
	ctx := context.Background()
	w, err := faults.StartWAN(ctx, f.lab, f.store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { faults.StopWAN(context.Background(), f.store, nil) })
	if !w.Held() {
		t.Fatalf("started, the baseline %+v has no live holder", w)
	}
	if again, err := faults.StartWAN(ctx, f.lab, f.store); err != nil || again.Holder.PID != w.Holder.PID {
		t.Fatalf("started again: %+v, %v; want the same holder, %d", again, err, w.Holder.PID)
	}
	f.expectRTT("baseline", "hz-a", "sz-a", szRTTMin, szRTTMax)
	f.expectRTT("baseline", "sz-a", "hz-a", szRTTMin, szRTTMax)
	f.expectRTT("baseline", "hz-a", "hz-b", cityRTTMin, cityRTTMax)
	if res := f.residue(); len(res) != 0 {
		t.Errorf("with only the baseline on, Residue says:\n  %s", strings.Join(res, "\n  "))
	}

	// A cut on top, healed: back to the baseline.
	rec := f.apply(faults.Spec{Kind: faults.KindCut, A: "hz-a", B: "sz-a", For: time.Minute})
	if p, _ := f.matrix(lab.MatrixOptions{Tries: 1}).Get("hz-a", "sz-a"); p.Reach != lab.ReachCut {
		t.Errorf("hz-a→sz-a during the cut: %s", p.Reach)
	}
	f.healAndExpectBaseline(rec.ID)
	f.expectRTT("after the cut's heal", "hz-a", "sz-a", szRTTMin, szRTTMax)

	// An isolation on top, healed.
	rec = f.apply(faults.Spec{Kind: faults.KindIsolate, DC: "hz-a", For: time.Minute})
	if p, _ := f.matrix(lab.MatrixOptions{Tries: 1}).Get("hz-a", "hz-b"); p.Reach != lab.ReachCut {
		t.Errorf("hz-a→hz-b during the isolation: %s", p.Reach)
	}
	f.healAndExpectBaseline(rec.ID)
	f.expectRTT("after the isolation's heal", "hz-a", "hz-b", cityRTTMin, cityRTTMax)

	// A delay adds to it (sz-a's answers wait for both), and its heal
	// takes only its own part away.
	const delay = 20 * time.Millisecond
	rec = f.apply(faults.Spec{Kind: faults.KindDelay, Delay: delay, DC: "sz-a", For: time.Minute, Engine: faults.EngineNFQueue})
	f.expectRTT("baseline and a 20 ms delay", "hz-a", "sz-a", szRTTMin+delay-2*time.Millisecond, szRTTMax+delay)
	f.healAndExpectBaseline(rec.ID)
	f.expectRTT("after the delay's heal", "hz-a", "sz-a", szRTTMin, szRTTMax)

	// heal --all ends faults, not the lab's distance.
	if _, err := f.in.HealAll(ctx); err != nil {
		t.Fatal(err)
	}
	f.expectRTT("after heal --all", "hz-a", "sz-a", szRTTMin, szRTTMax)

	// Powered off and on: a new namespace, which the holder arms.
	rec = f.apply(faults.Spec{Kind: faults.KindPowerOff, DC: "sz-a", For: time.Minute})
	if err := f.in.Heal(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	f.waitRunning("sz-a")
	deadline := time.Now().Add(15 * time.Second)
	for d, _ := f.rtt("hz-a", "sz-a"); d < szRTTMin; d, _ = f.rtt("hz-a", "sz-a") {
		if time.Now().After(deadline) {
			t.Fatalf("15 s after sz-a was powered on again, hz-a→sz-a takes %s; the holder did not delay its new namespace", d)
		}
		time.Sleep(200 * time.Millisecond)
	}
	f.expectRTT("sz-a powered on again", "sz-a", "hz-a", szRTTMin, szRTTMax)

	// Killed: fail open at once, nothing dropped.
	st, err := faults.LoadWAN(f.store, f.lab)
	if err != nil || !st.Held() {
		t.Fatalf("the baseline before the kill: %+v, %v", st, err)
	}
	if err := syscall.Kill(st.Holder.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for i := 0; st.Holder.Alive(); i++ {
		if i > 100 {
			t.Fatal("the killed holder is still alive after 10 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	f.expectRTT("holder killed", "hz-a", "sz-a", 0, undelayedRTT*5)
	if st, _ := faults.LoadWAN(f.store, f.lab); st == nil || st.Held() {
		t.Errorf("with its holder killed, the baseline is recorded as %+v; want recorded and not held", st)
	}
	if _, err := faults.StartWAN(ctx, f.lab, f.store); err != nil {
		t.Fatal(err)
	}
	f.expectRTT("started again", "hz-a", "sz-a", szRTTMin, szRTTMax)

	// Stopped: no chain, no record, no delay.
	l, err := lab.Inspect(ctx, f.cli, f.lab.Name) // sz-a has a new pid
	if err != nil {
		t.Fatal(err)
	}
	if had, err := faults.StopWAN(ctx, f.store, l); err != nil || !had {
		t.Fatalf("StopWAN = %v, %v; want true", had, err)
	}
	if st, _ := faults.LoadWAN(f.store, f.lab); st != nil {
		t.Errorf("stopped, the baseline is still recorded: %+v", st)
	}
	f.expectRTT("stopped", "hz-a", "sz-a", 0, undelayedRTT*5)
	for _, dc := range []string{"hz-a", "sz-a"} {
		inNetns(t, f, dc, func() {
			conn, err := nftables.New()
			if err != nil {
				t.Error(err)
				return
			}
			chains, err := conn.ListChainsOfTableFamily(nftables.TableFamilyINet)
			if err != nil {
				t.Error(err)
				return
			}
			for _, ch := range chains {
				if ch.Table.Name == faults.TableName && ch.Name == "wan" {
					t.Errorf("%s after StopWAN still has the wan chain", dc)
				}
			}
		})
	}
}
