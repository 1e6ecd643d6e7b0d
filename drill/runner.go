package drill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/client"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/fibercut/fibercut/demoapp"
	"github.com/fibercut/fibercut/faults"
	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/topology"
	"github.com/fibercut/fibercut/verify"
)

// ErrAborted is wrapped by the error of a drill stopped by an abort rule.
var ErrAborted = errors.New("drill aborted")

// ErrFaultsInForce is wrapped by the error of a drill that would start on a
// lab where faults held by a live process, or kept on purpose, are in
// force: they would skew every number of the drill.
var ErrFaultsInForce = errors.New("faults in force on the lab")

// Options configure [Run].
type Options struct {
	// Lab is the lab to run on; it is brought up (or completed) first.
	Lab string
	// Topology overrides the scenario's.
	Topology *topology.Topology
	// Out is the report directory; "" means ./fibercut-report/<time>-<scenario>.
	Out string
	// TimeScale multiplies every duration of the scenario (CI runs them
	// short); 0 means 1.
	TimeScale float64
	// Binary is a static fibercut binary for the node image (tests).
	Binary string
	// NodeEnv adds environment variables to the DC nodes (tests that break
	// the ledger on purpose).
	NodeEnv []string
	// GatewayEnv adds environment variables to the gateway (tests that
	// drop an audience transfer).
	GatewayEnv []string
	// Store keeps the fault records; nil means the lab's default store.
	Store *faults.Store
	// HealFirst heals every fault in force before the drill, also those a
	// live process holds or that were kept on purpose. Without it, a drill
	// heals only what dead processes left behind, and refuses to start on
	// a lab with other faults in force ([ErrFaultsInForce]).
	HealFirst bool
	// Events, when set, receives the drill's typed events (progress about
	// once a second, phases, faults in force and healed, money samples,
	// the verdict) from one goroutine, in order. It may be slow: the
	// schedule never waits for it; progress it has not taken yet is
	// merged, nothing else is dropped. Every event is delivered before
	// Run returns.
	Events func(Event)
	// OnOp, when set, is called with every operation of the load as it is
	// recorded, from the load's goroutines, possibly at once: it must be
	// quick and safe for concurrent use.
	OnOp func(verify.Op)
	// WANLatency sets the lab's baseline WAN latency (the topology's link
	// latencies) for the drill: "on", "off" (bridge speed), or "" to leave
	// the lab as it is. The report says which it ran with.
	WANLatency string
	// Env, when not nil, is where the drill runs instead of a lab on the
	// Docker engine (a Kubernetes cluster: [KubeEnv]); the Docker client
	// given to [Start] or [Run] is then not used and may be nil, and the
	// options Binary, NodeEnv and GatewayEnv do not apply.
	Env Env
	// NoLoad runs no load: only the hall's transfers (the gateway's
	// audience record) are checked, and no recovery time is measured.
	NoLoad bool
	// LoadFor is how long the load runs; the scenario's duration when 0.
	// A session driven by hand sets its bound here (Finish ends it
	// sooner).
	LoadFor time.Duration
}

// Outcome is a finished drill.
type Outcome struct {
	Report verify.Report
	Dir    string   // where the report was written
	Files  []string // what was written
}

// run is the state of one drill.
type run struct {
	sc    *Scenario
	opts  Options
	cli   client.APIClient
	lab   *lab.Lab
	topo  *topology.Topology
	wan   *faults.WAN // the baseline WAN latency; nil when off
	in    *faults.Injector
	clock *verify.Clock
	t0    time.Duration // history time at which the transfer phase began

	mu       sync.Mutex
	windows  []verify.FaultWindow
	steps    []verify.StepRecord
	current  string
	progress demoapp.LoadProgress
	abortErr error
	abort    context.CancelFunc
	feed     *feed
}

// Run heals what dead fibercut processes left on the lab (and refuses to
// start when faults other processes hold, or kept ones, are in force,
// unless Options.HealFirst), brings the lab up if needed, clears its
// ledger, runs the scenario's load and steps, heals its own faults, waits
// for the ledger members to converge, verifies the final state against the
// history, measures the recovery times and writes the report. It returns an
// error only when the drill could not be run (a tool error); whether the
// expectations held is Outcome.Report.Passed. An aborted drill still
// verifies and reports what happened, and returns an error wrapping
// ErrAborted. Run is a [Session] driven by the scenario's schedule.
func Run(ctx context.Context, cli client.APIClient, sc *Scenario, opts Options) (*Outcome, error) {
	s, err := Start(ctx, cli, sc, opts)
	if err != nil {
		return nil, err
	}
	s.r.runSteps(s.loadCtx)
	s.r.setCurrent(PhaseSettle)
	s.r.event(Event{Kind: EventPhase, Phase: PhaseSettle, Message: "settling: load after the last fault"})
	return s.finish(ctx, false)
}

// action is one thing to do at a time: apply a planned fault, or heal it.
type action struct {
	at    time.Duration // since the transfer phase began
	fault *PlannedFault
	heal  bool
}

// runSteps applies and heals the scenario's faults on schedule. The
// timeline already ends each fault when its heal step says so.
func (r *run) runSteps(ctx context.Context) {
	var acts []action
	plan := r.sc.Timeline()
	for i := range plan {
		p := &plan[i]
		acts = append(acts, action{at: r.sc.Warmup + p.At, fault: p}, action{at: r.sc.Warmup + p.End(), fault: p, heal: true})
	}
	// Heals before applications at the same instant (flapping links).
	sort.SliceStable(acts, func(i, j int) bool {
		if acts[i].at != acts[j].at {
			return acts[i].at < acts[j].at
		}
		return acts[i].heal && !acts[j].heal
	})
	applied := map[*PlannedFault]string{} // planned fault → fault id
	for _, a := range acts {
		wait := r.t0 + a.at - r.clock.Since()
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if !a.heal {
			id, err := r.apply(ctx, a.fault)
			if err != nil {
				r.stepFailed(a.fault.Desc, err)
				continue
			}
			applied[a.fault] = id
			continue
		}
		if id, ok := applied[a.fault]; ok {
			r.heal(ctx, id, a.fault.Desc)
		}
	}
}

// apply applies one planned fault and records its window.
func (r *run) apply(ctx context.Context, p *PlannedFault) (string, error) {
	spec := p.Spec
	spec.For = p.For
	desc := p.Desc
	if spec.Leader {
		dc, err := LeaderDC(ctx, r.lab)
		if err != nil {
			return "", err
		}
		spec.DC, spec.Leader = dc, false
		desc = strings.Replace(desc, "leader", "dc "+dc+" (the leader)", 1)
	}
	rec, err := r.in.Apply(ctx, spec)
	if err != nil {
		return "", err
	}
	w := verify.FaultWindow{ID: rec.ID, Desc: desc, Kind: string(spec.Kind), Start: rec.InForceAt.Sub(r.clock.Base())}
	w.DCs, w.Cities = spec.CutOff(r.lab.Topology)
	r.mu.Lock()
	r.windows = append(r.windows, w)
	r.steps = append(r.steps, verify.StepRecord{At: w.Start - r.t0, What: "in force: " + desc})
	r.current = desc
	r.mu.Unlock()
	r.event(Event{Kind: EventFaultInForce, Fault: &w, Message: fmt.Sprintf("%s: %s in force (applied in %s)", rec.ID, desc, rec.InForceAt.Sub(rec.AppliedAt).Round(time.Microsecond))})
	return rec.ID, nil
}

func (r *run) heal(ctx context.Context, id, desc string) {
	err := r.in.Heal(context.WithoutCancel(ctx), id)
	if err != nil && !errors.Is(err, faults.ErrNoFault) {
		r.stepFailed("heal "+desc, err)
		return
	}
	r.closeWindow(id, desc)
}

// closeWindow records that fault id ended now, and says so; a window
// already closed (healed by hand, then at its time) is left as it is.
func (r *run) closeWindow(id, desc string) {
	at := r.clock.Since()
	var healed *verify.FaultWindow
	r.mu.Lock()
	for i := range r.windows {
		if r.windows[i].ID == id && r.windows[i].End == 0 {
			r.windows[i].End = at
			w := r.windows[i]
			healed = &w
		}
	}
	if healed == nil {
		r.mu.Unlock()
		return
	}
	r.steps = append(r.steps, verify.StepRecord{At: at - r.t0, What: "healed: " + desc})
	r.current = "recovering"
	r.mu.Unlock()
	r.event(Event{Kind: EventFaultHealed, Fault: healed, Message: id + ": " + desc + " healed"})
}

func (r *run) stepFailed(what string, err error) {
	r.mu.Lock()
	r.steps = append(r.steps, verify.StepRecord{At: r.clock.Since() - r.t0, What: what, Error: err.Error()})
	r.mu.Unlock()
	r.event(Event{Kind: EventStepFailed, Message: "step failed: " + what + ": " + err.Error()})
	if r.sc.Abort.StepFails {
		r.stop(fmt.Errorf("%w: step %q failed: %v", ErrAborted, what, err))
	}
}

// stop aborts the drill: the load stops, and Run heals and reports.
func (r *run) stop(err error) {
	r.mu.Lock()
	if r.abortErr == nil {
		r.abortErr = err
	}
	r.mu.Unlock()
	r.event(Event{Kind: EventAbort, Message: "aborting: " + err.Error()})
	r.abort()
}

// refuseHeld prints what was healed before the drill, and refuses to run
// when faults that others hold are in force.
func (r *run) refuseHeld(rep faults.HealReport) error {
	if !rep.Empty() {
		r.event(Event{Kind: EventNote, Message: "healed what a dead process left behind: " + strings.Join(rep.Lines(), "; ")})
	}
	if len(rep.Held) == 0 {
		return nil
	}
	var held []string
	for _, h := range rep.Held {
		who := "kept on purpose"
		if h.Owner != nil {
			who = fmt.Sprintf("held by process %d", h.Owner.PID)
		}
		held = append(held, fmt.Sprintf("%s %s (%s)", h.ID, h.Desc, who))
	}
	return fmt.Errorf("drill: %w: %s; heal them (fibercut fault heal ID), or run with --heal-first", ErrFaultsInForce, strings.Join(held, "; "))
}

// healOwn heals every fault the drill applied whose window is still open:
// each is healed (or found already ended by its time limit), its window
// closed and its event sent.
func (r *run) healOwn(ctx context.Context) error {
	r.mu.Lock()
	var open []verify.FaultWindow
	for _, w := range r.windows {
		if w.End == 0 {
			open = append(open, w)
		}
	}
	r.mu.Unlock()
	var errs []error
	for _, w := range open {
		if err := r.in.Heal(ctx, w.ID); err != nil && !errors.Is(err, faults.ErrNoFault) {
			errs = append(errs, err)
			continue
		}
		r.closeWindow(w.ID, w.Desc)
	}
	return errors.Join(errs...)
}

func (r *run) setCurrent(s string) {
	r.mu.Lock()
	r.current = s
	r.mu.Unlock()
}

// event stamps e with the time, step and counts, and sends it to the feed.
func (r *run) event(e Event) {
	if r.opts.Events == nil {
		return
	}
	r.mu.Lock()
	if r.clock != nil {
		e.At = r.clock.Since() - r.t0
	}
	e.Total = r.sc.Duration()
	e.Step = r.current
	p := r.progress
	r.mu.Unlock()
	e.OKPerSec, e.OK, e.Fail, e.Unknown = p.OKPerSec, p.OK, p.Fail, p.Unknown
	r.feed.send(e)
}

// reportProgress sends an event every second until ctx is done.
func (r *run) reportProgress(ctx context.Context, total time.Duration) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			r.event(Event{Kind: EventProgress})
		}
	}
}

// watchMoney checks every two seconds that the balances add up, and aborts
// the drill when they do not and the scenario says so.
func (r *run) watchMoney(ctx context.Context, c *clientv3.Client) {
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		m := moneySample(ctx, c)
		msg := fmt.Sprintf("money: %d accounts hold %d fen at revision %d", m.Accounts, m.SumFen, m.Revision)
		if !m.Readable || !m.OK {
			msg = "money: " + m.Detail
		}
		r.event(Event{Kind: EventMoney, Money: &m, Message: msg})
		if !m.Readable || m.OK {
			continue // unreadable during a fault is not a violation
		}
		detail := m.Detail
		slog.Warn("live money check failed", "detail", detail)
		r.mu.Lock()
		r.steps = append(r.steps, verify.StepRecord{At: r.clock.Since() - r.t0, What: "live money check", Error: detail})
		r.mu.Unlock()
		if r.sc.Abort.MoneyNotConserved {
			r.stop(fmt.Errorf("%w: money not conserved: %s", ErrAborted, detail))
			return
		}
	}
}
