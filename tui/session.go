package tui

import (
	"context"
	"fmt"
	"sync"

	"github.com/fibercut/fibercut/demoapp"
	"github.com/fibercut/fibercut/lab"

	"github.com/fibercut/fibercut/drill"
	"github.com/fibercut/fibercut/faults"
)

// SessionController lets the dashboard's keys drive a drill session: the
// cut is the scenario's first fault step, for that step's duration; an
// isolation lasts the topology's fault duration.
type SessionController struct {
	Session *drill.Session

	mu      sync.Mutex
	outcome *drill.Outcome
}

// Cut applies the scenario's first fault step.
func (c *SessionController) Cut(ctx context.Context) error {
	spec, err := CutSpec(c.Session.Scenario())
	if err != nil {
		return err
	}
	_, err = c.Session.Apply(ctx, spec)
	return err
}

// CutSpec is the fault the cut key applies: the scenario's first fault
// step, for that step's duration.
func CutSpec(sc *drill.Scenario) (faults.Spec, error) {
	for _, st := range sc.Steps {
		if st.Fault != nil {
			spec := st.Fault.Clone()
			spec.For = st.For
			return spec, nil
		}
	}
	return faults.Spec{}, fmt.Errorf("tui: scenario %s has no fault step to cut with", sc.Name)
}

// Isolate isolates a DC, or the leader's with "".
func (c *SessionController) Isolate(ctx context.Context, dc string) error {
	spec := faults.Spec{Kind: faults.KindIsolate, DC: dc, Leader: dc == "", For: c.Session.Lab().Topology.Faults.Duration}
	_, err := c.Session.Apply(ctx, spec)
	return err
}

// HealAll heals the session's faults.
func (c *SessionController) HealAll(ctx context.Context) error { return c.Session.HealAll(ctx) }

// Finish heals, converges, verifies and reports.
func (c *SessionController) Finish(ctx context.Context) error {
	out, err := c.Session.Finish(ctx)
	c.mu.Lock()
	c.outcome = out
	c.mu.Unlock()
	return err
}

// Outcome is the finished drill, nil before Finish.
func (c *SessionController) Outcome() *drill.Outcome {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.outcome
}

// Audience is what the hall did, from the gateway's audience record.
type Audience struct {
	// Opened counts the accounts opened from phones, by home city.
	Opened map[string]int
	// Switched counts those served now from another city than their
	// home's; Transfers the transfers acknowledged.
	Switched, Transfers int
}

// Audience asks the gateway, over the management network, what the hall
// did.
func (c *SessionController) Audience(ctx context.Context) (Audience, error) {
	return HallOf(ctx, c.Session.Lab())
}

// HallOf asks a lab's gateway, over the management network, what the hall
// did: one request.
func HallOf(ctx context.Context, l *lab.Lab) (Audience, error) {
	if l.Gateway == nil || !l.Gateway.MgmtIP.IsValid() {
		return Audience{}, fmt.Errorf("tui: lab %s has no gateway on its management network", l.Name)
	}
	s, err := demoapp.AudienceClient{Addr: l.Gateway.RecordAddr()}.Summary(ctx)
	if err != nil {
		return Audience{}, err
	}
	return Audience{Opened: s.Opened, Switched: s.Switched, Transfers: s.Transfers}, nil
}

// Roles asks what every DC's ledger member is ([RolesOf]).
func (c *SessionController) Roles(ctx context.Context) (map[string]string, error) {
	return RolesOf(ctx, c.Session.Lab())
}

// RolesOf asks every DC's node of a lab, over the management network
// (never cut), what its ledger member is: "leader", "follower", "no
// quorum", or "unreachable" when the node does not answer (powered off,
// frozen). One health request per DC, all at once.
func RolesOf(ctx context.Context, l *lab.Lab) (map[string]string, error) {
	roles := make(map[string]string, len(l.DCs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, d := range l.DCs {
		wg.Go(func() {
			role := "unreachable"
			if h, err := lab.FetchHealth(ctx, d.MgmtIP); err == nil {
				switch {
				case h.Ledger != lab.LedgerOK:
					role = "no quorum"
				case h.Leader == d.ID:
					role = "leader"
				default:
					role = "follower"
				}
			}
			mu.Lock()
			roles[d.ID] = role
			mu.Unlock()
		})
	}
	wg.Wait()
	return roles, nil
}
