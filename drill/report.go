package drill

import (
	"fmt"
	"slices"
	"time"

	"github.com/fibercut/fibercut/topology"
	"github.com/fibercut/fibercut/verify"
)

// report verifies the history against the final state, measures the
// recovery and judges the expectations.
// report judges the drill: the money check on the load's ops and the
// hall's together, recovery and load from the load's alone.
func (r *run) report(h verify.Header, ops, audience []verify.Op, st verify.FinalState, topo *topology.Topology, started time.Time) verify.Report {
	r.mu.Lock()
	windows := append([]verify.FaultWindow(nil), r.windows...)
	steps := append([]verify.StepRecord(nil), r.steps...)
	abortErr := r.abortErr
	t0 := r.t0
	r.mu.Unlock()
	rep := verify.Report{
		Scenario: r.sc.Name, Description: r.sc.Description, Topology: topo.Name, Lab: r.lab.Name,
		Started: started, Duration: time.Since(started), Faults: windows, Steps: steps, StepsFrom: t0,
		Check:    verify.CheckHistory(h, slices.Concat(ops, audience), st),
		RTO:      verify.AnalyzeRTO(ops, windows, verify.RTOOptions{}),
		Timeline: verify.Timeline(ops, 100*time.Millisecond),
		Load:     summarize(h, ops),
		WAN:      r.wanLatency(topo),
	}
	rep.Expectations = append(expectations(r.sc.Expect, rep), somethingChecked(rep, !r.opts.NoLoad)...)
	if abortErr != nil {
		rep.Expectations = append(rep.Expectations, verify.Expectation{Name: "not aborted", Want: "ran to the end", Got: abortErr.Error()})
	}
	rep.Passed = true
	for _, e := range rep.Expectations {
		rep.Passed = rep.Passed && e.OK
	}
	return rep
}

// wanLatency is the baseline latency the drill ran with, for the report.
func (r *run) wanLatency(topo *topology.Topology) verify.WANLatency {
	if r.wan == nil {
		return verify.WANLatency{}
	}
	w := verify.WANLatency{On: true, Summary: topo.LatencySummary()}
	for _, l := range topo.Links {
		if l.Latency > 0 {
			w.Links = append(w.Links, verify.LinkLatency{A: l.A, B: l.B, Latency: l.Latency})
		}
	}
	if !r.wan.Held() {
		w.Lost = "its holder was gone by the end of the drill: the links ran undelayed from some point on"
	}
	return w
}

func summarize(h verify.Header, ops []verify.Op) verify.LoadSummary {
	s := verify.LoadSummary{Users: h.Users, Rate: h.Rate, Ops: len(ops)}
	for _, op := range ops {
		switch op.Outcome {
		case verify.OK:
			s.OK++
		case verify.Fail:
			s.Fail++
		default:
			s.Unknown++
		}
	}
	return s
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// somethingChecked is what every drill must show, whatever its scenario
// says, so that it cannot pass on nothing: acknowledged transfers, and
// with a load, commits before the first fault and after the last heal (a
// drill whose every transfer was unknown, or whose load never got going,
// or never came back, proves neither RTO nor RPO).
func somethingChecked(rep verify.Report, load bool) []verify.Expectation {
	var out []verify.Expectation
	add := func(name, want, got string, ok bool) {
		out = append(out, verify.Expectation{Name: name, Want: want, Got: got, OK: ok})
	}
	if n := rep.Check.Acknowledged; n == 0 {
		add("transfers acknowledged", "≥ 1", "none: nothing was checked", false)
	}
	if !load || len(rep.Faults) == 0 {
		return out
	}
	first, last := rep.Faults[0].Start, time.Duration(0)
	for _, f := range rep.Faults {
		first = min(first, f.Start)
		last = max(last, f.End)
	}
	var before, after int
	var bucket time.Duration
	if len(rep.Timeline) > 1 {
		bucket = rep.Timeline[1].Start - rep.Timeline[0].Start
	}
	for _, b := range rep.Timeline {
		switch {
		case b.Start+bucket <= first:
			before += b.Committed
		case last > 0 && b.Start >= last:
			after += b.Committed
		}
	}
	add("commits before the first fault", "≥ 1", fmt.Sprint(before), before > 0)
	if last > 0 {
		add("commits after the last heal", "≥ 1", fmt.Sprint(after), after > 0)
	}
	return out
}

// expectations judges a scenario's limits against what the drill found.
// The money invariants are always judged, whatever the scenario says.
func expectations(e Expect, rep verify.Report) []verify.Expectation {
	var out []verify.Expectation
	add := func(name, want, got string, ok bool) {
		out = append(out, verify.Expectation{Name: name, Want: want, Got: got, OK: ok})
	}
	failed := ""
	for _, c := range rep.Check.Checks {
		if !c.OK {
			if failed != "" {
				failed += "; "
			}
			failed += c.Name + ": " + c.Detail
		}
	}
	if rep.Check.Valid {
		add("ledger invariants", "all hold", fmt.Sprintf("all %d hold", len(rep.Check.Checks)), true)
	} else {
		add("ledger invariants", "all hold", failed, false)
	}
	add("lost", fmt.Sprintf("≤ %d", e.LostMax), fmt.Sprint(rep.Check.Lost), rep.Check.Lost <= e.LostMax)

	main, ok := rep.RTO.Main()
	if !ok {
		if e.RTOMax > 0 || e.FirstSuccessMax > 0 || e.OutageMax > 0 || e.RecoverAfterHealMax > 0 {
			add("a fault took effect", "yes", "no fault was applied", false)
		}
		return out
	}
	o := main.Outage
	if e.RTOMax > 0 {
		got := "not recovered within " + secs(o.Observed)
		if o.Recovered {
			got = secs(o.RTO)
		}
		add("rto", "≤ "+secs(e.RTOMax), got, o.Recovered && o.RTO <= e.RTOMax && (!o.AfterHeal || e.UnavailableAllowed))
	}
	if e.FirstSuccessMax > 0 {
		got := "none"
		if o.Succeeded {
			got = secs(o.FirstSuccess)
		}
		add("first success", "≤ "+secs(e.FirstSuccessMax), got, o.Succeeded && o.FirstSuccess <= e.FirstSuccessMax)
	}
	if e.OutageMax > 0 {
		got, ok := worstOutage(rep.RTO.Faults, e.OutageMax)
		add("longest outage", "≤ "+secs(e.OutageMax), got, ok)
	}
	if e.RecoverAfterHealMax > 0 {
		// Recovery after the last fault's heal.
		last := rep.RTO.Faults[len(rep.RTO.Faults)-1]
		switch {
		case last.Heal == nil:
			add("recovered after heal", "≤ "+secs(e.RecoverAfterHealMax), "the fault was never healed", false)
		case !last.Heal.Recovered:
			add("recovered after heal", "≤ "+secs(e.RecoverAfterHealMax), "not within "+secs(last.Heal.Observed), false)
		default:
			add("recovered after heal", "≤ "+secs(e.RecoverAfterHealMax), secs(last.Heal.RTO), last.Heal.RTO <= e.RecoverAfterHealMax)
		}
	}
	return out
}

// worstOutage finds, over every fault, the longest stretch without any
// commit and the longest one user could not transfer, and whether both are
// within limit with no user left unable to transfer.
func worstOutage(faults []verify.FaultRTO, limit time.Duration) (string, bool) {
	var gap, user time.Duration
	never := 0
	for _, f := range faults {
		gap = max(gap, f.Outage.LongestGap.Len())
		for _, u := range []verify.UserOutage{f.Outage.InGroup, f.Outage.Elsewhere} {
			user = max(user, u.Max)
			never += u.NeverRecovered
		}
	}
	got := fmt.Sprintf("no commit for %s at most; one user waited %s at most", secs(gap), secs(user))
	if never > 0 {
		got += fmt.Sprintf("; %d users never transferred again", never)
	}
	return got, gap <= limit && user <= limit && never == 0
}
