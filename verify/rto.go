package verify

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// RTOOptions tunes [AnalyzeRTO]. A zero field takes its default.
type RTOOptions struct {
	// Bucket is the resolution of every measure: commits are counted in
	// buckets of this length, aligned on the instant measured from.
	// 100 ms by default.
	Bucket time.Duration `json:"bucket_ns"`
	// Window is the length of the rolling window a rate is taken over;
	// 1 s by default, rounded up to whole buckets. At low rates it is
	// widened so that it holds about 20 commits at the pre-fault rate
	// (see [Baseline].Window), or the noise of single commits would decide.
	Window time.Duration `json:"window_ns"`
	// Baseline is how far back from a fault's start the pre-fault rate is
	// taken; 5 s by default.
	Baseline time.Duration `json:"baseline_ns"`
	// Threshold is the fraction of the pre-fault rate that counts as
	// recovered; 0.9 by default.
	Threshold float64 `json:"threshold"`
	// Hold is how long the rate must stay at the threshold to count as
	// recovered; 5 s by default.
	Hold time.Duration `json:"hold_ns"`
	// HealWatch is how long after a heal a brownout is looked for; 10 s
	// by default.
	HealWatch time.Duration `json:"heal_watch_ns"`
}

// DefaultBaseline is how far back from a fault its pre-fault rate is
// taken by default.
const DefaultBaseline = 5 * time.Second

// DefaultRTOOptions are the options the zero [RTOOptions] stands for.
var DefaultRTOOptions = RTOOptions{
	Bucket:    100 * time.Millisecond,
	Window:    time.Second,
	Baseline:  DefaultBaseline,
	Threshold: 0.9,
	Hold:      5 * time.Second,
	HealWatch: 10 * time.Second,
}

// minWindowCommits is how many commits, at the pre-fault rate, a rolling
// window must hold at least; below it the window is widened.
const minWindowCommits = 20

// withDefaults fills zero fields and makes the lengths consistent: Window a
// whole number of buckets, Hold at least one window.
func (o RTOOptions) withDefaults() RTOOptions {
	d := DefaultRTOOptions
	if o.Bucket <= 0 {
		o.Bucket = d.Bucket
	}
	if o.Window <= 0 {
		o.Window = d.Window
	}
	if o.Baseline <= 0 {
		o.Baseline = d.Baseline
	}
	if !(o.Threshold > 0) || o.Threshold > 1 || math.IsNaN(o.Threshold) {
		o.Threshold = d.Threshold
	}
	if o.Hold <= 0 {
		o.Hold = d.Hold
	}
	if o.HealWatch <= 0 {
		o.HealWatch = d.HealWatch
	}
	o.Window = roundUp(o.Window, o.Bucket)
	o.Hold = max(roundUp(o.Hold, o.Bucket), o.Window)
	return o
}

func roundUp(d, unit time.Duration) time.Duration {
	return (d + unit - 1) / unit * unit
}

// RTOReport is the recovery-time analysis of a drill: one [FaultRTO] per
// fault window, in the order given.
type RTOReport struct {
	// Options are those used, defaults filled in.
	Options RTOOptions `json:"options"`
	// HistoryStart is the first transfer's invocation and HistoryEnd the
	// last transfer's completion: nothing is known outside them.
	HistoryStart time.Duration `json:"history_start_ns"`
	HistoryEnd   time.Duration `json:"history_end_ns"`
	Faults       []FaultRTO    `json:"faults"`
}

// Main is the analysis of the drill's main fault, the first fault window;
// false when there was none.
func (r RTOReport) Main() (FaultRTO, bool) {
	if len(r.Faults) == 0 {
		return FaultRTO{}, false
	}
	return r.Faults[0], true
}

// FaultRTO is what one fault did to the transfers.
type FaultRTO struct {
	Fault FaultWindow `json:"fault"`
	// Group names the users homed in the fault's DCs: its cities when it
	// cut whole cities ("hangzhou"), else its DCs ("hz-a, sh-b").
	Group    string   `json:"group"`
	Baseline Baseline `json:"baseline"`
	// Outage is measured from the fault's Start.
	Outage Recovery `json:"outage"`
	// Heal is measured from the fault's End, so that trouble caused by
	// healing is visible; nil when the fault was never healed.
	Heal *Recovery `json:"heal,omitempty"`
	// Brownout is the dip below the threshold after the heal, if any; nil
	// when the fault was never healed.
	Brownout *Brownout `json:"brownout,omitempty"`
	// Notes say why a number is missing or how it was taken.
	Notes []string `json:"notes,omitempty"`
}

// Baseline is the pre-fault rate every recovery is measured against.
type Baseline struct {
	// From and To bound the window the rate was taken over: up to
	// [RTOOptions].Baseline before the fault, no earlier than the first
	// transfer and than the heal of an earlier fault.
	From time.Duration `json:"from_ns"`
	To   time.Duration `json:"to_ns"`
	// Commits is the number of ok transfers completed in [From, To); Rate
	// the same per second.
	Commits int     `json:"commits"`
	Rate    float64 `json:"rate"`
	// ThresholdRate is [RTOOptions].Threshold × Rate: the committed
	// transfers per second that count as recovered.
	ThresholdRate float64 `json:"threshold_rate"`
	// Window is the rolling window rates were taken over: the option's,
	// widened to hold about 20 commits at Rate.
	Window time.Duration `json:"window_ns"`
	// Borrowed names the fault whose baseline this is, when this fault
	// came too soon after another to have its own.
	Borrowed string `json:"borrowed,omitempty"`
}

// Recovery measures how transfers came back after one instant (a fault's
// Start, or its End). Every duration but the gaps' bounds is counted from
// that instant.
type Recovery struct {
	// From is the instant measured from, on the history's clock.
	From time.Duration `json:"from_ns"`
	// Recovered: committed transfers came back to the threshold rate and
	// held it, RTO after From. See [AnalyzeRTO] for the exact rule.
	Recovered bool          `json:"recovered"`
	RTO       time.Duration `json:"rto_ns"`
	// AfterHeal: recovery came only once the fault was healed.
	AfterHeal bool `json:"after_heal,omitempty"`
	// Observed is how long the history went on after From: when not
	// Recovered, the rate did not come back (and hold) within it.
	Observed time.Duration `json:"observed_ns"`
	// FirstSuccess is from From to the completion of the first transfer
	// invoked at or after From that was ok; Succeeded false when none was.
	Succeeded    bool          `json:"succeeded"`
	FirstSuccess time.Duration `json:"first_success_ns"`
	// GapAtStart is the stretch without any commit that From falls in;
	// LongestGap the longest such stretch overlapping the period measured
	// (until the heal, or HealWatch after it).
	GapAtStart Gap `json:"gap_at_start"`
	LongestGap Gap `json:"longest_gap"`
	// InGroup and Elsewhere are the per-user outages of the users homed in
	// the fault's DCs and of the others.
	InGroup   UserOutage `json:"in_group"`
	Elsewhere UserOutage `json:"elsewhere"`
}

// Gap is a stretch with no committed transfer: between two consecutive ok
// completions. Open: no commit ended it before the history did (To is then
// the history's end).
type Gap struct {
	From time.Duration `json:"from_ns"`
	To   time.Duration `json:"to_ns"`
	Open bool          `json:"open,omitempty"`
}

// Len is the gap's length.
func (g Gap) Len() time.Duration { return g.To - g.From }

// UserOutage summarises how long users could not transfer. For one user
// and one instant T: among the user's transfer attempts that completed at
// or after T (and were invoked before the end of the period measured), take
// the first that was not ok; the outage runs from its invocation (or from T
// if it was already in flight) to the completion of the user's next ok
// transfer. A user whose attempts were all ok has an outage of 0; one with
// no ok transfer after the failure never recovered.
type UserOutage struct {
	// Users tried at least one transfer after T; Affected had an attempt
	// fail or stay unknown; NeverRecovered had no ok transfer after that.
	Users          int `json:"users"`
	Affected       int `json:"affected"`
	NeverRecovered int `json:"never_recovered"`
	// Quantiles (nearest rank) of the outage over the users who recovered,
	// unaffected users counting 0.
	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
}

// Brownout is the dip of committed transfers below the threshold rate in
// the HealWatch after a heal.
type Brownout struct {
	// Watched is how long after the heal was looked at (less than
	// HealWatch when the history ended first).
	Watched time.Duration `json:"watched_ns"`
	// Dipped: some rolling window in the watch had a rate below the
	// threshold. MinRate is the lowest rolling rate seen.
	Dipped  bool    `json:"dipped"`
	MinRate float64 `json:"min_rate"`
	// From and To (on the history's clock) bound the longest continuous
	// time below the threshold: the run of buckets with the largest total
	// shortfall of commits against the threshold rate. Set when Dipped.
	From time.Duration `json:"from_ns,omitempty"`
	To   time.Duration `json:"to_ns,omitempty"`
	// Missing is the shortfall over that run, in commits against the
	// pre-fault rate.
	Missing int `json:"missing,omitempty"`
}

// Len is the brownout's duration, 0 when there was none.
func (b Brownout) Len() time.Duration { return b.To - b.From }

// AnalyzeRTO measures, for each fault window, how long transfers could not
// be made. Only transfer operations count; a commit is an ok transfer at
// its Complete time. Failed and unknown outcomes are not commits. All
// times are on the history's one clock and measured from the fault's Start,
// the moment it was in force.
//
// # Pre-fault rate
//
// Commits per second over [Start−Baseline, Start), no earlier than the
// first transfer's invocation or the heal of an earlier fault. A fault
// left with less than one rolling window of its own borrows the previous
// fault's baseline.
//
// # Headline RTO
//
// Commits are counted in buckets aligned on Start; a rolling rate is the
// commits of the Window-long span starting at a bucket, per second.
// RTO = t − Start for the earliest bucket start t ≥ Start such that
//
//  1. every rolling rate whose span lies in [t, t+Hold) is at least the
//     threshold rate, Threshold × the pre-fault rate;
//  2. the bucket at t holds at least one commit; and
//  3. over every prefix [t, t+j×Bucket) of the first window, the commits
//     reach the threshold rate × the prefix's length, less a tolerance of
//     max(1, (1−Threshold) × pre-fault rate × Bucket) commits.
//
// With the defaults: the first 100 ms bucket from which the rate over
// every 1 s span stays at 90 % of the pre-fault rate for 5 s. Rolling
// rates, not single buckets, keep the noise of a bucket from deciding;
// conditions 2 and 3 keep a first window that still overlaps the end of
// the outage, yet reaches the threshold thanks to what follows, from
// pulling t early. The answer is exact to about one bucket. When the
// history ends before such a t and its Hold, the fault is not Recovered
// and Observed says how long was watched.
//
// # Other numbers
//
// First success: the completion of the first ok transfer invoked at or
// after Start (one invoked before could have committed before the cut).
// Gaps: between consecutive commits. Per-user outage: see [UserOutage],
// split by the user's home DC before Start. The same numbers are taken
// from the fault's End, with a [Brownout] over the HealWatch after it.
func AnalyzeRTO(ops []Op, faults []FaultWindow, opt RTOOptions) RTOReport {
	opt = opt.withDefaults()
	h := newRTOHistory(ops)
	rep := RTOReport{Options: opt, HistoryStart: h.start, HistoryEnd: h.end}
	for i, f := range faults {
		var first *FaultRTO
		if i > 0 {
			first = &rep.Faults[0]
		}
		rep.Faults = append(rep.Faults, h.analyze(f, faults, first, opt))
	}
	return rep
}

// rtoHistory is the part of a history the analysis reads.
type rtoHistory struct {
	commits    []time.Duration // ok transfer completions, sorted
	start, end time.Duration   // first transfer invocation, last completion
	users      map[int][]*Op   // transfers by user, in order of completion
	userIDs    []int
	transfers  []*Op // sorted by invocation
}

func newRTOHistory(ops []Op) *rtoHistory {
	// It points into ops rather than copying them: an Op is large, and
	// the dashboard builds this once a second.
	h := &rtoHistory{users: map[int][]*Op{}, transfers: make([]*Op, 0, len(ops))}
	first := true
	for i := range ops {
		op := &ops[i]
		if op.Kind != KindTransfer {
			continue
		}
		h.transfers = append(h.transfers, op)
		if op.Outcome == OK {
			h.commits = append(h.commits, op.Complete)
		}
		if first || op.Invoke < h.start {
			h.start = op.Invoke
		}
		if first || op.Complete > h.end {
			h.end = op.Complete
		}
		first = false
		h.users[op.User] = append(h.users[op.User], op)
	}
	slices.Sort(h.commits)
	slices.SortStableFunc(h.transfers, func(a, b *Op) int { return cmp.Compare(a.Invoke, b.Invoke) })
	for u, l := range h.users {
		slices.SortStableFunc(l, func(a, b *Op) int {
			return cmp.Or(cmp.Compare(a.Complete, b.Complete), cmp.Compare(a.Invoke, b.Invoke))
		})
		h.userIDs = append(h.userIDs, u)
	}
	slices.Sort(h.userIDs)
	return h
}

// countIn is the number of commits in [from, to).
func (h *rtoHistory) countIn(from, to time.Duration) int {
	lo := sort.Search(len(h.commits), func(i int) bool { return h.commits[i] >= from })
	hi := sort.Search(len(h.commits), func(i int) bool { return h.commits[i] >= to })
	return hi - lo
}

// analyze measures one fault; first is the analysis of the first fault,
// whose baseline a later fault may borrow (nil for the first itself).
func (h *rtoHistory) analyze(f FaultWindow, all []FaultWindow, first *FaultRTO, opt RTOOptions) FaultRTO {
	r := FaultRTO{Fault: f, Group: f.group()}
	r.Baseline = h.baseline(f, all, opt)
	if r.Baseline.To-r.Baseline.From < r.Baseline.Window && first != nil && first.Baseline.Rate > 0 {
		b := first.Baseline
		b.Borrowed = first.Fault.ID
		if b.Borrowed == "" {
			b.Borrowed = "the first fault"
		}
		r.Baseline = b
		r.Notes = append(r.Notes, fmt.Sprintf("too little history before this fault of its own; pre-fault rate of %s used", b.Borrowed))
	}
	if r.Baseline.Rate == 0 {
		r.Notes = append(r.Notes, "no transfer committed before the fault: no pre-fault rate, so no RTO")
	}
	healed := f.End > f.Start
	horizon := h.end
	if healed {
		horizon = f.End
	}
	r.Outage = h.recovery(f, f.Start, horizon, r.Baseline, opt)
	if r.Outage.Recovered && healed && f.Start+r.Outage.RTO >= f.End {
		r.Outage.AfterHeal = true
	}
	if healed {
		heal := h.recovery(f, f.End, min(f.End+opt.HealWatch, h.end), r.Baseline, opt)
		r.Heal = &heal
		b := h.brownout(f.End, r.Baseline, opt)
		r.Brownout = &b
	}
	return r
}

// group names the users homed in the fault's DCs.
func (f FaultWindow) group() string {
	if len(f.Cities) > 0 {
		return strings.Join(f.Cities, ", ")
	}
	if len(f.DCs) > 0 {
		return strings.Join(f.DCs, ", ")
	}
	return "the faulted DCs"
}

func (h *rtoHistory) baseline(f FaultWindow, all []FaultWindow, opt RTOOptions) Baseline {
	from := max(f.Start-opt.Baseline, h.start)
	for _, g := range all {
		if g.Start < f.Start && g.End > g.Start && g.End > from {
			from = g.End
		}
		if g.Start < f.Start && (g.End <= g.Start || g.End > f.Start) {
			from = f.Start // an earlier fault still in force: no clean baseline
		}
	}
	from = min(from, f.Start)
	b := Baseline{From: from, To: f.Start, Window: opt.Window}
	if b.To > b.From {
		b.Commits = h.countIn(b.From, b.To)
		b.Rate = float64(b.Commits) / (b.To - b.From).Seconds()
	}
	b.ThresholdRate = opt.Threshold * b.Rate
	if b.Rate > 0 {
		need := time.Duration(minWindowCommits / b.Rate * float64(time.Second))
		b.Window = min(max(opt.Window, roundUp(need, opt.Bucket)), opt.Hold)
	}
	return b
}

// buckets counts commits in buckets of opt.Bucket from t up to the last
// whole bucket before the history's end.
func (h *rtoHistory) buckets(t time.Duration, opt RTOOptions) []int {
	if h.end <= t {
		return nil
	}
	n := int((h.end - t) / opt.Bucket)
	c := make([]int, n)
	i := sort.Search(len(h.commits), func(i int) bool { return h.commits[i] >= t })
	for ; i < len(h.commits); i++ {
		k := int((h.commits[i] - t) / opt.Bucket)
		if k >= n {
			break
		}
		c[k]++
	}
	return c
}

// rolling returns, for each bucket k, the commits in buckets [k, k+w), for
// every k whose span fits.
func rolling(c []int, w int) []int {
	if len(c) < w {
		return nil
	}
	r := make([]int, len(c)-w+1)
	s := 0
	for i := range w {
		s += c[i]
	}
	r[0] = s
	for k := 1; k < len(r); k++ {
		s += c[k+w-1] - c[k-1]
		r[k] = s
	}
	return r
}

// atThreshold: a span of window holding n commits reaches the threshold
// rate. A small tolerance keeps float rounding from failing an exact hit.
func atThreshold(n int, window time.Duration, b Baseline) bool {
	return float64(n) >= b.ThresholdRate*window.Seconds()-1e-9
}

func (h *rtoHistory) recovery(f FaultWindow, t, horizon time.Duration, b Baseline, opt RTOOptions) Recovery {
	r := Recovery{From: t, Observed: max(0, h.end-t)}
	if b.Rate > 0 {
		c := h.buckets(t, opt)
		w := int(b.Window / opt.Bucket)
		hold := int(opt.Hold / opt.Bucket)
		roll := rolling(c, w)
		// run[k]: how many consecutive rolling spans from k reach the
		// threshold.
		run := make([]int, len(roll)+1)
		for k := len(roll) - 1; k >= 0; k-- {
			if atThreshold(roll[k], b.Window, b) {
				run[k] = run[k+1] + 1
			}
		}
		// Commits from t must not fall behind the threshold rate by more
		// than slack over any prefix of the first window.
		perBucket := b.ThresholdRate * opt.Bucket.Seconds()
		slack := max(1, (1-opt.Threshold)*b.Rate*opt.Bucket.Seconds())
		caughtUp := func(k int) bool {
			n := 0
			for j := range w {
				n += c[k+j]
				if float64(n) < perBucket*float64(j+1)-slack-1e-9 {
					return false
				}
			}
			return true
		}
		for k := 0; k+hold <= len(c); k++ {
			if c[k] > 0 && run[k] >= hold-w+1 && caughtUp(k) {
				r.Recovered, r.RTO = true, time.Duration(k)*opt.Bucket
				break
			}
		}
	}
	for _, op := range h.transfers[sort.Search(len(h.transfers), func(i int) bool { return h.transfers[i].Invoke >= t }):] {
		if op.Outcome == OK && (!r.Succeeded || op.Complete-t < r.FirstSuccess) {
			r.Succeeded, r.FirstSuccess = true, op.Complete-t
		}
	}
	r.GapAtStart, r.LongestGap = h.gaps(t, horizon)
	r.InGroup, r.Elsewhere = h.userOutages(f, t, horizon)
	return r
}

// gaps returns the gap without commits that t falls in, and the longest gap
// overlapping [t, horizon].
func (h *rtoHistory) gaps(t, horizon time.Duration) (at, longest Gap) {
	c := h.commits
	i := sort.Search(len(c), func(i int) bool { return c[i] >= t })
	gap := func(j int) Gap { // the gap ending with commit j (len(c): the open one)
		g := Gap{From: h.start, To: h.end, Open: true}
		if j > 0 {
			g.From = c[j-1]
		}
		if j < len(c) {
			g.To, g.Open = c[j], false
		}
		return g
	}
	at = gap(i)
	longest = at
	for j := i + 1; j <= len(c); j++ {
		g := gap(j)
		if g.From > horizon {
			break
		}
		if g.Len() > longest.Len() {
			longest = g
		}
	}
	return at, longest
}

// home is the user's home DC as it was before t.
func home(l []*Op, t time.Duration) string {
	dc := ""
	for _, op := range l {
		if op.HomeDC == "" {
			continue
		}
		if op.Invoke < t || dc == "" {
			dc = op.HomeDC
		}
	}
	return dc
}

func (h *rtoHistory) userOutages(f FaultWindow, t, horizon time.Duration) (in, out UserOutage) {
	var inD, outD []time.Duration
	for _, u := range h.userIDs {
		l := h.users[u]
		tried, failed := false, -1
		for i, op := range l {
			if op.Complete < t || op.Invoke >= horizon {
				continue
			}
			tried = true
			if op.Outcome != OK {
				failed = i
				break
			}
		}
		if !tried {
			continue
		}
		s, d := &out, &outD
		if slices.Contains(f.DCs, home(l, t)) {
			s, d = &in, &inD
		}
		s.Users++
		if failed < 0 {
			*d = append(*d, 0)
			continue
		}
		s.Affected++
		begin := max(t, l[failed].Invoke)
		recovered := false
		for _, op := range l[failed+1:] {
			if op.Outcome == OK && op.Complete > l[failed].Complete {
				*d = append(*d, op.Complete-begin)
				recovered = true
				break
			}
		}
		if !recovered {
			s.NeverRecovered++
		}
	}
	in.P50, in.P99, in.Max = quantiles(inD)
	out.P50, out.P99, out.Max = quantiles(outD)
	return in, out
}

// quantiles sorts d and returns its nearest-rank p50, p99 and max.
func quantiles(d []time.Duration) (p50, p99, mx time.Duration) {
	if len(d) == 0 {
		return 0, 0, 0
	}
	slices.Sort(d)
	q := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(d)))) - 1
		return d[max(0, min(i, len(d)-1))]
	}
	return q(0.50), q(0.99), d[len(d)-1]
}

func (h *rtoHistory) brownout(t time.Duration, b Baseline, opt RTOOptions) Brownout {
	c := h.buckets(t, opt)
	c = c[:min(len(c), int(opt.HealWatch/opt.Bucket))]
	bo := Brownout{Watched: time.Duration(len(c)) * opt.Bucket}
	if b.Rate <= 0 || len(c) == 0 {
		return bo
	}
	w := int(b.Window / opt.Bucket)
	bo.MinRate = math.Inf(1)
	for _, n := range rolling(c, w) {
		bo.MinRate = min(bo.MinRate, float64(n)/b.Window.Seconds())
		if !atThreshold(n, b.Window, b) {
			bo.Dipped = true
		}
	}
	if math.IsInf(bo.MinRate, 1) { // watched less than one window
		bo.MinRate = 0
		return bo
	}
	if !bo.Dipped {
		return bo
	}
	// The run of buckets with the largest total shortfall against the
	// threshold (maximum-sum subarray): noise on either side, a bucket a
	// little above or below, does not cut or stretch it much.
	per := b.ThresholdRate * opt.Bucket.Seconds()
	best, bestFrom, bestTo := 0.0, 0, 0
	sum, from := 0.0, 0
	for k, n := range c {
		if sum <= 0 {
			sum, from = 0, k
		}
		sum += per - float64(n)
		if sum > best {
			best, bestFrom, bestTo = sum, from, k+1
		}
	}
	if bestTo > bestFrom {
		bo.From = t + time.Duration(bestFrom)*opt.Bucket
		bo.To = t + time.Duration(bestTo)*opt.Bucket
		missing := 0.0
		for _, n := range c[bestFrom:bestTo] {
			missing += b.Rate*opt.Bucket.Seconds() - float64(n)
		}
		bo.Missing = max(0, int(math.Round(missing)))
	}
	return bo
}

// Bucket is one step of a [Timeline]: the transfers that completed in
// [Start, Start+bucket).
type Bucket struct {
	Start     time.Duration `json:"start_ns"`
	Committed int           `json:"committed"`
	Failed    int           `json:"failed"`
	Unknown   int           `json:"unknown"`
	// P50 and P99 are the latencies (nearest rank) of the ok transfers
	// completing in the bucket; 0 when none did.
	P50 time.Duration `json:"p50_ns,omitempty"`
	P99 time.Duration `json:"p99_ns,omitempty"`
}

// Timeline counts transfers by outcome in buckets of the given length
// (100 ms when not positive) by completion time, from the bucket of the
// first transfer's invocation to that of the last completion, empty
// buckets included. It is what the report's charts draw.
func Timeline(ops []Op, bucket time.Duration) []Bucket {
	if bucket <= 0 {
		bucket = DefaultRTOOptions.Bucket
	}
	h := newRTOHistory(ops)
	if len(h.transfers) == 0 {
		return nil
	}
	first := h.start / bucket // times since the base instant are never negative
	last := h.end / bucket
	out := make([]Bucket, last-first+1)
	lat := make([][]time.Duration, len(out))
	for i := range out {
		out[i].Start = (first + time.Duration(i)) * bucket
	}
	for _, op := range h.transfers {
		k := int(op.Complete/bucket - first)
		if k < 0 || k >= len(out) {
			continue
		}
		switch op.Outcome {
		case OK:
			out[k].Committed++
			lat[k] = append(lat[k], op.Latency())
		case Fail:
			out[k].Failed++
		default:
			out[k].Unknown++
		}
	}
	for k := range out {
		out[k].P50, out[k].P99, _ = quantiles(lat[k])
	}
	return out
}
