package faults

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/fibercut/fibercut/lab"
)

// ErrNoFault is returned by [Injector.Heal] for an id that is not in force.
var ErrNoFault = errors.New("no such fault")

// Injector applies faults to one lab and reverts them.
type Injector struct {
	docker client.APIClient
	store  *Store
	name   string

	mu  sync.Mutex
	lab *lab.Lab
}

// NewInjector returns an injector for the lab l (an inventory from
// [lab.Inspect] or [lab.Up]) that records faults in store.
func NewInjector(docker client.APIClient, l *lab.Lab, store *Store) *Injector {
	return &Injector{docker: docker, store: store, name: l.Name, lab: l}
}

// Lab returns the injector's current inventory of the lab.
func (in *Injector) Lab() *lab.Lab {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.lab
}

// refresh re-reads the inventory: container pids change on power-on.
func (in *Injector) refresh(ctx context.Context) (*lab.Lab, error) {
	l, err := lab.Inspect(ctx, in.docker, in.name)
	if err != nil {
		return nil, err
	}
	in.mu.Lock()
	in.lab = l
	in.mu.Unlock()
	return l, nil
}

// Apply validates spec against the lab's topology and applies it. Either
// every change is made, or none is: when one DC fails, the DCs already
// changed are rolled back. The returned record is saved in the store.
func (in *Injector) Apply(ctx context.Context, spec Spec) (*Record, error) {
	l := in.Lab()
	if err := spec.Validate(l.Topology); err != nil {
		return nil, err
	}
	rec := &Record{Spec: spec, Desc: spec.String(), AppliedAt: time.Now()}
	var err error
	switch spec.Kind {
	case KindCut, KindPartition, KindIsolate, KindLoss:
		err = in.applyNFT(ctx, l, rec)
	case KindBandwidth, KindDelay:
		err = in.applyQdisc(ctx, l, rec)
	case KindPowerOff, KindPause:
		err = in.applyDocker(ctx, l, rec)
	}
	if err != nil {
		return nil, err
	}
	rec.InForceAt = time.Now()
	if spec.For > 0 {
		rec.Until = rec.InForceAt.Add(spec.For)
	}
	err = in.store.Update(func(st *State) error {
		st.Next++
		rec.ID = "f" + strconv.Itoa(st.Next)
		st.Records = append(live(st.Records, time.Now()), *rec)
		return nil
	})
	if err != nil {
		// The fault is in force but could not be recorded: revert rather
		// than leave behind something nobody knows about.
		return nil, errors.Join(err, in.revert(context.WithoutCancel(ctx), *rec, nil))
	}
	return rec, nil
}

// live drops records the kernel has already ended.
func live(rs []Record, now time.Time) []Record {
	return slices.DeleteFunc(rs, func(r Record) bool { return r.KernelExpires() && r.Over(now) })
}

// nftPlan computes, per DC, which addresses go into which sets.
func nftPlan(l *lab.Lab, spec Spec) (map[string][]setAdd, error) {
	plan := map[string][]setAdd{}
	ip := func(id string) netip.Addr {
		d, _ := l.DC(id)
		return d.WANIP
	}
	put := func(dc, set string, a netip.Addr) {
		for i := range plan[dc] {
			if plan[dc][i].Set == set {
				plan[dc][i].Addrs = append(plan[dc][i].Addrs, a)
				return
			}
		}
		plan[dc] = append(plan[dc], setAdd{Set: set, Addrs: []netip.Addr{a}})
	}
	t := l.Topology
	switch spec.Kind {
	case KindCut, KindPartition:
		for _, f := range spec.Grudge(t) {
			put(f.To, setDropIn, ip(f.From))
			put(f.From, setDropOut, ip(f.To))
		}
	case KindIsolate:
		group := spec.Targets(t)
		for _, dc := range group {
			put(dc, setIsolated, ip(dc))
			for _, peer := range group {
				if peer != dc {
					put(dc, setKeep, ip(peer))
				}
			}
		}
	case KindLoss:
		if spec.A != "" {
			set := prefixLossIn + strconv.Itoa(spec.Percent)
			put(spec.A, set, ip(spec.B))
			put(spec.B, set, ip(spec.A))
			break
		}
		for _, dc := range spec.Targets(t) {
			put(dc, prefixLossDC+strconv.Itoa(spec.Percent), ip(dc))
		}
	}
	for dc := range plan {
		if d, _ := l.DC(dc); !d.WANIP.IsValid() {
			return nil, fmt.Errorf("faults: dc %s has no WAN address (state %s); is it running?", dc, d.State)
		}
	}
	return plan, nil
}

func (in *Injector) applyNFT(ctx context.Context, l *lab.Lab, rec *Record) error {
	plan, err := nftPlan(l, rec.Spec)
	if err != nil {
		return err
	}
	// Open every namespace first: a DC that is not running fails the fault
	// before anything changes.
	conns := map[string]*nsConn{}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for dc := range plan {
		d, _ := l.DC(dc)
		c, err := openNS(*d)
		if err != nil {
			return err
		}
		conns[dc] = c
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for dc, adds := range plan {
		wg.Go(func() {
			err := conns[dc].add(adds, rec.Spec.For)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			for _, a := range adds {
				rec.NFT = append(rec.NFT, NFTChange{DC: dc, Set: a.Set, Addrs: a.Addrs})
			}
		})
	}
	wg.Wait()
	slices.SortFunc(rec.NFT, func(a, b NFTChange) int { return strings.Compare(a.DC+"/"+a.Set, b.DC+"/"+b.Set) })
	if len(errs) > 0 {
		return rollback(ctx, in, *rec, errors.Join(errs...))
	}
	return nil
}

// rollback reverts the part of rec that was applied and returns cause,
// joined with any error from reverting.
func rollback(ctx context.Context, in *Injector, rec Record, cause error) error {
	if err := in.revert(context.WithoutCancel(ctx), rec, nil); err != nil {
		return errors.Join(cause, fmt.Errorf("faults: rolling back: %w", err))
	}
	return cause
}

func (in *Injector) applyQdisc(ctx context.Context, l *lab.Lab, rec *Record) error {
	spec := rec.Spec
	if spec.Kind == KindDelay {
		if err := netemAvailable(); err != nil {
			return err
		}
		if spec.A != "" {
			return fmt.Errorf("%w: delay on a single link is not supported yet; delay a whole DC or city (--dc, --city)", ErrBadSpec)
		}
	}
	var errs []error
	for _, dc := range spec.Targets(l.Topology) {
		d, _ := l.DC(dc)
		c, err := openNS(*d)
		if err != nil {
			errs = append(errs, err)
			break
		}
		if spec.Kind == KindBandwidth {
			err = c.addTbf(spec.RateBits)
		} else {
			err = c.addNetem(spec.Delay, spec.Jitter)
		}
		c.Close()
		if err != nil {
			errs = append(errs, err)
			break
		}
		rec.Qdisc = append(rec.Qdisc, dc)
	}
	if len(errs) > 0 {
		return rollback(ctx, in, *rec, errors.Join(errs...))
	}
	return nil
}

func (in *Injector) applyDocker(ctx context.Context, l *lab.Lab, rec *Record) error {
	targets := rec.Spec.Targets(l.Topology)
	for _, dc := range targets {
		if d, _ := l.DC(dc); d.State != "running" {
			return fmt.Errorf("faults: cannot %s dc %s: it is %s, not running", rec.Spec.Kind, dc, d.State)
		}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, dc := range targets {
		d, _ := l.DC(dc)
		wg.Go(func() {
			var err error
			if rec.Spec.Kind == KindPowerOff {
				err = in.docker.ContainerKill(ctx, d.ContainerID, "KILL")
			} else {
				err = in.docker.ContainerPause(ctx, d.ContainerID)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("faults: %s dc %s: %w", rec.Spec.Kind, dc, err))
			} else if rec.Spec.Kind == KindPowerOff {
				rec.Killed = append(rec.Killed, dc)
			} else {
				rec.Paused = append(rec.Paused, dc)
			}
		})
	}
	wg.Wait()
	slices.Sort(rec.Killed)
	slices.Sort(rec.Paused)
	if len(errs) > 0 {
		return rollback(ctx, in, *rec, errors.Join(errs...))
	}
	if rec.Spec.Kind == KindPowerOff {
		// Wait until Docker sees the containers stopped, so that the fault
		// is in force when Apply returns.
		for _, dc := range rec.Killed {
			d, _ := l.DC(dc)
			if err := in.waitState(ctx, d.ContainerID, false); err != nil {
				return rollback(ctx, in, *rec, err)
			}
		}
	}
	return nil
}

// waitState polls until the container is (or is not) running, for at most
// 10 s.
func (in *Injector) waitState(ctx context.Context, id string, running bool) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		c, err := in.docker.ContainerInspect(ctx, id)
		if err != nil {
			return fmt.Errorf("faults: inspect container %.12s: %w", id, err)
		}
		if c.State != nil && c.State.Running == running {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("faults: container %.12s did not reach running=%v: %w", id, running, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Live returns the faults in force at now, plus those whose time is up but
// that only a process can end (qdiscs, power-off, pause) and that no process
// has ended yet: [Injector.ExpireOverdue] ends those.
func (in *Injector) Live(now time.Time) ([]Record, error) {
	st, err := in.store.Load()
	if err != nil {
		return nil, err
	}
	return live(st.Records, now), nil
}

// Heal reverts the fault with the given id and forgets it. Changes that
// another fault in force also made stay.
func (in *Injector) Heal(ctx context.Context, id string) error {
	ctx = context.WithoutCancel(ctx)
	st, err := in.store.Load()
	if err != nil {
		return err
	}
	now := time.Now()
	recs := live(st.Records, now)
	i := slices.IndexFunc(recs, func(r Record) bool { return r.ID == id })
	if i < 0 {
		ids := make([]string, len(recs))
		for j, r := range recs {
			ids[j] = r.ID
		}
		if len(ids) == 0 {
			return fmt.Errorf("faults: %w %q: no fault is in force", ErrNoFault, id)
		}
		return fmt.Errorf("faults: %w %q; in force: %s", ErrNoFault, id, strings.Join(ids, ", "))
	}
	others := slices.Delete(slices.Clone(recs), i, i+1)
	if err := in.revert(ctx, recs[i], others); err != nil {
		return err
	}
	return in.store.Update(func(st *State) error {
		st.Records = slices.DeleteFunc(live(st.Records, now), func(r Record) bool { return r.ID == id })
		return nil
	})
}

// ExpireOverdue heals every recorded fault whose time is up and that the
// kernel cannot end by itself. It returns the ids it healed.
func (in *Injector) ExpireOverdue(ctx context.Context) ([]string, error) {
	recs, err := in.Live(time.Now())
	if err != nil {
		return nil, err
	}
	var healed []string
	var errs []error
	for _, r := range recs {
		if !r.Over(time.Now()) {
			continue
		}
		if err := in.Heal(ctx, r.ID); err != nil && !errors.Is(err, ErrNoFault) {
			errs = append(errs, err)
			continue
		}
		healed = append(healed, r.ID)
	}
	return healed, errors.Join(errs...)
}

// revert undoes rec. Addresses that a record in others also put in the same
// set of the same DC are left in place. A DC that is not running has no
// namespace, hence no rules or qdiscs, to revert.
func (in *Injector) revert(ctx context.Context, rec Record, others []Record) error {
	var errs []error
	// Pids change when a DC is powered off and on, by this or another
	// process: always work from a fresh inventory.
	l, err := in.refresh(ctx)
	if err != nil {
		return err
	}
	// Power and pause first: namespaces must exist for the rest.
	for _, dc := range rec.Paused {
		d, _ := l.DC(dc)
		if err := in.docker.ContainerUnpause(ctx, d.Container); err != nil && !cerrdefs.IsNotFound(err) && !strings.Contains(err.Error(), "not paused") {
			errs = append(errs, fmt.Errorf("faults: resume dc %s: %w", dc, err))
		}
	}
	for _, dc := range rec.Killed {
		d, _ := l.DC(dc)
		if err := in.docker.ContainerStart(ctx, d.Container, container.StartOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("faults: power on dc %s: %w", dc, err))
		}
	}
	if len(rec.Killed) > 0 {
		if l, err = in.refresh(ctx); err != nil {
			return errors.Join(append(errs, err)...)
		}
		// A DC that was powered on has a new, empty namespace: put back
		// what other faults in force had there.
		if err := in.reassert(ctx, l, rec.Killed, others); err != nil {
			errs = append(errs, err)
		}
	}
	byDC := map[string][]NFTChange{}
	for _, ch := range rec.NFT {
		byDC[ch.DC] = append(byDC[ch.DC], ch)
	}
	for _, dc := range rec.Qdisc {
		byDC[dc] = append(byDC[dc], NFTChange{DC: dc}) // marks the namespace to visit
	}
	for dc, changes := range byDC {
		d, ok := l.DC(dc)
		if !ok || d.State != "running" {
			continue
		}
		c, err := openNS(*d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, ch := range changes {
			if ch.Set == "" {
				if _, err := c.removeQdisc(); err != nil {
					errs = append(errs, err)
				}
				continue
			}
			keep := stillNeeded(others, dc, ch.Set)
			addrs := slices.DeleteFunc(slices.Clone(ch.Addrs), func(a netip.Addr) bool { return keep[a] })
			if err := c.remove(ch.Set, addrs); err != nil {
				errs = append(errs, err)
			}
		}
		c.Close()
	}
	return errors.Join(errs...)
}

func stillNeeded(others []Record, dc, set string) map[netip.Addr]bool {
	m := map[netip.Addr]bool{}
	for _, r := range others {
		for _, ch := range r.NFT {
			if ch.DC == dc && ch.Set == set {
				for _, a := range ch.Addrs {
					m[a] = true
				}
			}
		}
	}
	return m
}

// reassert re-adds, in the given DCs, the nftables changes of the records in
// others, with the time they have left.
func (in *Injector) reassert(ctx context.Context, l *lab.Lab, dcs []string, others []Record) error {
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
			d, _ := l.DC(dc)
			if err := in.waitState(ctx, d.ContainerID, true); err != nil {
				errs = append(errs, err)
				continue
			}
			if l2, err := in.refresh(ctx); err == nil {
				l = l2
				d, _ = l.DC(dc)
			}
			c, err := openNS(*d)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			var left time.Duration
			if !r.Until.IsZero() {
				left = r.Until.Sub(now)
			}
			if err := c.add(adds, left); err != nil {
				errs = append(errs, err)
			}
			c.Close()
		}
	}
	return errors.Join(errs...)
}

// HealReport says what [Injector.HealAll] found and undid.
type HealReport struct {
	Resumed   []string `json:"resumed,omitempty"`    // DCs unpaused
	PoweredOn []string `json:"powered_on,omitempty"` // DCs started
	Tables    []string `json:"tables,omitempty"`     // DCs whose fibercut table was deleted
	Qdiscs    []string `json:"qdiscs,omitempty"`     // DCs whose fibercut qdisc was deleted
	Records   int      `json:"records"`              // records forgotten
}

// Empty reports whether nothing needed healing.
func (h HealReport) Empty() bool {
	return len(h.Resumed)+len(h.PoweredOn)+len(h.Tables)+len(h.Qdiscs)+h.Records == 0
}

// HealAll returns the lab to health without relying on any record: it
// resumes paused DCs, starts stopped ones, deletes the fibercut table and
// qdisc in every DC's namespace, and empties the fault file. It works after
// fibercut crashed, and from another machine's state file or none.
func (in *Injector) HealAll(ctx context.Context) (HealReport, error) {
	ctx = context.WithoutCancel(ctx)
	var rep HealReport
	var errs []error
	l, err := in.refresh(ctx)
	if err != nil {
		return rep, err
	}
	for _, d := range l.DCs {
		switch d.State {
		case "paused":
			if err := in.docker.ContainerUnpause(ctx, d.ContainerID); err != nil {
				errs = append(errs, fmt.Errorf("faults: resume dc %s: %w", d.ID, err))
				continue
			}
			rep.Resumed = append(rep.Resumed, d.ID)
		case "exited", "created":
			if err := in.docker.ContainerStart(ctx, d.ContainerID, container.StartOptions{}); err != nil {
				errs = append(errs, fmt.Errorf("faults: power on dc %s: %w", d.ID, err))
				continue
			}
			rep.PoweredOn = append(rep.PoweredOn, d.ID)
		}
	}
	for _, dc := range rep.PoweredOn {
		d, _ := l.DC(dc)
		if err := in.waitState(ctx, d.ContainerID, true); err != nil {
			errs = append(errs, err)
		}
	}
	if len(rep.PoweredOn) > 0 {
		if l, err = in.refresh(ctx); err != nil {
			return rep, errors.Join(append(errs, err)...)
		}
	}
	for _, d := range l.DCs {
		if d.State != "running" {
			continue
		}
		c, err := openNS(d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if had, err := c.dropTable(); err != nil {
			errs = append(errs, err)
		} else if had {
			rep.Tables = append(rep.Tables, d.ID)
		}
		if had, err := c.removeQdisc(); err != nil {
			errs = append(errs, err)
		} else if had {
			rep.Qdiscs = append(rep.Qdiscs, d.ID)
		}
		c.Close()
	}
	if len(errs) > 0 {
		return rep, errors.Join(errs...)
	}
	err = in.store.Update(func(st *State) error {
		rep.Records = len(live(st.Records, time.Now()))
		st.Records = nil
		return nil
	})
	return rep, err
}
