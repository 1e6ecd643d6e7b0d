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
// current again, or after catchUpLimit at most. The keeper is started
// before any weight changes, and on SIGTERM restores what it holds. A
// keeper that is killed leaves the weight low until the next lab up or
// drill run, which restore every lowered weight no live keeper holds
// (HealLeftovers), or heal --all, which restores every lowered weight
// (HealAll). A keeper never writes the store: only the processes that
// change faults do, under the lab's lock.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/nodeapi"
)

const (
	// catchUpShares is a catching-up DC's CPU weight, against the
	// default 1024 of every other container (cgroup v1 cpu.shares).
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
	// Started orders catch-ups: of two that list a DC, the later one
	// restores it.
	Started time.Time `json:"started"`
	// Until is when the keeper restores the weight of the DCs still
	// catching up.
	Until time.Time `json:"until"`
	// Lowered is set once every DC's weight is lowered.
	Lowered bool `json:"lowered,omitempty"`
	// Owner is the process that healed; Keeper the process that restores
	// the weight.
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
// after a heal. Another weight, set by someone else, is not fibercut's.
func CatchingUp(d lab.DC) bool { return d.CPUShares == catchUpShares }

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
// fault rec had cut off, once their keeper runs. The weight is an aid, not
// part of the heal: what fails is undone and not reported, and what cannot
// be undone stays recorded for HealLeftovers. The caller holds the lock,
// and has just reverted rec. An injector without keepers (on Kubernetes)
// does none of it.
func (in *Injector) startCatchUp(ctx context.Context, rec Record) {
	l := in.Lab()
	if in.keep == nil || (rec.Lab != "" && l.WAN.ID != rec.Lab) {
		return
	}
	cut, _ := rec.Spec.CutOff(l.Topology)
	var dcs []string
	for _, dc := range cut {
		// A DC powered back on starts its node and member afresh: at a low
		// weight that start would take longer, and the DC's users wait
		// for it. It keeps its weight.
		if d, ok := l.DC(dc); ok && d.State == "running" && !slices.Contains(rec.Killed, dc) {
			dcs = append(dcs, dc)
		}
	}
	if len(dcs) == 0 {
		return
	}
	self := Self()
	now := time.Now()
	c := CatchUp{Fault: rec.ID, Lab: l.WAN.ID, DCs: dcs, Started: now, Until: now.Add(catchUpLimit), Owner: &self}
	update := func() error {
		return in.store.modify(func(st *State) error {
			st.CatchUps = slices.DeleteFunc(st.CatchUps, func(x CatchUp) bool { return x.Fault == c.Fault || !x.held(now) })
			st.CatchUps = append(st.CatchUps, c)
			return nil
		})
	}
	forget := func() {
		in.store.modify(func(st *State) error {
			st.CatchUps = slices.DeleteFunc(st.CatchUps, func(x CatchUp) bool { return x.Fault == c.Fault })
			return nil
		})
	}
	// The intent, then the keeper, then the change: whatever a kill
	// leaves is known, and has a process to restore it.
	if update() != nil {
		return
	}
	k, err := in.keep(ctx, c)
	if err != nil {
		forget()
		return
	}
	c.Keeper = k
	if update() != nil {
		k.Stop()
		forget()
		return
	}
	if err := in.setShares(ctx, l, dcs, catchUpShares); err != nil {
		k.Stop() // it restores what it holds as it ends
		return
	}
	c.Lowered = true
	update()
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
// DC's weight once its node reports its ledger current, and all of them at
// the catch-up's end or on SIGTERM.
func runKeeper(v string) int {
	var o catchUpOrders
	if !takeOrders(v, &o) {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer stop()
	cli, err := lab.Connect(context.Background())
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
// given incarnation of the lab; caughtUp says whether a DC is current. It
// reads the store and never writes it. Each round, for each DC it still
// holds: a DC a later catch-up also lists is left to that one; a DC no
// longer at the low weight is let go; a current one gets its weight back.
// At the catch-up's end, or when ctx ends, it restores what it still
// holds; it returns when it holds nothing, when its catch-up is
// forgotten, or when the lab is gone.
func (in *Injector) keepCatchUp(ctx context.Context, id, incarnation string, caughtUp func(context.Context, lab.DC) bool) error {
	var pending []string
	started := false
	var last error
	for {
		st, err := in.store.Load()
		if err != nil {
			return err
		}
		i := slices.IndexFunc(st.CatchUps, func(c CatchUp) bool { return c.Fault == id && c.Lab == incarnation })
		if i < 0 {
			return nil // forgotten: healed whole (HealAll), or the lab went down
		}
		c := st.CatchUps[i]
		now := time.Now()
		if !started {
			pending, started = slices.Clone(c.DCs), true
		}
		later := func(dc string) bool {
			return slices.ContainsFunc(st.CatchUps, func(o CatchUp) bool {
				return o.Fault != id && o.Lab == incarnation && o.Started.After(c.Started) && o.held(now) && slices.Contains(o.DCs, dc)
			})
		}
		l, err := in.backend.Inspect(context.WithoutCancel(ctx))
		if errors.Is(err, lab.ErrNoLab) || (err == nil && l.WAN.ID != incarnation) {
			return nil // the lab is gone, or another one, and its weights with it
		}
		over := ctx.Err() != nil || !now.Before(c.Until)
		if err == nil && (c.Lowered || over) {
			last = nil
			pending = slices.DeleteFunc(pending, func(dc string) bool {
				d, ok := l.DC(dc)
				switch {
				case !ok || later(dc) || (c.Lowered && !CatchingUp(*d)):
					return true
				case !CatchingUp(*d):
					return over // not lowered yet (the heal was cut short): let go at the end
				case !over && !caughtUp(ctx, *d):
					return false
				}
				if err := in.backend.SetCPUShares(context.WithoutCancel(ctx), *d, defaultShares); err != nil {
					last = err
					return false // again next round
				}
				return true
			})
		} else if err != nil {
			last = err
		}
		if len(pending) == 0 || over && (last == nil || now.After(c.Until.Add(10*time.Second))) {
			return last
		}
		if over {
			time.Sleep(catchUpPoll) // retrying a restore that failed
			continue
		}
		select {
		case <-ctx.Done():
		case <-time.After(catchUpPoll):
		}
	}
}
