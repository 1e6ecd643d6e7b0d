package verify

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

const (
	ms  = time.Millisecond
	sec = time.Second
)

// synth describes a synthetic load: users take turns sending transfers at
// a steady rate, one every 1/rate, for dur; outcome decides each one.
type synth struct {
	users   int
	rate    float64
	dur     time.Duration
	latency time.Duration
	// jitter, when set, adds a random 0..jitter to each latency (seeded).
	jitter time.Duration
	// home is user u's home DC; by default even users are in hz-a and
	// odd ones in sh-a.
	home func(u int) string
	// outcome of a transfer by user u invoked at t, and its latency when
	// not the default; ok with the default latency when nil.
	outcome func(u int, t time.Duration) (Outcome, time.Duration)
}

func (s synth) ops() []Op {
	if s.users == 0 {
		s.users = 50
	}
	if s.latency == 0 {
		s.latency = 5 * ms
	}
	if s.home == nil {
		s.home = func(u int) string {
			if u%2 == 0 {
				return "hz-a"
			}
			return "sh-a"
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	interval := time.Duration(float64(sec) / s.rate)
	var ops []Op
	// Opening accounts comes first and does not count.
	for u := range s.users {
		ops = append(ops, Op{Seq: int64(len(ops) + 1), User: u, Kind: KindOpen, Invoke: 0, Complete: 10 * ms, Outcome: OK, HomeDC: s.home(u)})
	}
	for k := 0; time.Duration(k)*interval < s.dur; k++ {
		t := sec + time.Duration(k)*interval // transfers start at t=1s
		u := k % s.users
		out, lat := OK, s.latency
		if s.jitter > 0 {
			lat += time.Duration(rng.Int64N(int64(s.jitter)))
		}
		if s.outcome != nil {
			o, l := s.outcome(u, t)
			out = o
			if l > 0 {
				lat = l
			}
		}
		ops = append(ops, Op{Seq: int64(len(ops) + 1), User: u, Kind: KindTransfer, Key: fmt.Sprintf("k%d", k),
			Attempt: 1, Invoke: t, Complete: t + lat, Outcome: out, HomeDC: s.home(u)})
		// Reads never count.
		if k%7 == 0 {
			ops = append(ops, Op{Seq: int64(len(ops) + 1), User: u, Kind: KindRead, Invoke: t, Complete: t + ms, Outcome: OK})
		}
	}
	return ops
}

// outageBetween fails (503, fast) every transfer invoked in [from, to).
func outageBetween(from, to time.Duration) func(int, time.Duration) (Outcome, time.Duration) {
	return func(_ int, t time.Duration) (Outcome, time.Duration) {
		if t >= from && t < to {
			return Fail, 0
		}
		return OK, 0
	}
}

var cutHangzhou = FaultWindow{ID: "f1", Desc: "isolate city hangzhou", Kind: "isolate-city",
	DCs: []string{"hz-a", "hz-b"}, Cities: []string{"hangzhou"}, Start: 10 * sec, End: 20 * sec}

func near(t *testing.T, what string, got, want, tol time.Duration) {
	t.Helper()
	if got < want-tol || got > want+tol {
		t.Errorf("%s = %v, want %v ± %v", what, got, want, tol)
	}
}

func mainFault(t *testing.T, rep RTOReport) FaultRTO {
	t.Helper()
	f, ok := rep.Main()
	if !ok {
		t.Fatal("no fault analysed")
	}
	return f
}

func TestRTOTotalOutage(t *testing.T) {
	ops := synth{rate: 100, dur: 30 * sec, outcome: outageBetween(10*sec, 10800*ms)}.ops()
	rep := AnalyzeRTO(ops, []FaultWindow{cutHangzhou}, RTOOptions{})
	f := mainFault(t, rep)
	if f.Baseline.Rate < 99 || f.Baseline.Rate > 101 {
		t.Errorf("pre-fault rate %.1f/s, want 100", f.Baseline.Rate)
	}
	if f.Baseline.From != 5*sec || f.Baseline.To != 10*sec || f.Baseline.Window != sec {
		t.Errorf("baseline %+v", f.Baseline)
	}
	o := f.Outage
	if !o.Recovered || o.AfterHeal {
		t.Fatalf("not recovered: %+v", o)
	}
	near(t, "RTO", o.RTO, 800*ms, 100*ms)
	if !o.Succeeded {
		t.Fatal("no first success")
	}
	near(t, "first success", o.FirstSuccess, 805*ms, ms)
	near(t, "gap at start", o.GapAtStart.Len(), 810*ms, ms)
	if o.GapAtStart.From >= 10*sec || o.GapAtStart.To <= 10800*ms {
		t.Errorf("gap at start %+v does not span the outage", o.GapAtStart)
	}
	if o.LongestGap != o.GapAtStart {
		t.Errorf("longest gap %+v, want the gap at start %+v", o.LongestGap, o.GapAtStart)
	}
	// Every user sends every 0.5 s, so all of them met the 0.8 s outage,
	// for 0.5–1 s each.
	for name, u := range map[string]UserOutage{"hangzhou": o.InGroup, "elsewhere": o.Elsewhere} {
		if u.Users != 25 || u.Affected != 25 || u.NeverRecovered != 0 {
			t.Errorf("%s users %+v, want 25 all affected", name, u)
		}
		if u.P50 < 500*ms || u.Max > 1100*ms || u.P50 > u.P99 || u.P99 > u.Max {
			t.Errorf("%s outage %+v, want between 0.5 and 1.1 s", name, u)
		}
	}
	if f.Heal == nil || f.Brownout == nil {
		t.Fatal("healed fault without heal analysis")
	}
	if !f.Heal.Recovered || f.Heal.RTO != 0 || f.Heal.InGroup.Affected != 0 {
		t.Errorf("clean heal measured %+v", *f.Heal)
	}
	if f.Brownout.Dipped || f.Brownout.Len() != 0 || f.Brownout.Watched != 10*sec {
		t.Errorf("brownout on a clean heal: %+v", *f.Brownout)
	}
	if rep.HistoryStart != sec || rep.HistoryEnd < 30*sec {
		t.Errorf("history [%v, %v]", rep.HistoryStart, rep.HistoryEnd)
	}
}

// Jitter and group commit (completions clumped on 20 ms boundaries) must not
// move the RTO by more than a bucket.
func TestRTONoisyCommits(t *testing.T) {
	for _, rate := range []float64{10, 100, 1000} {
		t.Run(fmt.Sprint(rate), func(t *testing.T) {
			s := synth{rate: rate, dur: 30 * sec, jitter: 40 * ms, outcome: outageBetween(10*sec, 10800*ms)}
			ops := s.ops()
			for i := range ops {
				ops[i].Complete = roundUp(ops[i].Complete, 20*ms)
			}
			f := mainFault(t, AnalyzeRTO(ops, []FaultWindow{cutHangzhou}, RTOOptions{}))
			if !f.Outage.Recovered {
				t.Fatalf("not recovered: %+v", f.Outage)
			}
			near(t, "RTO", f.Outage.RTO, 850*ms, 100*ms)
			if rate == 10 && f.Baseline.Window != 2*sec {
				t.Errorf("window at 10/s: %v, want widened to 2s", f.Baseline.Window)
			}
			if f.Brownout.Dipped {
				t.Errorf("noise taken for a brownout: %+v", *f.Brownout)
			}
		})
	}
}

func TestRTOSplitByHome(t *testing.T) {
	// Users homed in hangzhou fail for 2 s; the others never notice.
	s := synth{rate: 100, dur: 30 * sec, outcome: func(u int, t time.Duration) (Outcome, time.Duration) {
		if u%2 == 0 && t >= 10*sec && t < 12*sec {
			return Unknown, 0
		}
		return OK, 0
	}}
	f := mainFault(t, AnalyzeRTO(s.ops(), []FaultWindow{cutHangzhou}, RTOOptions{}))
	if f.Group != "hangzhou" {
		t.Errorf("group %q", f.Group)
	}
	in, out := f.Outage.InGroup, f.Outage.Elsewhere
	if in.Users != 25 || in.Affected != 25 || in.NeverRecovered != 0 {
		t.Errorf("hangzhou users %+v", in)
	}
	near(t, "hangzhou p50", in.P50, 2*sec, 500*ms)
	near(t, "hangzhou max", in.Max, 2005*ms, 10*ms)
	if out.Users != 25 || out.Affected != 0 || out.Max != 0 {
		t.Errorf("users elsewhere %+v, want 25 unaffected", out)
	}
	// Half the rate is gone for 2 s: below 90 %, so the RTO is the 2 s.
	near(t, "RTO", f.Outage.RTO, 2*sec, 100*ms)
	// Some commits never stopped.
	if f.Outage.FirstSuccess > 20*ms || f.Outage.LongestGap.Len() > 30*ms {
		t.Errorf("first success %v, longest gap %v: the other city kept committing", f.Outage.FirstSuccess, f.Outage.LongestGap)
	}
}

func TestRTOBrownoutOnHeal(t *testing.T) {
	s := synth{rate: 100, dur: 35 * sec, outcome: func(u int, t time.Duration) (Outcome, time.Duration) {
		switch {
		case t >= 10*sec && t < 10800*ms:
			return Fail, 0
		case t >= 20*sec && t < 20600*ms:
			return Unknown, 2 * sec // timeouts: complete later, never commits
		}
		return OK, 0
	}}
	f := mainFault(t, AnalyzeRTO(s.ops(), []FaultWindow{cutHangzhou}, RTOOptions{}))
	near(t, "RTO", f.Outage.RTO, 800*ms, 100*ms)
	b := f.Brownout
	if b == nil || !b.Dipped {
		t.Fatalf("brownout on heal not detected: %+v", b)
	}
	near(t, "brownout start", b.From, 20*sec, 100*ms)
	near(t, "brownout", b.Len(), 600*ms, 100*ms)
	if b.MinRate > 50 || b.Missing < 50 || b.Missing > 70 {
		t.Errorf("brownout %+v: want min rate ≤ 50/s and about 60 missing", *b)
	}
	near(t, "RTO after heal", f.Heal.RTO, 600*ms, 100*ms)
	near(t, "longest gap after heal", f.Heal.LongestGap.Len(), 610*ms, 10*ms)
	if f.Heal.InGroup.Affected != 25 {
		t.Errorf("users after heal %+v", f.Heal.InGroup)
	}
}

func TestRTONotRecovered(t *testing.T) {
	// After the cut, half of the transfers keep failing: 50 % < 90 %.
	s := synth{rate: 100, dur: 30 * sec, outcome: func(u int, t time.Duration) (Outcome, time.Duration) {
		if t >= 10*sec && u%2 == 0 {
			return Fail, 0
		}
		return OK, 0
	}}
	f := cutHangzhou
	f.End = 0 // never healed
	r := mainFault(t, AnalyzeRTO(s.ops(), []FaultWindow{f}, RTOOptions{}))
	if r.Outage.Recovered {
		t.Fatalf("recovered at %v with half the rate", r.Outage.RTO)
	}
	near(t, "observed", r.Outage.Observed, 21*sec, 10*ms)
	if r.Heal != nil || r.Brownout != nil {
		t.Error("heal analysed for a fault never healed")
	}
	if r.Outage.InGroup.NeverRecovered != 25 || r.Outage.Elsewhere.Affected != 0 {
		t.Errorf("users %+v / %+v", r.Outage.InGroup, r.Outage.Elsewhere)
	}

	// A full outage to the end of the history: no success at all.
	s.outcome = outageBetween(10*sec, time.Hour)
	r = mainFault(t, AnalyzeRTO(s.ops(), []FaultWindow{f}, RTOOptions{}))
	if r.Outage.Recovered || r.Outage.Succeeded || !r.Outage.LongestGap.Open {
		t.Errorf("outage to the end: %+v", r.Outage)
	}
}

func TestRTORecoveredOnlyAfterHeal(t *testing.T) {
	ops := synth{rate: 100, dur: 30 * sec, outcome: outageBetween(10*sec, 20*sec)}.ops()
	f := mainFault(t, AnalyzeRTO(ops, []FaultWindow{cutHangzhou}, RTOOptions{}))
	if !f.Outage.Recovered || !f.Outage.AfterHeal {
		t.Errorf("outage %+v, want recovered after heal", f.Outage)
	}
	near(t, "RTO", f.Outage.RTO, 10*sec, 100*ms)
	near(t, "longest gap", f.Outage.LongestGap.Len(), 10*sec, 20*ms)
}

func TestRTOTwoFaults(t *testing.T) {
	ops := synth{rate: 100, dur: 40 * sec, outcome: func(u int, t time.Duration) (Outcome, time.Duration) {
		if (t >= 10*sec && t < 10800*ms) || (t >= 20500*ms && t < 21*sec) {
			return Fail, 0
		}
		return OK, 0
	}}.ops()
	second := FaultWindow{ID: "f2", Desc: "cut hz-a", DCs: []string{"hz-a"}, Start: 20500 * ms, End: 30 * sec}
	rep := AnalyzeRTO(ops, []FaultWindow{cutHangzhou, second}, RTOOptions{})
	if len(rep.Faults) != 2 {
		t.Fatalf("%d faults", len(rep.Faults))
	}
	f2 := rep.Faults[1]
	// Only 0.5 s after the first heal: the first baseline is borrowed.
	if f2.Baseline.Borrowed != "f1" || len(f2.Notes) == 0 || f2.Baseline.Rate != rep.Faults[0].Baseline.Rate {
		t.Errorf("second baseline %+v notes %q", f2.Baseline, f2.Notes)
	}
	near(t, "second RTO", f2.Outage.RTO, 500*ms, 100*ms)
	if f2.Group != "hz-a" {
		t.Errorf("group %q", f2.Group)
	}
}

func TestRTONoBaseline(t *testing.T) {
	ops := synth{rate: 100, dur: 5 * sec}.ops()
	f := cutHangzhou
	f.Start, f.End = 500*ms, 0 // before any transfer
	r := mainFault(t, AnalyzeRTO(ops, []FaultWindow{f}, RTOOptions{}))
	if r.Outage.Recovered || len(r.Notes) == 0 || r.Baseline.Rate != 0 {
		t.Errorf("no baseline: %+v", r)
	}
	if rep := AnalyzeRTO(nil, []FaultWindow{cutHangzhou}, RTOOptions{}); rep.Faults[0].Outage.Recovered {
		t.Error("recovered in an empty history")
	}
	if rep := AnalyzeRTO(ops, nil, RTOOptions{}); len(rep.Faults) != 0 || rep.Options != DefaultRTOOptions {
		t.Errorf("no faults: %+v", rep)
	}
}

func TestTimeline(t *testing.T) {
	ops := []Op{
		{Kind: KindOpen, Invoke: 0, Complete: ms, Outcome: OK},
		{Kind: KindTransfer, Invoke: 1000 * ms, Complete: 1010 * ms, Outcome: OK},
		{Kind: KindTransfer, Invoke: 1020 * ms, Complete: 1050 * ms, Outcome: OK},
		{Kind: KindTransfer, Invoke: 1030 * ms, Complete: 1090 * ms, Outcome: OK},
		{Kind: KindTransfer, Invoke: 1050 * ms, Complete: 1080 * ms, Outcome: Fail},
		{Kind: KindTransfer, Invoke: 1100 * ms, Complete: 1350 * ms, Outcome: Unknown},
		{Kind: KindTransfer, Invoke: 1200 * ms, Complete: 1320 * ms, Outcome: OK},
		{Kind: KindRead, Invoke: 1200 * ms, Complete: 1250 * ms, Outcome: OK},
	}
	got := Timeline(ops, 100*ms)
	want := []Bucket{
		{Start: 1000 * ms, Committed: 3, Failed: 1, P50: 30 * ms, P99: 60 * ms},
		{Start: 1100 * ms},
		{Start: 1200 * ms},
		{Start: 1300 * ms, Committed: 1, Unknown: 1, P50: 120 * ms, P99: 120 * ms},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("timeline\n got %+v\nwant %+v", got, want)
	}
	if Timeline(ops[:1], 0) != nil {
		t.Error("timeline of a history without transfers")
	}
	tl := Timeline(synth{rate: 100, dur: 10 * sec}.ops(), 0)
	if len(tl) != 100 || tl[0].Start != sec || tl[5].Committed != 10 {
		t.Errorf("default bucket: %d buckets, first %+v, sixth %+v", len(tl), tl[0], tl[5])
	}
}
