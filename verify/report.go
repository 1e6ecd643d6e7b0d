package verify

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Report is everything a drill proved, as [WriteReport] writes it. Times
// that are durations (Start, End, and At plus StepsFrom) are on the
// history's clock.
type Report struct {
	Scenario    string `json:"scenario"`
	Description string `json:"description,omitempty"`
	Topology    string `json:"topology,omitempty"`
	Lab         string `json:"lab,omitempty"`
	// Started is the wall-clock time the drill began; Duration how long
	// it ran.
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
	Faults   []FaultWindow `json:"faults"`
	Steps    []StepRecord  `json:"steps"`
	// StepsFrom is the instant, on the history's clock, that the steps'
	// At count from (the start of the transfer phase, say); 0 when they
	// are on the history's clock already. Reports show steps on the
	// history's clock, like the faults.
	StepsFrom time.Duration `json:"steps_from_ns,omitempty"`
	// Expectations are the scenario's limits and what was found; Passed
	// is the drill's verdict.
	Expectations []Expectation `json:"expectations"`
	Passed       bool          `json:"passed"`
	// Check is the money checker's result; a zero Result (no checks)
	// means the money was not checked.
	Check    Result      `json:"check"`
	RTO      RTOReport   `json:"rto"`
	Timeline []Bucket    `json:"timeline"`
	Load     LoadSummary `json:"load"`
	// WAN is the baseline latency the lab's links had.
	WAN WANLatency `json:"wan_latency"`
}

// WANLatency is the baseline latency of a lab's links during a drill,
// one way, in each direction; the zero value is none (bridge speed).
type WANLatency struct {
	On bool `json:"on"`
	// Summary groups the links by latency: "1ms on 2 links, 5ms on 4".
	Summary string        `json:"summary,omitempty"`
	Links   []LinkLatency `json:"links,omitempty"`
	// Lost says how the latency went during the drill; "" when it held.
	Lost string `json:"lost,omitempty"`
}

// LinkLatency is one link's one-way latency.
type LinkLatency struct {
	A       string        `json:"a"`
	B       string        `json:"b"`
	Latency time.Duration `json:"latency_ns"`
}

// String says it in a few words: "WAN latency on (1ms on 2 links, …, one
// way)", or "WAN latency off (bridge speed)".
func (w WANLatency) String() string {
	switch {
	case !w.On:
		return "WAN latency off (bridge speed)"
	case w.Lost != "":
		return "WAN latency on (" + w.Summary + ", one way), but " + w.Lost
	}
	return "WAN latency on (" + w.Summary + ", one way)"
}

// StepRecord is one step of the scenario as it ran.
type StepRecord struct {
	At    time.Duration `json:"at_ns"`
	What  string        `json:"what"`
	Error string        `json:"error,omitempty"`
}

// Expectation is one of a scenario's limits, e.g. Name "rto", Want
// "≤ 30s", Got "0.80 s".
type Expectation struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	OK   bool   `json:"ok"`
}

// LoadSummary is the traffic a drill sent: Users at a target Rate of
// transfers per second, and its operations by outcome.
type LoadSummary struct {
	Users   int     `json:"users"`
	Rate    float64 `json:"rate"`
	Ops     int     `json:"ops"`
	OK      int     `json:"ok"`
	Fail    int     `json:"fail"`
	Unknown int     `json:"unknown"`
}

// Report file names, in dir.
const (
	ReportJSON     = "report.json"
	ReportMarkdown = "report.md"
	ReportHTML     = "report.html"
	ReportPNG      = "timeline.png"
)

// WriteReport writes r into dir, creating it: [ReportJSON] (the whole
// report), [ReportMarkdown], [ReportHTML] (self-contained: inline styles
// and chart, no script, nothing fetched) and [ReportPNG] (the chart). It
// returns the paths written, also when it fails part way.
func WriteReport(dir string, r Report) (files []string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("verify: report: %w", err)
	}
	chart := buildChart(r)
	write := func(name string, render func(*bytes.Buffer) error) error {
		var buf bytes.Buffer
		if err := render(&buf); err != nil {
			return fmt.Errorf("verify: report %s: %w", name, err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("verify: report: %w", err)
		}
		files = append(files, path)
		return nil
	}
	for _, f := range []struct {
		name   string
		render func(*bytes.Buffer) error
	}{
		{ReportJSON, func(b *bytes.Buffer) error {
			enc := json.NewEncoder(b)
			enc.SetIndent("", "  ")
			return enc.Encode(r)
		}},
		{ReportMarkdown, func(b *bytes.Buffer) error { b.WriteString(r.markdown()); return nil }},
		{ReportHTML, func(b *bytes.Buffer) error { return r.html(b, chart) }},
		{ReportPNG, func(b *bytes.Buffer) error { return png.Encode(b, chart.png()) }},
	} {
		if err := write(f.name, f.render); err != nil {
			return files, err
		}
	}
	return files, nil
}

// Summary is what a drill prints last: the verdict, the load, the fault,
// the heal, then the headline RTO with the per-user outage, and the money.
func (r Report) Summary() string {
	var l []string
	verdict := "FAIL"
	if r.Passed {
		verdict = "PASS"
	}
	line := verdict + " " + r.Scenario
	if n := len(r.Expectations); n > 0 {
		line += fmt.Sprintf(": %d of %d expectations met", n-len(r.failedExpectations()), n)
	}
	l = append(l, line)
	if failed := r.failedExpectations(); len(failed) > 0 {
		var s []string
		for _, e := range failed {
			s = append(s, fmt.Sprintf("%s wanted %s, got %s", e.Name, e.Want, e.Got))
		}
		l = append(l, "  ✗ "+strings.Join(s, "; "))
	}
	if r.Load.Ops > 0 || r.Load.Users > 0 {
		l = append(l, "load: "+r.loadText())
	}
	l = append(l, r.WAN.String())
	main, ok := r.RTO.Main()
	if !ok {
		l = append(l, "no fault: nothing to recover from")
	} else {
		l = append(l, "fault: "+faultSpan(main.Fault)+"; pre-fault rate "+fmtRate(main.Baseline.Rate))
		for _, f := range r.RTO.Faults[1:] {
			l = append(l, fmt.Sprintf("  also %s: %s", faultSpan(f.Fault), rtoText(f.Outage, f.Baseline)))
		}
		if f := main; f.Heal != nil {
			l = append(l, "after heal: "+brownoutText(f, r.RTO.Options)+"; "+healRTOText(*f.Heal, f.Baseline))
		}
		l = append(l, fmt.Sprintf("%s (first success %s, longest gap %s) · users homed in %s: %s · elsewhere: %s",
			rtoText(main.Outage, main.Baseline), firstSuccessText(main.Outage), fmtSec(main.Outage.LongestGap.Len()),
			main.Group, usersShort(main.Outage.InGroup), usersShort(main.Outage.Elsewhere)))
	}
	l = append(l, "money: "+r.moneyText())
	for _, t := range r.Check.Sources {
		l = append(l, "  "+tallyText(t))
	}
	return strings.Join(l, "\n")
}

func (r Report) failedExpectations() []Expectation {
	var f []Expectation
	for _, e := range r.Expectations {
		if !e.OK {
			f = append(f, e)
		}
	}
	return f
}

func (r Report) loadText() string {
	s := fmt.Sprintf("%s users at %s", fmtInt(r.Load.Users), fmtRate(r.Load.Rate))
	if r.Load.Ops > 0 {
		s += fmt.Sprintf("; %s ops: %s ok, %s failed, %s unknown",
			fmtInt(r.Load.Ops), fmtInt(r.Load.OK), fmtInt(r.Load.Fail), fmtInt(r.Load.Unknown))
	}
	return s
}

// moneyChecked: the money checker ran.
func (r Report) moneyChecked() bool { return len(r.Check.Checks) > 0 }

// moneyText is the money line: counts, checks, RPO.
func (r Report) moneyText() string {
	c := r.Check
	if !r.moneyChecked() {
		return "not checked"
	}
	s := fmt.Sprintf("%s transfers acknowledged, %s lost, %s unknown (%s applied, %s not)",
		fmtInt(c.Acknowledged), fmtInt(c.Lost), fmtInt(c.UnknownApplied+c.UnknownNotFound),
		fmtInt(c.UnknownApplied), fmtInt(c.UnknownNotFound))
	var failed []string
	for _, ch := range c.Checks {
		if !ch.OK {
			failed = append(failed, ch.Name)
		}
	}
	if len(failed) == 0 {
		s += fmt.Sprintf("; %d/%d checks pass", len(c.Checks), len(c.Checks))
	} else {
		s += "; FAILED: " + strings.Join(failed, ", ")
	}
	return s + " — " + rpoText(c)
}

// tallyText says what one source did, checked with the rest:
// "audience: 12 accounts opened, 30 transfers acknowledged, 0 lost, 1 unknown (1 applied, 0 not)".
func tallyText(t Tally) string {
	return fmt.Sprintf("%s: %s opened, %s transfers acknowledged, %s lost, %s unknown (%s applied, %s not)",
		t.Source, plural(t.Opened, "account", "accounts"), fmtInt(t.Acknowledged), fmtInt(t.Lost),
		fmtInt(t.UnknownApplied+t.UnknownNotFound), fmtInt(t.UnknownApplied), fmtInt(t.UnknownNotFound))
}

func rpoText(c Result) string {
	switch {
	case c.Lost > 0:
		return fmt.Sprintf("RPO ≠ 0: %s acknowledged transfers LOST", fmtInt(c.Lost))
	case c.Valid:
		return "RPO = 0"
	default:
		return "no acknowledged transfer lost, but the ledger failed its checks"
	}
}

// rtoValue is the headline RTO alone: "1.30 s", "not recovered".
func rtoValue(rec Recovery, b Baseline) string {
	switch {
	case b.Rate <= 0:
		return "n/a"
	case !rec.Recovered:
		return "not recovered"
	}
	return fmtSec(rec.RTO)
}

// rtoText is the headline RTO in words.
func rtoText(rec Recovery, b Baseline) string {
	switch {
	case b.Rate <= 0:
		return "RTO n/a (no pre-fault rate)"
	case !rec.Recovered:
		return fmt.Sprintf("RTO: not recovered within %s observed", fmtSec(rec.Observed))
	case rec.AfterHeal:
		return fmt.Sprintf("RTO %s, only after the heal", fmtSec(rec.RTO))
	}
	return "RTO " + fmtSec(rec.RTO)
}

func healRTOText(rec Recovery, b Baseline) string {
	switch {
	case b.Rate <= 0:
		return "no pre-fault rate to compare with"
	case !rec.Recovered:
		return fmt.Sprintf("not back at the threshold within %s observed", fmtSec(rec.Observed))
	}
	return "back at the threshold " + fmtSec(rec.RTO) + " after the heal"
}

func firstSuccessText(rec Recovery) string {
	if !rec.Succeeded {
		return "none"
	}
	return fmtSec(rec.FirstSuccess)
}

func brownoutText(f FaultRTO, opt RTOOptions) string {
	b := f.Brownout
	switch {
	case b == nil:
		return "not healed"
	case f.Baseline.Rate <= 0:
		return "no pre-fault rate to compare with"
	case !b.Dipped:
		return fmt.Sprintf("no dip below %s of the pre-fault rate in %s", fmtPct(opt.Threshold), fmtSec(b.Watched))
	}
	return fmt.Sprintf("brownout %s below %s (%s → %s, min %s, %s transfers missing)",
		fmtSec(b.Len()), fmtPct(opt.Threshold), tPlus(b.From), tPlus(b.To), fmtRate(b.MinRate), fmtInt(b.Missing))
}

// usersShort is "p50 0.60 s p99 0.90 s max 1.10 s", with the users never
// recovered.
func usersShort(u UserOutage) string {
	if u.Users == 0 {
		return "no users"
	}
	if u.Affected == 0 {
		return fmt.Sprintf("none of %s affected", fmtInt(u.Users))
	}
	s := fmt.Sprintf("p50 %s p99 %s max %s", fmtSec(u.P50), fmtSec(u.P99), fmtSec(u.Max))
	if u.NeverRecovered > 0 {
		s += fmt.Sprintf(", %s never recovered", fmtInt(u.NeverRecovered))
	}
	return s
}

// usersLong adds how many users were affected.
func usersLong(u UserOutage) string {
	if u.Users == 0 || u.Affected == 0 {
		return usersShort(u)
	}
	return fmt.Sprintf("%s of %s affected · %s", fmtInt(u.Affected), fmtInt(u.Users), usersShort(u))
}

func faultSpan(f FaultWindow) string {
	s := fmt.Sprintf("%s at %s", faultName(f), tPlus(f.Start))
	if f.End > f.Start {
		s += fmt.Sprintf(", healed at %s (%s)", tPlus(f.End), fmtSec(f.End-f.Start))
	} else {
		s += ", never healed"
	}
	return s
}

func faultName(f FaultWindow) string {
	return cmpOr(f.Desc, f.Kind, f.ID, "fault")
}

func cmpOr(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func gapText(g Gap) string {
	to := "end of history"
	if !g.Open {
		to = tPlusFine(g.To)
	}
	return fmt.Sprintf("%s (%s → %s)", fmtSec(g.Len()), tPlusFine(g.From), to)
}

// verdict is the one-paragraph verdict, in plain text.
func (r Report) verdict() (word, text string) {
	word = "FAIL"
	if r.Passed {
		word = "PASS"
	}
	var s []string
	where := fmt.Sprintf("Scenario %s", cmpOr(r.Scenario, "(unnamed)"))
	if r.Lab != "" {
		where += " on lab " + r.Lab
	}
	if r.Topology != "" {
		where += " (topology " + r.Topology + ")"
	}
	s = append(s, where+".")
	if main, ok := r.RTO.Main(); ok {
		s = append(s, fmt.Sprintf("Fault: %s.", faultSpan(main.Fault)))
		o, b := main.Outage, main.Baseline
		thr := fmtPct(r.RTO.Options.Threshold)
		switch {
		case b.Rate <= 0:
			s = append(s, "No transfer committed before the fault, so there is no rate to recover to.")
		case !o.Recovered:
			s = append(s, fmt.Sprintf("Transfers did not come back to %s of the pre-fault rate (%s) within the %s observed.",
				thr, fmtRate(b.Rate), fmtSec(o.Observed)))
		default:
			after := ""
			if o.AfterHeal {
				after = ", only once the fault was healed"
			}
			s = append(s, fmt.Sprintf("Transfers were back at %s of the pre-fault rate (%s) %s after the fault took effect%s (RTO).",
				thr, fmtRate(b.Rate), fmtSec(o.RTO), after))
		}
		if o.Succeeded {
			s = append(s, fmt.Sprintf("The first new transfer succeeded after %s; the longest time with no commit was %s.",
				fmtSec(o.FirstSuccess), fmtSec(o.LongestGap.Len())))
		}
		if b := main.Brownout; b != nil && b.Dipped {
			s = append(s, fmt.Sprintf("Healing caused a brownout of %s.", fmtSec(b.Len())))
		}
	}
	if r.moneyChecked() {
		c := r.Check
		s = append(s, fmt.Sprintf("%s transfers acknowledged, %s lost: %s.", fmtInt(c.Acknowledged), fmtInt(c.Lost), rpoText(c)))
	} else {
		s = append(s, "The money was not checked.")
	}
	if n := len(r.Expectations); n > 0 {
		if failed := r.failedExpectations(); len(failed) > 0 {
			var names []string
			for _, e := range failed {
				names = append(names, e.Name)
			}
			s = append(s, fmt.Sprintf("%d of %d expectations not met: %s.", len(failed), n, strings.Join(names, ", ")))
		} else {
			s = append(s, fmt.Sprintf("All %d expectations met.", n))
		}
	}
	return word, strings.Join(s, " ")
}

// table is a header and rows of cells, rendered both in markdown and HTML.
type table struct {
	Head []string
	Rows [][]string
}

// recoveryTable lays out one fault's numbers: from the fault, from the heal.
func recoveryTable(f FaultRTO, opt RTOOptions) table {
	t := table{Head: []string{"", "from the fault (" + tPlus(f.Fault.Start) + ")"}}
	cols := []Recovery{f.Outage}
	if f.Heal != nil {
		t.Head = append(t.Head, "from the heal ("+tPlus(f.Fault.End)+")")
		cols = append(cols, *f.Heal)
	}
	row := func(label string, cell func(i int, r Recovery) string) {
		cells := []string{label}
		for i, r := range cols {
			cells = append(cells, cell(i, r))
		}
		t.Rows = append(t.Rows, cells)
	}
	row("headline RTO", func(i int, r Recovery) string {
		s := rtoText(r, f.Baseline)
		if i == 1 {
			s = healRTOText(r, f.Baseline)
		}
		return strings.TrimPrefix(s, "RTO ")
	})
	row("first success", func(_ int, r Recovery) string { return firstSuccessText(r) })
	row("gap at that moment", func(_ int, r Recovery) string { return gapText(r.GapAtStart) })
	row("longest gap", func(_ int, r Recovery) string { return gapText(r.LongestGap) })
	row("users homed in "+f.Group, func(_ int, r Recovery) string { return usersLong(r.InGroup) })
	row("users elsewhere", func(_ int, r Recovery) string { return usersLong(r.Elsewhere) })
	if f.Heal != nil {
		row("brownout after heal", func(i int, _ Recovery) string {
			if i == 0 {
				return ""
			}
			return brownoutText(f, opt)
		})
	}
	return t
}

// baselineText says what the RTO was measured against.
func baselineText(f FaultRTO, opt RTOOptions) string {
	b := f.Baseline
	s := fmt.Sprintf("Pre-fault rate %s (%s commits over %s → %s)", fmtRate(b.Rate), fmtInt(b.Commits), tPlus(b.From), tPlus(b.To))
	if b.Borrowed != "" {
		s = fmt.Sprintf("Pre-fault rate %s, borrowed from %s", fmtRate(b.Rate), b.Borrowed)
	}
	return s + fmt.Sprintf("; recovered = the first %v bucket from which the rate over every %v window stays ≥ %s of it (%s) for %v.",
		opt.Bucket, b.Window, fmtPct(opt.Threshold), fmtRate(b.ThresholdRate), opt.Hold)
}

// moneyTable counts the transfers; when a named source (the hall) took
// part, a row for it comes before the row of every source together.
func moneyTable(c Result) table {
	t := table{Head: []string{"acknowledged", "lost", "failed", "unknown, applied", "unknown, not applied", "invented"}}
	if len(c.Sources) > 0 {
		t.Head = append([]string{"from"}, t.Head...)
		for _, s := range c.Sources {
			t.Rows = append(t.Rows, []string{s.Source + " (" + plural(s.Opened, "account", "accounts") + ")", fmtInt(s.Acknowledged), fmtInt(s.Lost),
				fmtInt(s.Failed), fmtInt(s.UnknownApplied), fmtInt(s.UnknownNotFound), "–"})
		}
	}
	all := []string{fmtInt(c.Acknowledged), fmtInt(c.Lost), fmtInt(c.Failed), fmtInt(c.UnknownApplied),
		fmtInt(c.UnknownNotFound), fmtInt(c.Invented)}
	if len(c.Sources) > 0 {
		all = append([]string{"all"}, all...)
	}
	t.Rows = append(t.Rows, all)
	return t
}

func checksTable(c Result) table {
	t := table{Head: []string{"", "check", "detail"}}
	for _, ch := range c.Checks {
		t.Rows = append(t.Rows, []string{mark(ch.OK), ch.Name, ch.Detail})
	}
	return t
}

func expectationsTable(es []Expectation) table {
	t := table{Head: []string{"", "expectation", "want", "got"}}
	for _, e := range es {
		t.Rows = append(t.Rows, []string{mark(e.OK), e.Name, e.Want, e.Got})
	}
	return t
}

// event is one line of the fault timeline.
type event struct {
	At   time.Duration
	What string
}

func (r Report) faultEvents() []event {
	var ev []event
	for _, f := range r.Faults {
		where := ""
		if len(f.DCs) > 0 {
			where = " (" + strings.Join(f.DCs, ", ") + ")"
		}
		ev = append(ev, event{f.Start, faultName(f) + " in force" + where})
		if f.End > f.Start {
			ev = append(ev, event{f.End, faultName(f) + " healed"})
		}
	}
	for _, f := range r.RTO.Faults {
		if f.Outage.Recovered && f.Baseline.Rate > 0 {
			ev = append(ev, event{f.Fault.Start + f.Outage.RTO, fmt.Sprintf("transfers back at %s of the pre-fault rate (RTO %s)",
				fmtPct(r.RTO.Options.Threshold), fmtSec(f.Outage.RTO))})
		}
		if b := f.Brownout; b != nil && b.Dipped {
			ev = append(ev, event{b.From, fmt.Sprintf("brownout after heal, %s", fmtSec(b.Len()))})
		}
	}
	slices.SortStableFunc(ev, func(a, b event) int { return cmp.Compare(a.At, b.At) })
	return ev
}

// stepsTable lists the steps at their time on the history's clock.
func stepsTable(steps []StepRecord, from time.Duration) table {
	t := table{Head: []string{"t", "step", "error"}}
	for _, s := range steps {
		t.Rows = append(t.Rows, []string{tPlus(from + s.At), s.What, s.Error})
	}
	return t
}

func mark(ok bool) string {
	if ok {
		return "✓"
	}
	return "✗"
}

func (r Report) markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# fibercut drill: %s\n\n", mdText(cmpOr(r.Scenario, "(unnamed)")))
	if r.Description != "" {
		p("> %s\n\n", mdText(r.Description))
	}
	if meta := r.metaLine(); meta != "" {
		p("%s\n\n", mdText(meta))
	}
	word, text := r.verdict()
	p("## Verdict: %s\n\n**%s.** %s\n\n", word, word, mdText(text))
	if len(r.Expectations) > 0 {
		p("## Expectations\n\n%s\n", mdTable(expectationsTable(r.Expectations)))
	}
	p("## Recovery\n\n")
	if len(r.RTO.Faults) == 0 {
		p("No fault was applied.\n\n")
	}
	for i, f := range r.RTO.Faults {
		p("### Fault %d: %s\n\n", i+1, mdText(faultSpan(f.Fault)))
		p("%s\n", mdTable(recoveryTable(f, r.RTO.Options)))
		p("%s\n\n", mdText(baselineText(f, r.RTO.Options)))
		for _, n := range f.Notes {
			p("- note: %s\n", mdText(n))
		}
		if len(f.Notes) > 0 {
			p("\n")
		}
	}
	p("## Money\n\n")
	if r.moneyChecked() {
		p("%s\n\n%s\n%s\n", mdText(r.moneyText()), mdTable(moneyTable(r.Check)), mdTable(checksTable(r.Check)))
	} else {
		p("Not checked.\n\n")
	}
	p("## Timeline\n\n![transfers per second, errors and latency over time, fault windows shaded](%s)\n\n", ReportPNG)
	if ev := r.faultEvents(); len(ev) > 0 {
		p("### Faults\n\n")
		for _, e := range ev {
			p("- %s: %s\n", tPlus(e.At), mdText(e.What))
		}
		p("\n")
	}
	if len(r.Steps) > 0 {
		p("### Steps\n\n%s\n", mdTable(stepsTable(r.Steps, r.StepsFrom)))
	}
	p("---\n\n```\n%s\n```\n", r.Summary())
	return b.String()
}

// metaLine says where and when the drill ran.
func (r Report) metaLine() string {
	var m []string
	if r.Lab != "" {
		m = append(m, "lab "+r.Lab)
	}
	if r.Topology != "" {
		m = append(m, "topology "+r.Topology)
	}
	m = append(m, r.WAN.String())
	if !r.Started.IsZero() {
		m = append(m, "started "+r.Started.Format("2006-01-02 15:04:05 MST"))
	}
	if r.Duration > 0 {
		m = append(m, "ran "+fmtSec(r.Duration))
	}
	if r.Load.Users > 0 || r.Load.Ops > 0 {
		m = append(m, "load "+r.loadText())
	}
	return strings.Join(m, " · ")
}

// mdText keeps s on one line and from being read as markup where it
// matters most (tables, emphasis).
func mdText(s string) string {
	s = strings.NewReplacer("\r\n", " ", "\n", " ", "|", `\|`, "*", `\*`, "_", `\_`, "<", "&lt;").Replace(s)
	return s
}

func mdTable(t table) string {
	var b strings.Builder
	line := func(cells []string) {
		b.WriteString("|")
		for _, c := range cells {
			b.WriteString(" " + mdText(c) + " |")
		}
		b.WriteString("\n")
	}
	line(t.Head)
	sep := make([]string, len(t.Head))
	for i := range sep {
		sep[i] = "---"
	}
	b.WriteString("|" + strings.Join(sep, "|") + "|\n")
	for _, r := range t.Rows {
		line(r)
	}
	return b.String()
}

// fmtSec prints a duration in seconds: "0.80 s", "12.3 s", "125 s".
func fmtSec(d time.Duration) string {
	s := d.Seconds()
	switch {
	case s == 0:
		return "0 s"
	case s < 10 && s > -10:
		return fmt.Sprintf("%.2f s", s)
	case s < 100 && s > -100:
		return fmt.Sprintf("%.1f s", s)
	}
	return fmt.Sprintf("%.0f s", s)
}

// tPlus is an instant on the history's clock: "t+10.0s".
func tPlus(d time.Duration) string {
	return fmt.Sprintf("t+%.1fs", d.Seconds())
}

// tPlusFine is tPlus to the hundredth: "t+9.99s", for gaps.
func tPlusFine(d time.Duration) string {
	return fmt.Sprintf("t+%.2fs", d.Seconds())
}

func fmtRate(r float64) string {
	if r < 10 {
		return fmt.Sprintf("%.1f/s", r)
	}
	return fmtInt(int(r+0.5)) + "/s"
}

func fmtPct(f float64) string { return fmt.Sprintf("%.0f %%", f*100) }

// fmtInt prints n with thousands separators: 12,345.
func fmtInt(n int) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// ReadReport reads the report.json of a report directory.
func ReadReport(dir string) (Report, error) {
	var rep Report
	path := filepath.Join(dir, ReportJSON)
	b, err := os.ReadFile(path)
	if err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return rep, fmt.Errorf("verify: %s is not a report: %w", path, err)
	}
	return rep, nil
}
