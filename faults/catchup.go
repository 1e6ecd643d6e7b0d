package faults

// Catching up at a low CPU weight. When a fault that cut DCs off from the
// majority is healed, their ledger members replay what they missed. A
// lab's DCs share one machine's cores, and that replay took them from the
// DCs that had kept serving: on 2 cores, after atec-2018's 30 s cut, the
// two Hangzhou members used a core between them for about 3 s, the
// serving followers fell from 28 % to 10 % of a core each, and transfers
// dipped below 90 % of their rate for up to 2 s (docs/benchmarks.md).
//
// So a heal lowers those DCs' CPU weight (cgroup cpu.shares, through the
// engine: the default is 1024) for their catch-up. They still get every
// cycle the serving DCs leave. A keeper process, started like the
// watchdog, puts the weight back as each DC's node says its ledger is
// current again, or after catchUpLimit at most. A keeper that dies leaves
// the weight low until the next lab up or drill run, which restore every
// lowered weight no live keeper holds (HealLeftovers), or heal --all,
// which restores every lowered weight (HealAll).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/nodeapi"
)

const (
	// catchUpShares is a catching-up DC's CPU weight: a sixteenth of
	// every other DC's.
	catchUpShares = 64
	// defaultShares is the engine's default weight, which a DC returns to.
	defaultShares = 1024
	// catchUpLimit bounds a catch-up at the low weight.
	catchUpLimit = 20 * time.Second
	// catchUpPoll is how often the keeper asks the nodes.
	catchUpPoll = 200 * time.Millisecond
)

// catchUpEnv carries a keeper's orders, as JSON.
const catchUpEnv = "FIBERCUT_FAULTS_CATCHUP"

// CatchUp is DCs at a low CPU weight while they catch up after the heal of
// the fault that had cut them off.
type CatchUp struct {
	Fault string   `json:"fault"` // the healed fault's id
	Lab   string   `json:"lab"`   // the incarnation of the lab
	DCs   []string `json:"dcs"`
	// Until is when the keeper restores the weight of the DCs still
	// catching up.
	Until time.Time `json:"until"`
	// Owner is the process that healed; Keeper the process that restores
	// the weight (nil until it runs).
	Owner  *Process `json:"owner,omitempty"`
	Keeper *Process `json:"keeper,omitempty"`
}

// held reports whether a live process still answers for c at now: its
// keeper, or before the keeper runs, the process that healed.
func (c CatchUp) held(now time.Time) bool {
	if now.After(c.Until.Add(holdMargin)) {
		return false
	}
	if c.Keeper != nil {
		return c.Keeper.Alive()
	}
	return c.Owner != nil && c.Owner.Alive()
}

// CatchingUp reports whether d has the low CPU weight of a DC catching up
// after a heal: any other weight than the engine's default, which it
// reports as 0 for a container created with it.
func CatchingUp(d lab.DC) bool { return d.CPUShares != 0 && d.CPUShares != defaultShares }

// catchUpOrders is what a keeper is started for.
type catchUpOrders struct {
	Store       string `json:"store"`
	Lab         string `json:"lab"`
	Incarnation string `json:"incarnation"`
	Fault       string `json:"fault"`
}

func init() {
	if v := os.Getenv(catchUpEnv); v != "" {
		os.Exit(runKeeper(v))
	}
}

// spawnKeeper starts the keeper of c and returns once it runs.
func (in *Injector) spawnKeeper(ctx context.Context, c CatchUp) (*Process, error) {
	return spawnDetached(ctx, catchUpEnv, catchUpOrders{Store: in.store.Path(), Lab: in.name, Incarnation: c.Lab, Fault: c.Fault})
}

// startCatchUp lowers the CPU weight of the running DCs that the healed
// fault rec had cut off, and starts their keeper. The weight is an aid,
// not part of the heal: what fails is undone and not reported. The
// caller holds the lock, and has just reverted rec.
func (in *Injector) startCatchUp(ctx context.Context, rec Record) {
	l := in.Lab()
	if rec.Lab != "" && l.WAN.ID != rec.Lab {
		return
	}
	cut, _ := rec.Spec.CutOff(l.Topology)
	var dcs []string
	for _, dc := range cut {
		if d, ok := l.DC(dc); ok && d.State == "running" {
			dcs = append(dcs, dc)
		}
	}
	if len(dcs) == 0 {
		return
	}
	self := Self()
	c := CatchUp{Fault: rec.ID, Lab: l.WAN.ID, DCs: dcs, Until: time.Now().Add(catchUpLimit), Owner: &self}
	// The intent first, as for faults: whatever a kill leaves is known.
	if in.store.modify(func(st *State) error { st.CatchUps = append(st.CatchUps, c); return nil }) != nil {
		return
	}
	undo := func() {
		in.setShares(ctx, l, dcs, defaultShares)
		in.store.modify(func(st *State) error {
			st.CatchUps = slices.DeleteFunc(st.CatchUps, func(x CatchUp) bool { return x.Fault == c.Fault })
			return nil
		})
	}
	if err := in.setShares(ctx, l, dcs, catchUpShares); err != nil {
		undo()
		return
	}
	k, err := in.keep(ctx, c)
	if err != nil {
		undo()
		return
	}
	c.Keeper = k
	if in.store.modify(func(st *State) error {
		for i := range st.CatchUps {
			if st.CatchUps[i].Fault == c.Fault {
				st.CatchUps[i] = c
			}
		}
		return nil
	}) != nil {
		k.Stop() // it restores the weight as it ends
	}
}

// setShares sets the CPU weight of the given DCs of l.
func (in *Injector) setShares(ctx context.Context, l *lab.Lab, dcs []string, shares int64) error {
	return forEach(dcs, func(dc string) error {
		d, ok := l.DC(dc)
		if !ok || d.State == lab.StateMissing {
			return nil
		}
		return in.backend.SetCPUShares(ctx, *d, shares)
	})
}

// restoreWeights puts back the weight of every DC of l lowered by a
// catch-up that no live process holds (with all, of every lowered DC),
// and forgets the catch-ups no one holds. The caller holds the lock.
func (in *Injector) restoreWeights(ctx context.Context, l *lab.Lab, rep *HealReport, all bool) error {
	var errs []error
	now := time.Now()
	err := in.store.modify(func(st *State) error {
		st.CatchUps = slices.DeleteFunc(st.CatchUps, func(c CatchUp) bool {
			return all || c.Lab != l.WAN.ID || !c.held(now)
		})
		for _, d := range l.DCs {
			heldBy := slices.ContainsFunc(st.CatchUps, func(c CatchUp) bool { return slices.Contains(c.DCs, d.ID) })
			if !CatchingUp(d) || heldBy {
				continue
			}
			if err := in.backend.SetCPUShares(ctx, d, defaultShares); err != nil {
				errs = append(errs, fmt.Errorf("faults: restore the CPU weight of dc %s: %w", d.ID, err))
				continue
			}
			rep.Weights = append(rep.Weights, d.ID)
		}
		return nil
	})
	return errors.Join(append(errs, err)...)
}

// runKeeper is the keeper process: it says it runs, then restores each
// DC's weight once its node reports its ledger current, all of them at
// the catch-up's end, and forgets the catch-up.
func runKeeper(v string) int {
	var o catchUpOrders
	if !takeOrders(v, &o) {
		return 2
	}
	ctx := context.Background()
	cli, err := lab.Connect(ctx)
	if err != nil {
		return 1
	}
	defer cli.Close()
	in := &Injector{backend: NewDockerBackend(cli, o.Lab), store: NewStore(o.Store), name: o.Lab}
	if err := in.keepCatchUp(ctx, o.Fault, o.Incarnation, current); err != nil {
		return 1
	}
	return 0
}

// current reports whether the node of d says its ledger is current.
func current(ctx context.Context, d lab.DC) bool {
	ctx, cancel := context.WithTimeout(ctx, catchUpPoll)
	defer cancel()
	h, err := lab.FetchHealth(ctx, d.MgmtIP)
	return err == nil && h.Ledger == nodeapi.LedgerOK
}

// keepCatchUp is the keeper's work for the catch-up of fault id on the
// given incarnation of the lab; caughtUp says whether a DC is current.
func (in *Injector) keepCatchUp(ctx context.Context, id, incarnation string, caughtUp func(context.Context, lab.DC) bool) error {
	load := func() (*CatchUp, error) {
		st, err := in.store.Load()
		if err != nil {
			return nil, err
		}
		i := slices.IndexFunc(st.CatchUps, func(c CatchUp) bool { return c.Fault == id && c.Lab == incarnation })
		if i < 0 {
			return nil, nil
		}
		return &st.CatchUps[i], nil
	}
	c, err := load()
	if err != nil || c == nil {
		return err
	}
	pending := slices.Clone(c.DCs)
	// restore puts back the weight of dcs, unless another catch-up in
	// force still holds one, and drops them from this one's; done forgets
	// the catch-up.
	restore := func(dcs []string, done bool) error {
		return in.store.locked(func() error {
			l, err := in.refresh(ctx)
			if errors.Is(err, lab.ErrNoLab) {
				err = nil // gone, and its weights with it
			}
			if err != nil {
				return err
			}
			var errs []error
			errs = append(errs, in.store.modify(func(st *State) error {
				now := time.Now()
				for _, dc := range dcs {
					d, ok := l.DC(dc)
					other := slices.ContainsFunc(st.CatchUps, func(c CatchUp) bool {
						return c.Fault != id && c.Lab == incarnation && c.held(now) && slices.Contains(c.DCs, dc)
					})
					if ok && l.WAN.ID == incarnation && CatchingUp(*d) && !other {
						errs = append(errs, in.backend.SetCPUShares(ctx, *d, defaultShares))
					}
					pending = slices.DeleteFunc(pending, func(p string) bool { return p == dc })
				}
				// What this catch-up still holds is what it has pending:
				// another one restores a DC it leaves.
				for i := range st.CatchUps {
					if st.CatchUps[i].Fault == id {
						st.CatchUps[i].DCs = slices.DeleteFunc(st.CatchUps[i].DCs, func(dc string) bool { return slices.Contains(dcs, dc) })
					}
				}
				if done {
					st.CatchUps = slices.DeleteFunc(st.CatchUps, func(c CatchUp) bool { return c.Fault == id })
				}
				return nil
			}))
			return errors.Join(errs...)
		})
	}
	for len(pending) > 0 && time.Now().Before(c.Until) {
		l, err := in.backend.Inspect(ctx)
		if errors.Is(err, lab.ErrNoLab) || (err == nil && l.WAN.ID != incarnation) {
			break // the lab is gone or another one: forget the catch-up
		}
		if err == nil {
			var ready []string
			for _, dc := range pending {
				if d, ok := l.DC(dc); !ok || d.State != "running" || caughtUp(ctx, *d) {
					ready = append(ready, dc)
				}
			}
			if len(ready) > 0 {
				if err := restore(ready, false); err != nil {
					return err
				}
			}
		}
		if len(pending) > 0 {
			select {
			case <-ctx.Done():
				return restore(pending, true)
			case <-time.After(catchUpPoll):
			}
		}
	}
	return restore(pending, true)
}
