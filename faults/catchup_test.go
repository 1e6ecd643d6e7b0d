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

// TestHealLowersTheCutOffDCsUntilCurrent: healing a city's isolation
// lowers the weight of its DCs only; the keeper restores each DC once it
// is current, then forgets the catch-up.
func TestHealLowersTheCutOffDCsUntilCurrent(t *testing.T) {
	in, b := fakeInjector(t)
	rec := mustApply(t, in, "isolate city hangzhou", 0)
	expectShares(t, b, map[string]int64{"hz-a": 0, "hz-b": 0}) // not while cut off
	if err := in.Heal(context.Background(), rec.ID); err != nil {
		t.Fatal(err)
	}
	expectShares(t, b, map[string]int64{"hz-a": catchUpShares, "hz-b": catchUpShares, "sh-a": 0, "sh-b": 0, "sz-a": 0})
	cs := catchUps(t, in)
	if len(cs) != 1 || cs[0].Fault != rec.ID || !slices.Equal(cs[0].DCs, []string{"hz-a", "hz-b"}) || cs[0].Keeper == nil {
		t.Fatalf("catch-ups after the heal: %+v; want one for %s of hz-a and hz-b, with its keeper", cs, rec.ID)
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
	if cs := catchUps(t, in); len(cs) != 0 {
		t.Fatalf("catch-ups after the keeper: %+v, want none", cs)
	}
}

// TestCatchUpEndsAtItsLimit: a DC that never reports current gets its
// weight back at the catch-up's end.
func TestCatchUpEndsAtItsLimit(t *testing.T) {
	in, b := fakeInjector(t)
	rec := mustApply(t, in, "isolate dc sz-a", 0)
	if err := in.Heal(context.Background(), rec.ID); err != nil {
		t.Fatal(err)
	}
	if err := in.store.Update(func(st *State) error {
		st.CatchUps[0].Until = time.Now().Add(300 * time.Millisecond)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	never := func(context.Context, lab.DC) bool { return false }
	if err := in.keepCatchUp(context.Background(), rec.ID, rec.Lab, never); err != nil {
		t.Fatal(err)
	}
	expectShares(t, b, map[string]int64{"sz-a": defaultShares})
	if cs := catchUps(t, in); len(cs) != 0 {
		t.Fatalf("catch-ups after the limit: %+v, want none", cs)
	}
}

// TestLeftoverWeightsAreRestored: a catch-up whose keeper is alive is
// left alone by HealLeftovers; one whose keeper died is restored and
// reported, and HealAll restores every lowered weight.
func TestLeftoverWeightsAreRestored(t *testing.T) {
	in, b := fakeInjector(t)
	rec := mustApply(t, in, "isolate city hangzhou", 0)
	if err := in.Heal(context.Background(), rec.ID); err != nil {
		t.Fatal(err)
	}
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

	// A weight no record accounts for: HealAll restores it.
	b.SetCPUShares(context.Background(), b.lab.DCs[4], catchUpShares)
	if rep, err = in.HealAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Weights, []string{b.lab.DCs[4].ID}) {
		t.Fatalf("HealAll restored %v, want %s", rep.Weights, b.lab.DCs[4].ID)
	}
}

// TestCatchUpWithoutKeeperLeavesNoTrace: when the keeper cannot start,
// the heal still succeeds and the weights are back at once.
func TestCatchUpWithoutKeeperLeavesNoTrace(t *testing.T) {
	in, b := fakeInjector(t)
	in.keep = func(context.Context, CatchUp) (*Process, error) { return nil, errors.New("no keeper") }
	rec := mustApply(t, in, "isolate city hangzhou", 0)
	if err := in.Heal(context.Background(), rec.ID); err != nil {
		t.Fatalf("heal without a keeper: %v", err)
	}
	expectShares(t, b, map[string]int64{"hz-a": defaultShares, "hz-b": defaultShares})
	if cs := catchUps(t, in); len(cs) != 0 {
		t.Fatalf("catch-ups without a keeper: %+v, want none", cs)
	}
}

// TestOverlappingCatchUpsEitherOrder: a DC in two catch-ups keeps its low
// weight until the last one that holds it lets go, whichever of the two
// sees it current first.
func TestOverlappingCatchUpsEitherOrder(t *testing.T) {
	for _, second := range []bool{false, true} {
		in, b := fakeInjector(t)
		city := mustApply(t, in, "isolate city hangzhou", 0)
		dc := mustApply(t, in, "isolate dc hz-a", 0)
		for _, id := range []string{city.ID, dc.ID} {
			if err := in.Heal(context.Background(), id); err != nil {
				t.Fatal(err)
			}
		}
		first, last := city, dc
		if second {
			first, last = dc, city
		}
		always := func(context.Context, lab.DC) bool { return true }
		if err := in.keepCatchUp(context.Background(), first.ID, first.Lab, always); err != nil {
			t.Fatal(err)
		}
		// The other catch-up still holds hz-a.
		expectShares(t, b, map[string]int64{"hz-a": catchUpShares})
		if err := in.keepCatchUp(context.Background(), last.ID, last.Lab, always); err != nil {
			t.Fatal(err)
		}
		expectShares(t, b, map[string]int64{"hz-a": defaultShares, "hz-b": defaultShares})
		if cs := catchUps(t, in); len(cs) != 0 {
			t.Fatalf("catch-ups left: %+v", cs)
		}
	}
}
