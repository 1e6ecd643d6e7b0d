package faults

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fibercut/fibercut/lab"
)

// catchUps returns the catch-ups in the injector's store.
func catchUps(t *testing.T, in *Injector) []CatchUp {
	t.Helper()
	st, err := in.store.Load()
	if err != nil {
		t.Fatal(err)
	}
	return st.CatchUps
}

func expectShares(t *testing.T, b *fakeBackend, want map[string]int64) {
	t.Helper()
	for dc, w := range want {
		if got := b.shares(dc); got != w {
			t.Errorf("dc %s: CPU weight %d, want %d", dc, got, w)
		}
	}
}

func heal(t *testing.T, in *Injector, recs ...*Record) {
	t.Helper()
	for _, r := range recs {
		if err := in.Heal(context.Background(), r.ID); err != nil {
			t.Fatal(err)
		}
	}
}

var (
	always = func(context.Context, lab.DC) bool { return true }
	never  = func(context.Context, lab.DC) bool { return false }
)

// TestHealLowersTheCutOffDCsUntilCurrent: healing a city's isolation
// lowers the weight of its DCs only, once their keeper runs; the keeper
// restores each DC once it is current, and its catch-up is forgotten by
// the next heal of leftovers once the keeper is gone.
func TestHealLowersTheCutOffDCsUntilCurrent(t *testing.T) {
	in, b := fakeInjector(t)
	rec := mustApply(t, in, "isolate city hangzhou", 0)
	expectShares(t, b, map[string]int64{"hz-a": 0, "hz-b": 0}) // not while cut off
	heal(t, in, rec)
	expectShares(t, b, map[string]int64{"hz-a": catchUpShares, "hz-b": catchUpShares, "sh-a": 0, "sh-b": 0, "sz-a": 0})
	cs := catchUps(t, in)
	if len(cs) != 1 || cs[0].Fault != rec.ID || !slices.Equal(cs[0].DCs, []string{"hz-a", "hz-b"}) || cs[0].Keeper == nil || !cs[0].Lowered {
		t.Fatalf("catch-ups after the heal: %+v; want one for %s of hz-a and hz-b, lowered, with its keeper", cs, rec.ID)
	}

	var mu sync.Mutex
	currentDCs := map[string]bool{"hz-a": true}
	caughtUp := func(_ context.Context, d lab.DC) bool {
		mu.Lock()
		defer mu.Unlock()
		return currentDCs[d.ID]
	}
	done := make(chan error, 1)
	go func() { done <- in.keepCatchUp(context.Background(), rec.ID, rec.Lab, caughtUp) }()
	eventually(t, "hz-a restored", func() bool { return b.shares("hz-a") == defaultShares })
	if got := b.shares("hz-b"); got != catchUpShares {
		t.Fatalf("hz-b, still catching up: weight %d, want %d", got, catchUpShares)
	}
	mu.Lock()
	currentDCs["hz-b"] = true
	mu.Unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	expectShares(t, b, map[string]int64{"hz-a": defaultShares, "hz-b": defaultShares})

	gone := Process{PID: 1 << 30} // the keeper has ended
	if err := in.store.Update(func(st *State) error { st.CatchUps[0].Keeper = &gone; return nil }); err != nil {
		t.Fatal(err)
	}
	rep, err := in.HealLeftovers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if cs := catchUps(t, in); len(cs) != 0 || len(rep.Weights) != 0 {
		t.Fatalf("after the keeper ended: catch-ups %+v, weights restored %v; want none", cs, rep.Weights)
	}
}

// TestCatchUpEndsAtItsLimit: a DC that never reports current gets its
// weight back at the catch-up's end, which the keeper reads from the
// store each round.
func TestCatchUpEndsAtItsLimit(t *testing.T) {
	in, b := fakeInjector(t)
	rec := mustApply(t, in, "isolate dc sz-a", 0)
	heal(t, in, rec)
	if err := in.store.Update(func(st *State) error {
		st.CatchUps[0].Until = time.Now().Add(300 * time.Millisecond)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := in.keepCatchUp(context.Background(), rec.ID, rec.Lab, never); err != nil {
		t.Fatal(err)
	}
	expectShares(t, b, map[string]int64{"sz-a": defaultShares})
}

// TestKeeperRestoresWhenStopped: a keeper told to stop (SIGTERM ends its
// context) restores what it holds, retrying a refused update, and returns.
func TestKeeperRestoresWhenStopped(t *testing.T) {
	in, b := fakeInjector(t)
	rec := mustApply(t, in, "isolate city hangzhou", 0)
	heal(t, in, rec)
	b.mu.Lock()
	b.failShares = 1
	b.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := in.keepCatchUp(ctx, rec.ID, rec.Lab, never); err != nil {
		t.Fatal(err)
	}
	expectShares(t, b, map[string]int64{"hz-a": defaultShares, "hz-b": defaultShares})
}

// TestKeeperLetsGoWhenForgotten: a keeper whose catch-up HealAll forgot
// (it restored every weight itself) returns at once.
func TestKeeperLetsGoWhenForgotten(t *testing.T) {
	in, b := fakeInjector(t)
	rec := mustApply(t, in, "isolate city hangzhou", 0)
	heal(t, in, rec)
	rep, err := in.HealAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Weights, []string{"hz-a", "hz-b"}) {
		t.Fatalf("HealAll with a live keeper restored %v, want hz-a, hz-b", rep.Weights)
	}
	if err := in.keepCatchUp(context.Background(), rec.ID, rec.Lab, never); err != nil {
		t.Fatal(err)
	}
	expectShares(t, b, map[string]int64{"hz-a": defaultShares, "hz-b": defaultShares})
}

// TestOverlappingCatchUps: of two catch-ups that list a DC, the later one
// restores it and the earlier lets it go, whichever keeper runs first.
func TestOverlappingCatchUps(t *testing.T) {
	for _, laterFirst := range []bool{false, true} {
		in, b := fakeInjector(t)
		city := mustApply(t, in, "isolate city hangzhou", 0)
		dc := mustApply(t, in, "isolate dc hz-a", 0)
		heal(t, in, city, dc) // dc's catch-up is the later
		first, second, hzA := city, dc, int64(catchUpShares)
		if laterFirst {
			first, second, hzA = dc, city, defaultShares
		}
		if err := in.keepCatchUp(context.Background(), first.ID, first.Lab, always); err != nil {
			t.Fatal(err)
		}
		expectShares(t, b, map[string]int64{"hz-a": hzA})
		if err := in.keepCatchUp(context.Background(), second.ID, second.Lab, always); err != nil {
			t.Fatal(err)
		}
		expectShares(t, b, map[string]int64{"hz-a": defaultShares, "hz-b": defaultShares})
	}
}

// TestLeftoverWeightsAreRestored: a catch-up whose keeper is alive is
// left alone by HealLeftovers; one whose keeper died is restored and
// reported, and HealAll restores every lowered weight. A weight someone
// else set is not fibercut's, and is left alone.
func TestLeftoverWeightsAreRestored(t *testing.T) {
	in, b := fakeInjector(t)
	rec := mustApply(t, in, "isolate city hangzhou", 0)
	heal(t, in, rec)
	rep, err := in.HealLeftovers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Weights) != 0 || b.shares("hz-a") != catchUpShares {
		t.Fatalf("HealLeftovers with a live keeper restored %v (hz-a at %d); want nothing", rep.Weights, b.shares("hz-a"))
	}
	gone := Process{PID: 1 << 30}
	if err := in.store.Update(func(st *State) error { st.CatchUps[0].Keeper = &gone; return nil }); err != nil {
		t.Fatal(err)
	}
	if rep, err = in.HealLeftovers(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Weights, []string{"hz-a", "hz-b"}) || !slices.Contains(rep.Lines(), "restored the CPU weight of hz-a, hz-b") {
		t.Fatalf("HealLeftovers after the keeper died: weights %v, lines %q", rep.Weights, rep.Lines())
	}
	expectShares(t, b, map[string]int64{"hz-a": defaultShares, "hz-b": defaultShares})
	if cs := catchUps(t, in); len(cs) != 0 {
		t.Fatalf("catch-ups after HealLeftovers: %+v, want none", cs)
	}

	// A low weight no record accounts for: HealAll restores it; one that
	// is not fibercut's stays.
	b.SetCPUShares(context.Background(), b.lab.DCs[4], catchUpShares)
	b.SetCPUShares(context.Background(), b.lab.DCs[3], 512)
	if rep, err = in.HealAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Weights, []string{b.lab.DCs[4].ID}) || b.shares(b.lab.DCs[3].ID) != 512 {
		t.Fatalf("HealAll restored %v (and %s at %d); want %s alone", rep.Weights, b.lab.DCs[3].ID, b.shares(b.lab.DCs[3].ID), b.lab.DCs[4].ID)
	}
}

// TestPoweredOnDCsKeepTheirWeight: the heal of a power-off starts the
// DC afresh, at its own weight.
func TestPoweredOnDCsKeepTheirWeight(t *testing.T) {
	in, b := fakeInjector(t)
	rec := mustApply(t, in, "power-off dc hz-a", 0)
	heal(t, in, rec)
	expectShares(t, b, map[string]int64{"hz-a": 0})
	if cs := catchUps(t, in); len(cs) != 0 {
		t.Fatalf("catch-ups after a power-on: %+v, want none", cs)
	}
}

// TestCatchUpWithoutKeeperLeavesNoTrace: when the keeper cannot start,
// the heal still succeeds and no weight changes.
func TestCatchUpWithoutKeeperLeavesNoTrace(t *testing.T) {
	in, b := fakeInjector(t)
	in.keep = func(context.Context, CatchUp) (*Process, error) { return nil, errors.New("no keeper") }
	rec := mustApply(t, in, "isolate city hangzhou", 0)
	heal(t, in, rec)
	expectShares(t, b, map[string]int64{"hz-a": 0, "hz-b": 0})
	if cs := catchUps(t, in); len(cs) != 0 {
		t.Fatalf("catch-ups without a keeper: %+v, want none", cs)
	}
}
