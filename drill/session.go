package drill

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
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

// Session is one drill on a lab. [Start] heals what dead processes left,
// brings the lab up, clears the ledger, opens the history and starts the
// load; [Session.Apply] and [Session.HealAll] act on the lab on demand;
// [Session.Finish] ends the load, heals, converges, verifies and reports.
// [Run] drives a session by the scenario's schedule; the stage dashboard
// drives one by hand. Its methods may be called from several goroutines.
type Session struct {
	r        *run
	loadCtx  context.Context
	ledger   *clientv3.Client
	hf       *os.File
	hw       *verify.Writer
	histPath string
	dir      string
	started  time.Time
	loadDone chan error
	bg       sync.WaitGroup
	aud      demoapp.AudienceClient

	mu       sync.Mutex // serialises Apply, HealAll and Finish
	finished bool
}

// ErrFinished is returned by a session's methods after Finish.
var ErrFinished = errors.New("drill: the session is finished")

// Start begins a drill: everything [Run] does before the first step. The
// load runs for Options.LoadFor, or the scenario's duration, unless
// Finish ends it first. On error nothing is left running.
func Start(ctx context.Context, cli client.APIClient, sc *Scenario, opts Options) (_ *Session, err error) {
	if opts.TimeScale != 0 && opts.TimeScale != 1 {
		sc = sc.Scale(opts.TimeScale)
	}
	topo := opts.Topology
	if topo == nil {
		if topo, err = sc.ResolveTopology(); err != nil {
			return nil, err
		}
	}
	r := &run{sc: sc, opts: opts, cli: cli, feed: newFeed(opts.Events)}
	s := &Session{r: r, started: time.Now()}
	defer func() {
		if err != nil {
			s.close() // s, not the result: that is nil on error
		}
	}()
	store := opts.Store
	if store == nil {
		if store, err = faults.OpenStore(cmp.Or(opts.Lab, lab.DefaultName)); err != nil {
			return nil, err
		}
	}
	var hold []string
	if opts.Env != nil {
		if err := r.upEnv(ctx, store, topo); err != nil {
			return nil, err
		}
	} else if !opts.HealFirst {
		rep, held, err := faults.BeforeUp(ctx, cli, cmp.Or(opts.Lab, lab.DefaultName), store)
		if err != nil {
			return nil, fmt.Errorf("drill: heal what dead processes left on the lab: %w", err)
		}
		if err := r.refuseHeld(rep); err != nil {
			return nil, err
		}
		hold = held
	}
	if opts.Env == nil {
		l, err := lab.Up(ctx, cli, lab.UpOptions{Name: opts.Lab, Topology: topo, Binary: opts.Binary, NodeEnv: opts.NodeEnv, GatewayEnv: opts.GatewayEnv, Leave: hold})
		if err != nil {
			return nil, err
		}
		r.lab, r.topo = l, topo
		r.in = faults.NewInjector(cli, l, store)
	}
	l := r.lab
	if opts.HealFirst {
		rep, err := r.in.HealAll(ctx)
		if err != nil {
			return nil, fmt.Errorf("drill: heal the lab before starting: %w", err)
		}
		if !rep.Empty() {
			r.event(Event{Kind: EventNote, Message: "healed first (--heal-first): " + strings.Join(rep.Lines(), "; ")})
		}
	}
	if r.wan, err = r.in.SetWAN(ctx, opts.WANLatency); err != nil {
		return nil, fmt.Errorf("drill: %w", err)
	}
	if !r.wan.Held() {
		r.wan = nil // off, or its holder is gone: the links run undelayed
	}
	if s.ledger, err = ledgerClient(l); err != nil {
		return nil, err
	}
	if err := resetLedger(ctx, s.ledger); err != nil {
		return nil, err
	}
	// The hall's record starts with the ledger: what it held belonged to
	// accounts that are gone.
	if s.aud, err = audienceOf(l); err != nil {
		return nil, err
	}
	if err := s.aud.Reset(ctx); err != nil {
		return nil, fmt.Errorf("drill: clear the gateway's audience record: %w", err)
	}
	s.dir = opts.Out
	if s.dir == "" {
		s.dir = filepath.Join("fibercut-report", s.started.Format("20060102-150405")+"-"+sc.Name)
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("drill: %w", err)
	}
	s.histPath = filepath.Join(s.dir, "history.jsonl")
	if s.hf, err = os.Create(s.histPath); err != nil {
		return nil, fmt.Errorf("drill: %w", err)
	}
	hh := verify.Header{Lab: l.Name, Target: l.Gateway.URL(), Users: sc.Load.Users, Rate: sc.Load.Rate}
	if opts.NoLoad {
		hh.Users, hh.Rate = 0, 0
	}
	if s.hw, err = verify.NewWriter(s.hf, hh); err != nil {
		return nil, err
	}
	r.clock = s.hw.Clock()
	return s, s.startLoad(ctx)
}

// startLoad starts the load and the watchers, and returns once the
// transfer phase has begun.
func (s *Session) startLoad(ctx context.Context) error {
	r := s.r
	loadCtx, cancel := context.WithCancel(ctx)
	s.loadCtx, r.abort = loadCtx, cancel
	begun := make(chan time.Duration, 1)
	s.loadDone = make(chan error, 1)
	total := cmp.Or(r.opts.LoadFor, r.sc.Duration())
	if r.opts.NoLoad {
		// Nothing but the hall, for as long as the load would have run.
		go func() {
			select {
			case <-loadCtx.Done():
			case <-time.After(total):
			}
			s.loadDone <- nil
		}()
		r.t0 = r.clock.Since()
		r.setCurrent(PhaseWarmup)
		r.event(Event{Kind: EventPhase, Phase: PhaseWarmup, Message: "no load (--no-load): only the hall's transfers are checked"})
		s.bg.Go(func() { r.watchMoney(loadCtx, s.ledger) })
		return nil
	}
	go func() {
		_, err := demoapp.RunLoad(loadCtx, demoapp.LoadConfig{
			BaseURL: r.lab.Gateway.URL(), Users: r.sc.Load.Users, Rate: r.sc.Load.Rate, Duration: total,
			Timeout: 2 * time.Second, Retry: true, History: s.hw,
			Progress:    func(p demoapp.LoadProgress) { r.mu.Lock(); r.progress = p; r.mu.Unlock() },
			OnTransfers: func(at time.Duration) { begun <- at },
			OnOp:        r.opts.OnOp,
		})
		s.loadDone <- err
	}()
	select {
	case r.t0 = <-begun:
	case err := <-s.loadDone:
		cancel()
		if err == nil {
			err = errors.New("the load ended before sending a transfer")
		}
		return fmt.Errorf("drill: load: %w", err)
	}
	r.setCurrent(PhaseWarmup)
	r.event(Event{Kind: EventPhase, Phase: PhaseWarmup, Message: "warming up: load before the first fault"})
	s.bg.Go(func() { r.reportProgress(loadCtx, total) })
	s.bg.Go(func() { r.watchMoney(loadCtx, s.ledger) })
	return nil
}

// Lab is the session's lab, as last inspected.
func (s *Session) Lab() *lab.Lab {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	return s.r.lab
}

// Dir is the report directory.
func (s *Session) Dir() string { return s.dir }

// Apply applies a fault now, as a step would: its window is recorded, and
// its events sent. A spec with Leader targets the DC holding the leader.
// It returns the fault's id.
func (s *Session) Apply(ctx context.Context, spec faults.Spec) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished {
		return "", ErrFinished
	}
	id, err := s.r.apply(ctx, &PlannedFault{Spec: spec, For: spec.For, Desc: spec.String()})
	if err != nil || spec.For <= 0 {
		return id, err
	}
	// Close its window when its time is up, as a step's heal would.
	time.AfterFunc(spec.For, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.finished {
			s.r.heal(context.WithoutCancel(ctx), id, spec.String())
		}
	})
	return id, nil
}

// HealAll heals every fault the session applied that is still in force.
func (s *Session) HealAll(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished {
		return ErrFinished
	}
	return s.r.healOwn(ctx)
}

// Finish ends the load now and does everything [Run] does after the last
// step: heal, converge, verify, report. The verdict is also sent as an
// event.
func (s *Session) Finish(ctx context.Context) (*Outcome, error) { return s.finish(ctx, true) }

// finish waits for the load to end (stop: ends it now), then heals,
// converges, verifies and reports.
func (s *Session) finish(ctx context.Context, stop bool) (*Outcome, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished {
		return nil, ErrFinished
	}
	s.finished = true
	defer s.close()
	r := s.r
	if stop {
		// Finishing by hand, perhaps during a cut: heal first and let
		// the load run on a moment, so that the verdict sees the service
		// come back (a drill needs commits after its last heal).
		if err := r.healOwn(context.WithoutCancel(ctx)); err != nil {
			return nil, fmt.Errorf("drill: heal before finishing: %w", err)
		}
		if !r.opts.NoLoad {
			r.mu.Lock()
			var last time.Duration
			for _, w := range r.windows {
				last = max(last, w.End)
			}
			r.mu.Unlock()
			if wait := last + afterHealSettle - r.clock.Since(); last > 0 && wait > 0 {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
				case err := <-s.loadDone:
					s.loadDone <- err // the load ended by itself: the wait below takes it
				}
			}
		}
		r.abort()
	}
	loadErr := <-s.loadDone
	r.abort()
	s.bg.Wait()
	var runErr error
	r.mu.Lock()
	switch {
	case r.abortErr != nil:
		runErr = r.abortErr
	case loadErr != nil && !(stop && errors.Is(loadErr, context.Canceled)):
		runErr = fmt.Errorf("drill: load: %w", loadErr)
	}
	r.mu.Unlock()
	if err := s.hw.Close(); err != nil {
		return nil, err
	}
	// Whatever happened, heal the drill's own faults and let the lab
	// converge.
	hctx := context.WithoutCancel(ctx)
	r.setCurrent(PhaseHealing)
	r.event(Event{Kind: EventPhase, Phase: PhaseHealing, Message: "healing the drill's faults"})
	if err := r.healOwn(hctx); err != nil {
		return nil, fmt.Errorf("drill: heal after the drill: %w", err)
	}
	r.setCurrent(PhaseConverge)
	r.event(Event{Kind: EventPhase, Phase: PhaseConverge, Message: "healed; waiting for the ledger members to converge"})
	if l2, err := r.inspect(hctx); err == nil {
		r.mu.Lock()
		r.lab = l2
		r.mu.Unlock()
		if err := l2.WaitHealthy(hctx, 60*time.Second); err != nil {
			return nil, fmt.Errorf("drill: lab not healthy after healing: %w", err)
		}
	}
	if err := converge(hctx, s.ledger, r.lab, 60*time.Second); err != nil {
		return nil, err
	}
	r.setCurrent(PhaseVerifying)
	r.event(Event{Kind: EventPhase, Phase: PhaseVerifying, Message: "closing the hall's transfers, reading the final state and verifying"})
	// The hall's transfers close before the state is read, so that every
	// one the record holds has had its answer.
	audPath := filepath.Join(s.dir, "audience.jsonl")
	audOps, err := s.freezeAudience(hctx, audPath)
	if err != nil {
		return nil, err
	}
	st, err := verify.ReadFinalState(hctx, s.ledger, members(r.lab), demoapp.InitialBalanceFen)
	if err != nil {
		return nil, fmt.Errorf("drill: read the final state: %w", err)
	}
	statePath := filepath.Join(s.dir, "state.json")
	if err := verify.SaveState(statePath, st); err != nil {
		return nil, err
	}
	f, err := os.Open(s.histPath)
	if err != nil {
		return nil, fmt.Errorf("drill: %w", err)
	}
	header, ops, err := verify.ReadHistory(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("drill: read back the history: %w", err)
	}
	rep := r.report(header, ops, audOps, st, r.topo, s.started)
	files, err := verify.WriteReport(s.dir, rep)
	if err != nil {
		return nil, err
	}
	files = append(files, s.histPath, audPath, statePath)
	verdict := "FAIL"
	if rep.Passed {
		verdict = "PASS"
	}
	r.event(Event{Kind: EventVerdict, Report: &rep, Message: verdict + ": report in " + s.dir})
	return &Outcome{Report: rep, Dir: s.dir, Files: files}, runErr
}

// upEnv brings the lab up in opts.Env, healing first what the store says
// is in force there.
func (r *run) upEnv(ctx context.Context, store *faults.Store, topo *topology.Topology) error {
	l, in, err := r.opts.Env.Up(ctx, store)
	if err != nil {
		return err
	}
	if l.Topology.Name != topo.Name {
		return fmt.Errorf("drill: the lab runs topology %s, the drill wants %s", l.Topology.Name, topo.Name)
	}
	if rep, err := in.HealAll(ctx); err != nil {
		return fmt.Errorf("drill: heal the lab before starting: %w", err)
	} else if !rep.Empty() {
		r.event(Event{Kind: EventNote, Message: "healed first: " + strings.Join(rep.Lines(), "; ")})
	}
	r.lab, r.topo, r.in = in.Lab(), topo, in
	r.lab.Gateway = l.Gateway
	return nil
}

// inspect re-reads the lab.
func (r *run) inspect(ctx context.Context) (*lab.Lab, error) {
	if r.opts.Env != nil {
		return r.opts.Env.Inspect(ctx)
	}
	return lab.Inspect(ctx, r.cli, r.lab.Name)
}

// audienceOf is the client of a lab's audience record.
func audienceOf(l *lab.Lab) (demoapp.AudienceClient, error) {
	if l.Gateway == nil || !l.Gateway.MgmtIP.IsValid() {
		return demoapp.AudienceClient{}, fmt.Errorf("drill: lab %q has no gateway on its management network; run `fibercut lab up --name %s` to recreate it", l.Name, l.Name)
	}
	return demoapp.AudienceClient{Addr: l.Gateway.RecordAddr(), Client: &http.Client{Timeout: 30 * time.Second}}, nil
}

// freezeAudience closes the hall's transfers, waits for those in flight,
// writes the gateway's record to path and returns its ops on the
// history's clock.
func (s *Session) freezeAudience(ctx context.Context, path string) ([]verify.Op, error) {
	h, ops, err := s.aud.Freeze(ctx)
	if err != nil {
		return nil, fmt.Errorf("drill: close the hall's transfers: %w", err)
	}
	// The record counts from its own base instant; the history from its.
	shift := h.Base.Sub(s.hw.Header().Base)
	for i := range ops {
		ops[i].Invoke += shift
		ops[i].Complete += shift
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("drill: %w", err)
	}
	defer f.Close()
	w, err := verify.NewWriter(f, verify.Header{Base: s.hw.Header().Base, Lab: h.Lab, Target: "audience (recorded by the gateway)"})
	if err != nil {
		return nil, err
	}
	for _, op := range ops {
		if err := w.Append(op); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("drill: write %s: %w", path, err)
	}
	return ops, nil
}

// afterHealSettle is how long Finish lets the load run after the last
// heal before it stops it.
const afterHealSettle = 2 * time.Second

// close releases what the session holds; the event feed is drained last.
func (s *Session) close() {
	if s.r.abort != nil {
		s.r.abort()
	}
	if s.ledger != nil {
		s.ledger.Close()
	}
	if s.hf != nil {
		s.hf.Close()
	}
	s.r.feed.close()
}

// Stop ends the session without verifying: the load stops, the session's
// faults are healed, and nothing is reported.
func (s *Session) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished {
		return nil
	}
	s.finished = true
	defer s.close()
	s.r.abort()
	<-s.loadDone
	s.bg.Wait()
	s.hw.Close()
	return s.r.healOwn(context.WithoutCancel(ctx))
}

// Scenario is the session's scenario, scaled.
func (s *Session) Scenario() *Scenario { return s.r.sc }
