package faults

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeInjector returns an injector on a fake five-DC lab whose watchdogs
// run in this process.
func fakeInjector(t *testing.T) (*Injector, *fakeBackend) {
	t.Helper()
	l := fakeLab(t)
	l.WAN.ID = "wan-1"
	b := newFakeBackend(l)
	in := NewInjectorFor(b, l, NewStore(filepath.Join(t.TempDir(), "x.faults.json")))
	// The watchdogs end with the test, before its directory is removed:
	// one still writing the store would keep the removal from finishing.
	wctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	in.arm = func(ctx context.Context, rec Record) (*Process, error) {
		wg.Go(func() {
			watch(wctx, in.store, rec.ID, rec.Lab, func() (*Injector, func(), error) { return in, func() {}, nil })
		})
		self := Self()
		return &self, nil
	}
	// Keepers are driven by the tests that look at them (keepCatchUp).
	in.keep = func(context.Context, CatchUp) (*Process, error) { self := Self(); return &self, nil }
	return in, b
}

func mustApply(t *testing.T, in *Injector, text string, d time.Duration) *Record {
	t.Helper()
	spec, err := ParseSpec(text)
	if err != nil {
		t.Fatal(err)
	}
	spec.For = d
	rec, err := in.Apply(context.Background(), spec)
	if err != nil {
		t.Fatalf("apply %s: %v", text, err)
	}
	return rec
}

func expectInForce(t *testing.T, b *fakeBackend, want ...string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	if got := b.inForce(); !slices.Equal(got, want) {
		t.Errorf("in force:\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// eventually waits, for at most 10 s, until cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOverlappingFaultsAreIndependent(t *testing.T) {
	in, b := fakeInjector(t)
	keep := mustApply(t, in, "cut hz-a sz-a", 0)
	short := mustApply(t, in, "cut hz-a sz-a", time.Hour)
	if keep.ID == short.ID {
		t.Fatalf("two faults share id %s", keep.ID)
	}
	both := []string{
		"hz-a " + keep.ID + " drop_in=[10.0.0.14] drop_out=[10.0.0.14]", "sz-a " + keep.ID + " drop_in=[10.0.0.10] drop_out=[10.0.0.10]",
		"hz-a " + short.ID + " drop_in=[10.0.0.14] drop_out=[10.0.0.14]", "sz-a " + short.ID + " drop_in=[10.0.0.10] drop_out=[10.0.0.10]",
	}
	expectInForce(t, b, both...)
	// Healing the short one leaves the permanent one whole.
	if err := in.Heal(context.Background(), short.ID); err != nil {
		t.Fatal(err)
	}
	expectInForce(t, b, both[:2]...)
	recs, _ := in.Live(time.Now())
	if len(recs) != 1 || recs[0].ID != keep.ID || !recs[0].Until.IsZero() {
		t.Errorf("records after healing %s: %+v", short.ID, recs)
	}
	if err := in.Heal(context.Background(), keep.ID); err != nil {
		t.Fatal(err)
	}
	expectInForce(t, b)
}

func TestRollbackRemovesOnlyWhatTheApplyAdded(t *testing.T) {
	in, b := fakeInjector(t)
	other := mustApply(t, in, "isolate dc hz-a", 0)
	b.fail["hz-b"] = errors.New("refused")
	spec, _ := ParseSpec("isolate city hangzhou")
	if _, err := in.Apply(context.Background(), spec); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("apply with hz-b refusing = %v", err)
	}
	expectInForce(t, b, "hz-a "+other.ID+" isolated=[10.0.0.10]")
	if recs, _ := in.Live(time.Now()); len(recs) != 1 || recs[0].ID != other.ID {
		t.Errorf("records after a failed apply: %+v", recs)
	}
}

func TestConflictsAreRefusedBeforeAnyChange(t *testing.T) {
	in, b := fakeInjector(t)
	p := mustApply(t, in, "pause dc sz-a", 0)
	for _, text := range []string{"power-off dc sz-a", "pause dc sz-a"} {
		spec, _ := ParseSpec(text)
		_, err := in.Apply(context.Background(), spec)
		if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), p.ID) {
			t.Errorf("%s on a paused sz-a = %v, want ErrConflict naming %s", text, err, p.ID)
		}
	}
	mustApply(t, in, "bandwidth 1mbit dc hz-a", 0)
	spec, _ := ParseSpec("bandwidth 2mbit city hangzhou")
	if _, err := in.Apply(context.Background(), spec); !errors.Is(err, ErrConflict) {
		t.Errorf("second qdisc on hz-a = %v, want ErrConflict", err)
	}
	expectInForce(t, b, "sz-a paused", "hz-a qdisc")
}

func TestIntentAndWatchdogComeBeforeTheChange(t *testing.T) {
	in, b := fakeInjector(t)
	var seen []Record
	b.onPause = func() {
		st, err := in.store.Load()
		if err != nil {
			t.Error(err)
		}
		seen = st.Records
	}
	rec := mustApply(t, in, "pause dc sz-a", time.Hour)
	if len(seen) != 1 || seen[0].ID != rec.ID || seen[0].Phase != PhaseApplying || seen[0].Watchdog == nil || seen[0].Until.IsZero() {
		t.Fatalf("while pausing, the store held %+v; want the intent with its watchdog and time", seen)
	}
	if rec.Phase != PhaseInForce || rec.InForceAt.IsZero() || rec.Owner == nil || *rec.Owner != Self() {
		t.Errorf("confirmed record %+v", rec)
	}
}

func TestWatchdogEndsFaultsTheKernelCannot(t *testing.T) {
	in, b := fakeInjector(t)
	mustApply(t, in, "pause dc sz-a", 50*time.Millisecond)
	mustApply(t, in, "power-off city hangzhou", 50*time.Millisecond)
	mustApply(t, in, "bandwidth 1mbit dc sh-a", 50*time.Millisecond)
	eventually(t, "watchdogs end pause, power-off and bandwidth", func() bool { return len(b.inForce()) == 0 })
	eventually(t, "records forgotten", func() bool { recs, _ := in.Live(time.Now()); return len(recs) == 0 })
}

// TestPowerOnPutsBackOtherFaults heals a power-off of hz-a while a cut of
// hz-a is in force: the new namespace gets the cut again.
func TestPowerOnPutsBackOtherFaults(t *testing.T) {
	in, b := fakeInjector(t)
	cut := mustApply(t, in, "cut hz-a sh-a", time.Hour)
	off := mustApply(t, in, "power-off dc hz-a", 0)
	if err := in.Heal(context.Background(), off.ID); err != nil {
		t.Fatal(err)
	}
	expectInForce(t, b, "hz-a "+cut.ID+" drop_in=[10.0.0.12] drop_out=[10.0.0.12]", "sh-a "+cut.ID+" drop_in=[10.0.0.10] drop_out=[10.0.0.10]")
}

func TestWatchdogLeavesAnotherIncarnationAlone(t *testing.T) {
	in, b := fakeInjector(t)
	mustApply(t, in, "pause dc sz-a", 50*time.Millisecond)
	// The lab is taken down and brought up again: same name, new
	// networks, and a DC paused by someone else.
	b.mu.Lock()
	b.lab.WAN.ID = "wan-2"
	b.mu.Unlock()
	b.setState("sz-a", "paused")
	time.Sleep(300 * time.Millisecond) // past the fault's time: the watchdog has woken
	if got := b.state("sz-a"); got != "paused" {
		t.Errorf("sz-a of the new lab is %s: the old fault's watchdog touched it", got)
	}
	if recs, _ := in.Live(time.Now()); len(recs) != 0 {
		t.Errorf("the new lab lists the old lab's faults: %+v", recs)
	}
}

func TestHealLeftoversHealsOnlyTheDead(t *testing.T) {
	in, b := fakeInjector(t)
	mine := mustApply(t, in, "cut hz-a sh-a", 0)
	kept := func() *Record {
		in.Detached = true
		defer func() { in.Detached = false }()
		return mustApply(t, in, "pause dc sz-a", 0)
	}()
	dead := mustApply(t, in, "isolate dc sh-b", 0)
	half := mustApply(t, in, "power-off dc hz-b", 0)
	gone := Process{PID: 1 << 30} // no such process
	if err := in.store.Update(func(st *State) error {
		for i := range st.Records {
			switch st.Records[i].ID {
			case dead.ID:
				st.Records[i].Owner = &gone
			case half.ID:
				st.Records[i].Owner = &gone
				st.Records[i].Phase = PhaseApplying
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// And a rule no record accounts for (a process from before records).
	var rep HealReport
	h, err := b.Namespace(b.lab.DCs[3]) // sh-b
	if err != nil {
		t.Fatal(err)
	}
	h.addFault("f999", []setAdd{{Set: setDropIn, Addrs: nil}}, 0)

	rep, err = in.HealLeftovers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var healed, held []string
	for _, r := range rep.Healed {
		healed = append(healed, r.ID)
	}
	for _, r := range rep.Held {
		held = append(held, r.ID)
	}
	slices.Sort(healed)
	slices.Sort(held)
	if !slices.Equal(healed, sorted(dead.ID, half.ID)) || !slices.Equal(held, sorted(mine.ID, kept.ID)) {
		t.Errorf("healed %v, held %v; want healed %s %s, held %s %s", healed, held, dead.ID, half.ID, mine.ID, kept.ID)
	}
	if !slices.Equal(rep.Tables, []string{"sh-b"}) {
		t.Errorf("swept rules in %v, want sh-b's stray f999", rep.Tables)
	}
	expectInForce(t, b, "hz-a "+mine.ID+" drop_in=[10.0.0.12] drop_out=[10.0.0.12]", "sh-a "+mine.ID+" drop_in=[10.0.0.10] drop_out=[10.0.0.10]", "sz-a paused")
}

func sorted(s ...string) []string { slices.Sort(s); return s }

func TestApplyRefusesAnUnresolvedLeader(t *testing.T) {
	in, b := fakeInjector(t)
	spec, _ := ParseSpec("isolate leader")
	if _, err := in.Apply(context.Background(), spec); !errors.Is(err, ErrBadSpec) {
		t.Errorf("apply on the leader = %v, want ErrBadSpec", err)
	}
	expectInForce(t, b)
}

// TestPowerOffRefusedWhereAQdiscIs: a DC powered on comes back without its
// qdisc, so a power-off would end a bandwidth fault early; it is refused.
func TestPowerOffRefusedWhereAQdiscIs(t *testing.T) {
	in, b := fakeInjector(t)
	bw := mustApply(t, in, "bandwidth 10mbit dc hz-a", time.Hour)
	spec, _ := ParseSpec("power-off dc hz-a")
	if _, err := in.Apply(context.Background(), spec); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), bw.ID) {
		t.Errorf("power-off of hz-a under %s = %v, want ErrConflict naming it", bw.ID, err)
	}
	expectInForce(t, b, "hz-a qdisc")
}

// TestWatchdogWaitsForTheConfirmedEnd: a watchdog armed with the intent's
// end may wake before the end confirmed after a slow change; healing then
// must wait, not end the fault early.
func TestWatchdogWaitsForTheConfirmedEnd(t *testing.T) {
	in, b := fakeInjector(t)
	in.arm = func(context.Context, Record) (*Process, error) { p := Self(); return &p, nil } // no watchdog of its own
	rec := mustApply(t, in, "pause dc sz-a", time.Hour)
	if err := in.heal(context.Background(), rec.ID, rec.Lab); !errors.Is(err, errNotYet) {
		t.Fatalf("a watchdog's heal before the fault's end = %v, want errNotYet", err)
	}
	expectInForce(t, b, "sz-a paused")
	if err := in.Heal(context.Background(), rec.ID); err != nil {
		t.Fatalf("a heal by hand before the end: %v", err)
	}
	expectInForce(t, b)
}

// TestHealRemovesWhatTheKernelLeft: after the kernel has ended a fault,
// healing it still removes its (empty) sets and rules.
func TestHealRemovesWhatTheKernelLeft(t *testing.T) {
	in, b := fakeInjector(t)
	rec := mustApply(t, in, "cut hz-a sh-a", 5*time.Millisecond)
	eventually(t, "the fault's time is up", func() bool { return rec.Over(time.Now()) })
	if err := in.Heal(context.Background(), rec.ID); err != nil {
		t.Fatalf("heal of a fault the kernel ended: %v", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for dc, ns := range b.ns {
		if _, ok := ns.faults[rec.ID]; ok {
			t.Errorf("%s still has the sets and rules of %s", dc, rec.ID)
		}
	}
}

func TestSubMillisecondDurationsAreRefused(t *testing.T) {
	in, b := fakeInjector(t)
	spec, _ := ParseSpec("cut hz-a sh-a")
	spec.For = 500 * time.Microsecond
	if _, err := in.Apply(context.Background(), spec); !errors.Is(err, ErrBadSpec) || !strings.Contains(err.Error(), "1ms") {
		t.Errorf("a 500µs cut = %v, want ErrBadSpec naming 1ms", err)
	}
	expectInForce(t, b)
}

// TestDelayNeedsTheDCHere: a delay by NFQUEUE holds packets in a process
// of this host, so a DC reached only through its node's agent (no process
// here: Pid 0) refuses it, naming the DC and its node, with nothing
// changed and no holder started.
func TestDelayNeedsTheDCHere(t *testing.T) {
	in, b := fakeInjector(t)
	b.mu.Lock()
	for i := range b.lab.DCs {
		b.lab.DCs[i].Pid, b.lab.DCs[i].Node = 0, "node-"+b.lab.DCs[i].ID
	}
	b.mu.Unlock()
	started := false
	in.hold = func(context.Context, Record, map[string]int) (*Process, error) {
		started = true
		self := Self()
		return &self, nil
	}
	spec, err := ParseSpec("delay 20ms dc sz-a")
	if err != nil {
		t.Fatal(err)
	}
	spec.For, spec.Engine = time.Minute, EngineNFQueue
	_, err = in.Apply(context.Background(), spec)
	if err == nil || !strings.Contains(err.Error(), "these have no process here: hz-a (node node-hz-a), hz-b (node node-hz-b), sh-a (node node-sh-a), sh-b (node node-sh-b), sz-a (node node-sz-a)") {
		t.Fatalf("a delay of a DC with no process here: %v; want it refused, naming the DC and its node", err)
	}
	if started {
		t.Error("a holder was started for a refused delay")
	}
	expectInForce(t, b)
	if st, err := in.store.Load(); err != nil || len(st.Records) != 0 {
		t.Errorf("the store after a refused delay: %+v, %v; want no fault", st, err)
	}
}
