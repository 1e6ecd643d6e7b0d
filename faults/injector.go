package faults

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/client"

	"github.com/fibercut/fibercut/lab"
)

// ErrNoFault is returned by [Injector.Heal] for an id that is not in force.
var ErrNoFault = errors.New("no such fault")

// ErrConflict is wrapped by the error of [Injector.Apply] when another
// fault in force already holds a DC's qdisc, power or freeze: faults of
// those kinds cannot share a DC, and the second is refused before anything
// changes.
var ErrConflict = errors.New("conflicts with a fault in force")

// Injector applies faults to one lab and reverts them. Every caller (the
// fault commands, the drill runner, the stage dashboard) gets the same
// failsafe by calling [Injector.Apply]: the fault is recorded before
// anything changes; a fault the kernel cannot expire gets its watchdog, a
// detached process that ends it on time, before anything changes; then the
// change is made and the record confirmed. A SIGKILL at any moment leaves
// nothing in force past its time but faults asked to last until healed.
//
// Apply, Heal, HealAll and HealLeftovers hold the lab's lock (the store's)
// while they change the lab, so that several fibercut processes can share
// a lab. An Injector may be used from several goroutines.
type Injector struct {
	backend Backend
	store   *Store
	name    string
	// Detached, when set before Apply, makes faults that outlive this
	// process on purpose: they have no owner, so lab up and drill run
	// report them rather than heal them. Their time limit still holds.
	Detached bool
	// arm starts the watchdog of a record, hold the holder of a delay by
	// NFQUEUE in the given DCs (by their containers' pids); tests replace
	// them.
	arm  func(ctx context.Context, rec Record) (*Process, error)
	hold func(ctx context.Context, rec Record, dcs map[string]int) (*Process, error)
	// keep starts the keeper of a catch-up at a low CPU weight.
	keep func(ctx context.Context, c CatchUp) (*Process, error)
	// kube says where the cluster of a lab on Kubernetes is, for the
	// processes the injector starts; nil on Docker.
	kube *kubeOrders

	mu  sync.Mutex
	lab *lab.Lab
}

// NewInjector returns an injector for the lab l (an inventory from
// [lab.Inspect] or [lab.Up]) of a Docker engine, that records faults in
// store.
func NewInjector(docker client.APIClient, l *lab.Lab, store *Store) *Injector {
	return NewInjectorFor(NewDockerBackend(docker, l.Name), l, store)
}

// NewInjectorFor returns an injector for the lab l run by backend b.
func NewInjectorFor(b Backend, l *lab.Lab, store *Store) *Injector {
	in := &Injector{backend: b, store: store, name: l.Name, lab: l}
	in.arm = in.spawnWatchdog
	in.hold = in.spawnHolder
	in.keep = in.spawnKeeper
	return in
}

// Lab returns the injector's current inventory of the lab.
func (in *Injector) Lab() *lab.Lab {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.lab
}

// Store returns the store the injector records faults in.
func (in *Injector) Store() *Store { return in.store }

// refresh re-reads the inventory: container pids change on power-on.
func (in *Injector) refresh(ctx context.Context) (*lab.Lab, error) {
	l, err := in.backend.Inspect(ctx)
	if err != nil {
		return nil, err
	}
	in.mu.Lock()
	in.lab = l
	in.mu.Unlock()
	return l, nil
}

// Apply validates spec against the lab's topology and applies it. Either
// every change is made, or none is: when one DC fails, what this fault
// changed elsewhere is rolled back, and nothing of any other fault is
// touched. The returned record is saved in the store; its InForceAt is when
// every change was in place.
func (in *Injector) Apply(ctx context.Context, spec Spec) (*Record, error) {
	if spec.Leader {
		return nil, fmt.Errorf("%w: %s: find the leader's DC and put it in DC before applying", ErrBadSpec, spec)
	}
	l := in.Lab()
	if err := spec.Validate(l.Topology); err != nil {
		return nil, err
	}
	k, _ := lookupKind(spec.Kind)
	var rec *Record
	err := in.store.locked(func() error {
		// Under the lock, the inventory is current: another process may
		// have powered a DC off or on.
		l, err := in.refresh(ctx)
		if err != nil {
			return err
		}
		ch, err := k.plan(spec, l)
		if err != nil {
			return err
		}
		st, err := in.store.Load()
		if err != nil {
			return err
		}
		if err := checkApplicable(l, ch, in.current(live(st.Records, time.Now()))); err != nil {
			return err
		}
		rec, err = in.apply(ctx, l, spec, ch)
		return err
	})
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// checkApplicable refuses, before anything changes, a fault on a DC that
// is not running or that another fault in force holds in a way that
// cannot be shared.
func checkApplicable(l *lab.Lab, ch changes, recs []Record) error {
	var errs []error
	need := func(dcs []string, what string) {
		for _, dc := range dcs {
			if d, _ := l.DC(dc); d == nil || d.State != "running" {
				state := lab.StateMissing
				if d != nil {
					state = d.State
				}
				errs = append(errs, fmt.Errorf("faults: cannot %s dc %s: it is %s, not running", what, dc, state))
			}
		}
	}
	need(slices.Sorted(maps.Keys(ch.nft)), "change the links of")
	need(ch.qdiscDCs, "shape the WAN of")
	need(ch.kill, "power off")
	need(ch.pause, "pause")
	for _, r := range recs {
		for _, c := range []struct {
			mine, theirs []string
			what         string
		}{
			{ch.qdiscDCs, r.Qdisc, "bandwidth or delay"},
			// A DC powered on comes back without its qdisc: a power-off
			// would end another fault's bandwidth or delay early.
			{ch.kill, r.Qdisc, "bandwidth or delay"},
			{ch.kill, append(slices.Clone(r.Killed), r.Paused...), "power or pause"},
			{ch.pause, append(slices.Clone(r.Killed), r.Paused...), "power or pause"},
		} {
			for _, dc := range c.mine {
				if slices.Contains(c.theirs, dc) {
					errs = append(errs, fmt.Errorf("faults: %w: dc %s already has a %s fault (%s: %s); heal it first", ErrConflict, dc, c.what, r.ID, r.Desc))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// apply writes the intent, arms the watchdog, makes the change and
// confirms the record; the caller holds the lock.
func (in *Injector) apply(ctx context.Context, l *lab.Lab, spec Spec, ch changes) (*Record, error) {
	id, err := in.store.nextID()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	rec := Record{ID: id, Spec: spec, Desc: spec.String(), Lab: l.WAN.ID, Phase: PhaseApplying, AppliedAt: now,
		Qdisc: ch.qdiscDCs, Killed: ch.kill, Paused: ch.pause}
	if !in.Detached {
		self := Self()
		rec.Owner = &self
	}
	if spec.For > 0 {
		rec.Until = now.Add(spec.For) // provisional: confirmed below
	}
	for _, dc := range slices.Sorted(maps.Keys(ch.nft)) {
		for _, a := range ch.nft[dc] {
			rec.NFT = append(rec.NFT, NFTChange{DC: dc, Set: a.Set, Addrs: a.Addrs})
		}
	}
	// 1. The intent: from here on, every process knows what may change.
	if err := in.store.modify(func(st *State) error {
		st.Records = append(in.current(live(st.Records, now)), rec)
		return nil
	}); err != nil {
		return nil, err
	}
	forget := func(cause error) error {
		err := in.store.modify(func(st *State) error {
			st.Records = slices.DeleteFunc(st.Records, func(r Record) bool { return r.ID == id })
			return nil
		})
		return errors.Join(cause, err)
	}
	// 2. The watchdog, for what the kernel cannot expire.
	if !ch.kernelExpires() && spec.For > 0 {
		wd, err := in.arm(ctx, rec)
		if err != nil {
			return nil, forget(fmt.Errorf("faults: arm the watchdog of %s (nothing was changed): %w", id, err))
		}
		rec.Watchdog = wd
		if err := in.store.modify(func(st *State) error { return replace(st, rec) }); err != nil {
			return nil, forget(err)
		}
	}
	// 2b. The holder of a delay by NFQUEUE: bound to its queues before
	// any rule sends packets there (with bypass they would pass anyway).
	if ch.hold {
		dcs := map[string]int{}
		var away []string // DCs with no process here: on other nodes
		for _, dc := range slices.Sorted(maps.Keys(ch.nft)) {
			if d, ok := l.DC(dc); ok {
				if d.Pid == 0 && d.Node != "" {
					away = append(away, dc+" (node "+d.Node+")")
				}
				dcs[dc] = d.Pid
			}
		}
		if len(away) > 0 {
			return nil, forget(fmt.Errorf("faults: a delay by NFQUEUE holds packets in a process of this host, in the namespaces of the DCs it delays and of those it is held in, and these have no process here: %s; nothing was changed", strings.Join(away, ", ")))
		}
		h, err := in.hold(ctx, rec, dcs)
		if err != nil {
			return nil, forget(fmt.Errorf("faults: start the holder of %s (nothing was changed): %w", id, err))
		}
		rec.Holder = h
		if err := in.store.modify(func(st *State) error { return replace(st, rec) }); err != nil {
			h.Stop()
			return nil, forget(err)
		}
	}
	// 3. The change.
	if err := in.change(ctx, l, rec, ch); err != nil {
		if rerr := in.revert(context.WithoutCancel(ctx), rec, nil); rerr != nil {
			// Keep the record: what could not be undone stays known,
			// and its watchdog (if any) tries again on time.
			return nil, errors.Join(err, fmt.Errorf("faults: rolling back %s: %w", id, rerr))
		}
		return nil, forget(err)
	}
	// 4. The confirmation.
	rec.Phase = PhaseInForce
	rec.InForceAt = time.Now()
	if spec.For > 0 {
		rec.Until = rec.InForceAt.Add(spec.For)
	}
	if err := in.store.modify(func(st *State) error { return replace(st, rec) }); err != nil {
		// In force but not confirmed: the intent holds what changed, so
		// heal rather than leave it half-known; keep the intent if the
		// heal fails, so that what stays in force is still known.
		if rerr := in.revert(context.WithoutCancel(ctx), rec, nil); rerr != nil {
			return nil, errors.Join(err, rerr)
		}
		return nil, forget(err)
	}
	return &rec, nil
}

// replace puts rec in place of the record with its id.
func replace(st *State, rec Record) error {
	i := slices.IndexFunc(st.Records, func(r Record) bool { return r.ID == rec.ID })
	if i < 0 {
		return fmt.Errorf("faults: record %s vanished from the fault file", rec.ID)
	}
	st.Records[i] = rec
	return nil
}

// live drops records the kernel has already ended.
func live(rs []Record, now time.Time) []Record {
	return slices.DeleteFunc(slices.Clone(rs), func(r Record) bool { return r.KernelExpires() && r.Over(now) })
}

// change makes the changes of rec: nftables in every DC at once (every
// namespace is opened first, so that a DC that is not running fails the
// fault before anything changes), then qdiscs, freezes and power.
func (in *Injector) change(ctx context.Context, l *lab.Lab, rec Record, ch changes) error {
	if len(ch.nft) > 0 {
		nss := map[string]Namespace{}
		defer func() {
			for _, ns := range nss {
				ns.Close()
			}
		}()
		for dc := range ch.nft {
			d, _ := l.DC(dc)
			ns, err := in.backend.Namespace(*d)
			if err != nil {
				return err
			}
			nss[dc] = ns
		}
		err := forEach(slices.Sorted(maps.Keys(ch.nft)), func(dc string) error {
			return nss[dc].addFault(rec.ID, ch.nft[dc], rec.Spec.For)
		})
		if err != nil {
			return err
		}
	}
	if ch.qdisc != nil {
		for _, dc := range ch.qdiscDCs {
			q := *ch.qdisc
			q.Until = rec.Until
			if err := in.withNS(l, dc, func(ns Namespace) error { return ns.addQdisc(q) }); err != nil {
				return err
			}
		}
	}
	if err := forEach(ch.pause, func(dc string) error {
		d, _ := l.DC(dc)
		return in.backend.Pause(ctx, *d, rec.Until)
	}); err != nil {
		return err
	}
	return forEach(ch.kill, func(dc string) error {
		d, _ := l.DC(dc)
		return in.backend.PowerOff(ctx, *d)
	})
}

// forEach runs fn for every DC at once and joins the errors.
func forEach(dcs []string, fn func(dc string) error) error {
	errs := make([]error, len(dcs))
	var wg sync.WaitGroup
	for i, dc := range dcs {
		wg.Go(func() { errs[i] = fn(dc) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// withNS runs fn in the namespace of a DC of l.
func (in *Injector) withNS(l *lab.Lab, dc string, fn func(Namespace) error) error {
	d, ok := l.DC(dc)
	if !ok {
		return fmt.Errorf("faults: no dc %s in lab %s", dc, l.Name)
	}
	ns, err := in.backend.Namespace(*d)
	if err != nil {
		return err
	}
	defer ns.Close()
	return fn(ns)
}

// Live returns the faults in force at now, plus those whose time is up but
// that only a process can end (qdiscs, power-off, pause) and that no process
// has ended yet.
func (in *Injector) Live(now time.Time) ([]Record, error) {
	st, err := in.store.Load()
	if err != nil {
		return nil, err
	}
	return in.current(live(st.Records, now)), nil
}

// current drops the records of another incarnation of the lab: they went
// with the containers they were applied to.
func (in *Injector) current(recs []Record) []Record {
	inc := in.Lab().WAN.ID
	return slices.DeleteFunc(slices.Clone(recs), func(r Record) bool { return r.Lab != "" && r.Lab != inc })
}

// Heal reverts the fault with the given id and forgets it. Nothing of any
// other fault is touched.
func (in *Injector) Heal(ctx context.Context, id string) error {
	return in.heal(ctx, id, "")
}

// errNotYet is what heal answers a watchdog that woke before its fault's
// time (the record's end is confirmed after the change, and may be later
// than the one it was armed with).
var errNotYet = errors.New("faults: the fault's time is not up yet")

// heal heals fault id; with incarnation set (a watchdog), only if the
// record was made on that incarnation of the lab, the lab is still it, and
// the fault's time is up. A fault the kernel has already ended is healed
// too: its empty sets and rules are removed.
func (in *Injector) heal(ctx context.Context, id, incarnation string) error {
	ctx = context.WithoutCancel(ctx)
	return in.store.locked(func() error {
		st, err := in.store.Load()
		if err != nil {
			return err
		}
		now := time.Now()
		inc := incarnation
		if inc == "" {
			inc = in.Lab().WAN.ID
		}
		// The record of this incarnation of the lab, even if the kernel
		// has ended the fault already.
		j := slices.IndexFunc(st.Records, func(r Record) bool { return r.ID == id && (r.Lab == "" || r.Lab == inc) })
		if j < 0 {
			recs := in.current(live(st.Records, now))
			ids := make([]string, len(recs))
			for k, r := range recs {
				ids[k] = r.ID
			}
			if len(ids) == 0 {
				return fmt.Errorf("faults: %w %q: no fault is in force", ErrNoFault, id)
			}
			return fmt.Errorf("faults: %w %q; in force: %s", ErrNoFault, id, strings.Join(ids, ", "))
		}
		rec := st.Records[j]
		if incarnation != "" && !rec.Over(now) {
			return errNotYet
		}
		others := slices.DeleteFunc(live(st.Records, now), func(r Record) bool { return r.ID == id })
		if err := in.revert(ctx, rec, others); err != nil {
			return err
		}
		if err := in.store.modify(func(st *State) error {
			st.Records = slices.DeleteFunc(live(st.Records, now), func(r Record) bool { return r.ID == id })
			return nil
		}); err != nil {
			return err
		}
		in.startCatchUp(ctx, rec)
		return nil
	})
}

// revert undoes rec and nothing else. A powered-on DC comes back with a new,
// empty namespace: the nftables changes of the records in others are put
// back there, with the time they have left. A DC that is not running has
// no namespace, hence nothing to revert. It refuses to act on another
// incarnation of the lab than the record's. The caller holds the lock.
func (in *Injector) revert(ctx context.Context, rec Record, others []Record) error {
	// Pids change when a DC is powered off and on, by this or another
	// process: always work from a fresh inventory.
	l, err := in.refresh(ctx)
	if err != nil {
		if errors.Is(err, lab.ErrNoLab) {
			return nil // the lab is gone, and everything of it
		}
		return err
	}
	if rec.Lab != "" && l.WAN.ID != rec.Lab {
		return nil // another lab of the same name: this fault went with the old one
	}
	var errs []error
	// Power and freezing first: namespaces must exist for the rest.
	errs = append(errs, forEach(rec.Paused, func(dc string) error {
		d, _ := l.DC(dc)
		return in.backend.Resume(ctx, *d)
	}))
	errs = append(errs, forEach(rec.Killed, func(dc string) error {
		d, _ := l.DC(dc)
		return in.backend.PowerOn(ctx, *d)
	}))
	if len(rec.Killed) > 0 {
		if l, err = in.refresh(ctx); err != nil {
			return errors.Join(append(errs, err)...)
		}
		errs = append(errs, in.reassert(l, rec.Killed, others))
	}
	visit := func(dc string, fn func(Namespace) error) {
		if d, ok := l.DC(dc); ok && d.State == "running" {
			errs = append(errs, in.withNS(l, dc, fn))
		}
	}
	for _, dc := range rec.DCsWithNFT() {
		visit(dc, func(ns Namespace) error { return ns.removeFaults(rec.ID) })
	}
	for _, dc := range rec.Qdisc {
		visit(dc, func(ns Namespace) error { _, err := ns.removeQdisc(); return err })
	}
	if rec.Holder != nil {
		rec.Holder.Stop() // its queues get nothing now; it releases what it holds
	}
	return errors.Join(errs...)
}

// DCsWithNFT lists the DCs where the record changed nftables.
func (r Record) DCsWithNFT() []string {
	var dcs []string
	for _, ch := range r.NFT {
		if !slices.Contains(dcs, ch.DC) {
			dcs = append(dcs, ch.DC)
		}
	}
	return dcs
}

// reassert re-adds, in the given DCs, the nftables changes of the records in
// others, with the time they have left.
func (in *Injector) reassert(l *lab.Lab, dcs []string, others []Record) error {
	var errs []error
	now := time.Now()
	for _, dc := range dcs {
		for _, r := range others {
			if r.Over(now) {
				continue
			}
			var adds []setAdd
			for _, ch := range r.NFT {
				if ch.DC == dc {
					adds = append(adds, setAdd{Set: ch.Set, Addrs: ch.Addrs})
				}
			}
			if len(adds) == 0 {
				continue
			}
			var left time.Duration
			if !r.Until.IsZero() {
				left = r.Until.Sub(now)
			}
			errs = append(errs, in.withNS(l, dc, func(ns Namespace) error { return ns.addFault(r.ID, adds, left) }))
		}
	}
	return errors.Join(errs...)
}

// HealReport says what [Injector.HealAll] or [Injector.HealLeftovers]
// found and undid.
type HealReport struct {
	Resumed   []string `json:"resumed,omitempty"`    // DCs unpaused
	PoweredOn []string `json:"powered_on,omitempty"` // DCs started
	Tables    []string `json:"tables,omitempty"`     // DCs whose fibercut rules were removed
	Qdiscs    []string `json:"qdiscs,omitempty"`     // DCs whose fibercut qdisc was deleted
	Records   int      `json:"records"`              // records forgotten
	Weights   []string `json:"weights,omitempty"`    // DCs whose CPU weight was restored
	// Healed lists the records healed (HealLeftovers: those whose owner
	// died); Held those left in force, because a live process holds them
	// or they were kept on purpose.
	Healed []Record `json:"healed,omitempty"`
	Held   []Record `json:"held,omitempty"`
}

// Lines says what was healed, a line a record or a kind of change:
// "healed f3 cut hz-a sh-a (left by process 812, which is gone)",
// "resumed hz-a, hz-b", "healed; 2 recorded faults forgotten".
func (h HealReport) Lines() []string {
	var out []string
	for _, r := range h.Healed {
		out = append(out, fmt.Sprintf("healed %s %s (left by process %d, which is gone)", r.ID, r.Desc, r.Owner.PID))
	}
	for _, x := range []struct {
		what string
		dcs  []string
	}{{"resumed", h.Resumed}, {"powered on", h.PoweredOn}, {"removed fibercut's nftables rules in", h.Tables}, {"removed qdisc in", h.Qdiscs},
		{"restored the CPU weight of", h.Weights}} {
		if len(x.dcs) > 0 {
			out = append(out, x.what+" "+strings.Join(x.dcs, ", "))
		}
	}
	if h.Records > 0 {
		out = append(out, fmt.Sprintf("healed; %d recorded faults forgotten", h.Records))
	}
	return out
}

// Empty reports whether nothing needed healing.
func (h HealReport) Empty() bool {
	return len(h.Resumed)+len(h.PoweredOn)+len(h.Tables)+len(h.Qdiscs)+len(h.Weights)+h.Records+len(h.Healed) == 0
}

// HealAll returns the lab to health without relying on any record: it
// resumes paused DCs, starts stopped ones, deletes the fibercut table and
// qdisc in every DC's namespace, restores every DC's CPU weight lowered
// for a catch-up, and empties the fault file. It works after
// fibercut crashed, and from another machine's state file or none. It ends
// faults that live processes hold too: prefer [Injector.HealLeftovers].
func (in *Injector) HealAll(ctx context.Context) (HealReport, error) {
	ctx = context.WithoutCancel(ctx)
	var rep HealReport
	err := in.store.locked(func() error {
		l, err := in.sweep(ctx, &rep, func(string) bool { return false }, func(string, string) bool { return false }, nil)
		if l == nil {
			return err
		}
		// One DC's failure does not keep the others' weights low.
		if werr := in.restoreWeights(ctx, l, &rep, true); werr != nil || err != nil {
			return errors.Join(err, werr)
		}
		return in.store.modify(func(st *State) error {
			rep.Records = len(live(st.Records, time.Now()))
			st.Records = nil
			return nil
		})
	})
	return rep, err
}

// HealLeftovers heals what dead processes left behind and nothing else:
// every record whose owner died (including those a kill left half
// applied), and every change of fibercut's in the lab that no record in
// force accounts for. Faults held by a live process, or kept on purpose,
// are reported in Held and left alone.
func (in *Injector) HealLeftovers(ctx context.Context) (HealReport, error) {
	ctx = context.WithoutCancel(ctx)
	var rep HealReport
	err := in.store.locked(func() error {
		st, err := in.store.Load()
		if err != nil {
			return err
		}
		if _, err := in.refresh(ctx); err != nil {
			return err
		}
		recs := in.current(live(st.Records, time.Now()))
		var kept []Record
		var errs []error
		for i, r := range recs {
			if !r.Orphaned() {
				kept = append(kept, r)
				continue
			}
			others := slices.Delete(slices.Clone(recs), i, i+1)
			if err := in.revert(ctx, r, others); err != nil {
				errs = append(errs, fmt.Errorf("faults: heal %s, left by process %d: %w", r.ID, r.Owner.PID, err))
				kept = append(kept, r)
				continue
			}
			rep.Healed = append(rep.Healed, r)
		}
		rep.Held = kept
		// What no record in force accounts for was left by a process that
		// died before this version's records, or with its records lost.
		owns := func(dc string, pick func(Record) []string) bool {
			return slices.ContainsFunc(kept, func(r Record) bool { return slices.Contains(pick(r), dc) })
		}
		keepFault := func(id string) bool { return slices.ContainsFunc(kept, func(r Record) bool { return r.ID == id }) }
		keepDC := func(dc, what string) bool {
			switch what {
			case "paused":
				return owns(dc, func(r Record) []string { return r.Paused })
			case "exited":
				return owns(dc, func(r Record) []string { return r.Killed })
			}
			return owns(dc, func(r Record) []string { return r.Qdisc })
		}
		l, err := in.sweep(ctx, &rep, keepFault, keepDC, kept)
		errs = append(errs, err)
		if l != nil {
			errs = append(errs, in.restoreWeights(ctx, l, &rep, false))
		}
		healed := map[string]bool{}
		for _, r := range rep.Healed {
			healed[r.ID] = true
		}
		errs = append(errs, in.store.modify(func(st *State) error {
			st.Records = slices.DeleteFunc(in.current(live(st.Records, time.Now())), func(r Record) bool { return healed[r.ID] })
			return nil
		}))
		return errors.Join(errs...)
	})
	return rep, err
}

// sweep undoes every change of fibercut's in the lab but those kept:
// keepFault(id) keeps a fault's nftables rules, keepDC(dc, what) a DC
// that is "paused" or "exited", or ("qdisc") its qdisc. With nothing kept,
// the fibercut table is deleted whole. A DC it starts comes back with an
// empty namespace: the nftables changes of the kept records are put back
// there. The caller holds the lock.
func (in *Injector) sweep(ctx context.Context, rep *HealReport, keepFault func(string) bool, keepDC func(dc, what string) bool, kept []Record) (*lab.Lab, error) {
	l, err := in.refresh(ctx)
	if err != nil {
		return nil, err
	}
	var errs []error
	var started []string
	for _, d := range l.DCs {
		switch {
		case d.State == "paused" && !keepDC(d.ID, "paused"):
			if err := in.backend.Resume(ctx, d); err != nil {
				errs = append(errs, err)
				continue
			}
			rep.Resumed = append(rep.Resumed, d.ID)
		case (d.State == "exited" || d.State == "created") && !keepDC(d.ID, "exited"):
			started = append(started, d.ID)
		}
	}
	err = forEach(started, func(dc string) error {
		d, _ := l.DC(dc)
		return in.backend.PowerOn(ctx, *d)
	})
	if err != nil {
		errs = append(errs, err)
	}
	rep.PoweredOn = append(rep.PoweredOn, started...)
	if len(started) > 0 {
		if l, err = in.refresh(ctx); err != nil {
			return nil, errors.Join(append(errs, err)...)
		}
		if err := in.reassert(l, started, kept); err != nil {
			errs = append(errs, err)
		}
	}
	for _, d := range l.DCs {
		if d.State != "running" {
			continue
		}
		err := in.withNS(l, d.ID, func(ns Namespace) error {
			ids, err := ns.faultIDs()
			if err != nil {
				return err
			}
			stale := slices.DeleteFunc(ids, keepFault)
			switch {
			case len(stale) == len(ids) && len(ids) > 0:
				if _, err := ns.dropTable(); err != nil {
					return err
				}
				rep.Tables = append(rep.Tables, d.ID)
			case len(stale) > 0:
				if err := ns.removeFaults(stale...); err != nil {
					return err
				}
				rep.Tables = append(rep.Tables, d.ID)
			case len(ids) == 0:
				// A table with no fault's sets holds nothing in force;
				// drop it quietly.
				if _, err := ns.dropTable(); err != nil {
					return err
				}
			}
			if !keepDC(d.ID, "qdisc") {
				had, err := ns.removeQdisc()
				if err != nil {
					return err
				}
				if had {
					rep.Qdiscs = append(rep.Qdiscs, d.ID)
				}
			}
			return nil
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	return l, errors.Join(errs...)
}

// BeforeUp heals what dead processes left on the named lab of a Docker
// engine, if the lab exists, and returns what it healed and what it left:
// faults that live processes hold, or kept on purpose, are reported in
// Held, and hold lists the DCs they keep paused or powered off, for
// [lab.UpOptions].Leave.
func BeforeUp(ctx context.Context, docker client.APIClient, name string, store *Store) (rep HealReport, hold []string, err error) {
	l, err := lab.Inspect(ctx, docker, name)
	if errors.Is(err, lab.ErrNoLab) {
		return rep, nil, nil
	}
	if err != nil {
		return rep, nil, err
	}
	rep, err = NewInjector(docker, l, store).HealLeftovers(ctx)
	for _, r := range rep.Held {
		hold = append(hold, r.Killed...)
		hold = append(hold, r.Paused...)
	}
	return rep, hold, err
}

// Residue describes everything of fibercut's still in force in the lab,
// a line each: live nftables elements of the fibercut table, fibercut's
// qdisc, paused or stopped DCs, CPU weights lowered for a catch-up. It reads the kernel and the engine, not
// the records; an empty answer means nothing is in force.
func (in *Injector) Residue(ctx context.Context) ([]string, error) {
	l, err := in.refresh(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range l.DCs {
		if CatchingUp(d) {
			out = append(out, fmt.Sprintf("%s: CPU weight %d (catching up after a heal; the default is %d)", d.ID, d.CPUShares, defaultShares))
		}
		if d.State != "running" {
			out = append(out, fmt.Sprintf("%s: %s", d.ID, d.State))
			continue
		}
		err := in.withNS(l, d.ID, func(ns Namespace) error {
			c, ok := ns.(*nsConn)
			if !ok {
				return nil
			}
			sets, err := c.elements()
			if err != nil {
				return err
			}
			for _, name := range slices.Sorted(maps.Keys(sets)) {
				for _, a := range slices.SortedFunc(maps.Keys(sets[name]), func(a, b netip.Addr) int { return a.Compare(b) }) {
					out = append(out, fmt.Sprintf("%s: set %s holds %s", d.ID, name, a))
				}
			}
			if has, err := c.hasQdisc(); err != nil {
				return err
			} else if has {
				out = append(out, fmt.Sprintf("%s: fibercut qdisc on the WAN interface", d.ID))
			}
			return nil
		})
		if err != nil {
			return out, err
		}
	}
	return out, nil
}
