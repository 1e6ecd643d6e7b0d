package tui

import (
	"sort"
	"sync"
	"time"

	"github.com/fibercut/fibercut/drill"
	"github.com/fibercut/fibercut/verify"
)

// Scoreboard gathers a drill as it happens (the load's operations, the
// faults in force and healed, the money samples, the news) and computes
// what the dashboard shows with verify's functions. It is safe for
// concurrent use: AddOp is called from the load's goroutines, Event from
// the drill's event feed.
type Scoreboard struct {
	mu      sync.Mutex
	ops     []verify.Op
	last    time.Duration // the latest completion seen: "now" on the history's clock
	faults  []verify.FaultWindow
	money   *drill.MoneySample
	log     []string
	keep    int
	verdict *verify.Report
}

// NewScoreboard returns an empty scoreboard keeping the last logLines
// lines of news.
func NewScoreboard(logLines int) *Scoreboard {
	return &Scoreboard{keep: max(logLines, 1)}
}

// AddOp records one operation of the load (drill.Options.OnOp).
func (s *Scoreboard) AddOp(op verify.Op) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ops = append(s.ops, op)
	s.last = max(s.last, op.Complete)
}

// Event takes one of the drill's events (drill.Options.Events).
func (s *Scoreboard) Event(e drill.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch e.Kind {
	case drill.EventProgress:
		return // the counts come from the operations themselves
	case drill.EventFaultInForce:
		if e.Fault != nil {
			s.faults = append(s.faults, *e.Fault)
		}
	case drill.EventFaultHealed:
		if e.Fault != nil {
			for i := range s.faults {
				if s.faults[i].ID == e.Fault.ID {
					s.faults[i].End = e.Fault.End
				}
			}
		}
	case drill.EventMoney:
		s.money = e.Money
		if e.Money != nil && e.Money.Readable && e.Money.OK {
			return // a money check that holds is not news
		}
	case drill.EventVerdict:
		s.verdict = e.Report
	}
	if e.Message != "" {
		s.log = append(s.log, e.Message)
		if len(s.log) > s.keep {
			s.log = s.log[len(s.log)-s.keep:]
		}
	}
}

// Stopwatch is the RTO stopwatch of the drill's first fault.
type Stopwatch struct {
	// Started: the fault took effect (the watch starts then, not when it
	// was asked for).
	Started bool
	// Elapsed is the time since the fault took effect, on the history's
	// clock; once Stopped, the RTO.
	Elapsed time.Duration
	// Stopped: committed transfers came back to 90 % of the pre-fault
	// rate and held it, by verify's rule; the report's headline RTO is
	// Elapsed.
	Stopped bool
	// FirstSuccess is the time to the first committed transfer after the
	// fault took effect, when HasFirst.
	FirstSuccess time.Duration
	HasFirst     bool
	// Baseline is the pre-fault rate of committed transfers per second
	// that verify measures recovery against; 0 until it has one.
	Baseline float64
}

// Snapshot is the scoreboard at one instant: a screen is drawn from one,
// so that all its parts agree.
type Snapshot struct {
	Ops     []verify.Op
	Faults  []verify.FaultWindow
	Now     time.Duration // the latest completion, on the history's clock
	Money   *drill.MoneySample
	Log     []string
	Verdict *verify.Report
}

// Snapshot takes the scoreboard's state now.
func (s *Scoreboard) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Ops are never changed once appended, so the slice can be shared;
	// fault windows get their End later, so they are copied.
	return Snapshot{Ops: s.ops, Faults: append([]verify.FaultWindow(nil), s.faults...), Now: s.last,
		Money: s.money, Log: append([]string(nil), s.log...), Verdict: s.verdict}
}

// Stopwatch reads the stopwatch from the operations so far.
func (s *Scoreboard) Stopwatch() Stopwatch { return s.Snapshot().Stopwatch() }

// Stopwatch reads the stopwatch from the snapshot's operations, with
// [verify.AnalyzeRTO] and the options the drill's report uses.
//
// Only the operations from analysisLead before the first fault on are
// analysed: the pre-fault rate is taken over the 5 s before it, and all the
// rest comes after. The cost so stays that of the fault's own history, not
// of a stage that ran for half an hour before the cut (docs/benchmarks.md).
func (sn Snapshot) Stopwatch() Stopwatch {
	faults, now := sn.Faults, sn.Now
	if len(faults) == 0 {
		return Stopwatch{}
	}
	ops := sn.since(faults[0].Start - analysisLead)
	// The watch starts when the fault is in force, even before the
	// analysis has an operation after it.
	w := Stopwatch{Started: true, Elapsed: max(now-faults[0].Start, 0)}
	rep := verify.AnalyzeRTO(ops, faults, verify.RTOOptions{})
	main, ok := rep.Main()
	if !ok {
		return w
	}
	o := main.Outage
	w.Stopped, w.FirstSuccess, w.HasFirst, w.Baseline = o.Recovered, o.FirstSuccess, o.Succeeded, main.Baseline.Rate
	if o.Recovered {
		w.Elapsed = o.RTO
	}
	return w
}

// Rate returns the committed transfers per second in buckets of the given
// length (verify's timeline), from the first transfer to the latest
// completion.
func (s *Scoreboard) Rate(bucket time.Duration) []verify.Bucket { return s.Snapshot().Rate(bucket) }

// Rate is the snapshot's rate timeline.
func (sn Snapshot) Rate(bucket time.Duration) []verify.Bucket { return verify.Timeline(sn.Ops, bucket) }

// RateSince is the rate timeline from the bucket after from on: what a
// chart of the last few minutes draws, at the cost of those minutes.
func (sn Snapshot) RateSince(from, bucket time.Duration) []verify.Bucket {
	rate := verify.Timeline(sn.since(from), bucket)
	// The first bucket may lack operations that completed before from.
	for len(rate) > 0 && rate[0].Start < from+bucket && from > 0 {
		rate = rate[1:]
	}
	return rate
}

// analysisLead is how long before the first fault the stopwatch's
// analysis starts: verify's pre-fault window (5 s), and a margin.
const analysisLead = verify.DefaultBaseline + 10*time.Second

// since returns the operations completed at from or later. Operations are
// added in about the order they complete (a few milliseconds apart at
// most), so a binary search on Complete finds where they start; the
// callers' margins absorb the disorder.
func (sn Snapshot) since(from time.Duration) []verify.Op {
	i := sort.Search(len(sn.Ops), func(i int) bool { return sn.Ops[i].Complete >= from })
	return sn.Ops[i:]
}

// Faults returns the fault windows so far; End is 0 while in force.
func (s *Scoreboard) Faults() []verify.FaultWindow {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]verify.FaultWindow(nil), s.faults...)
}

// Money returns the latest live money sample, nil before the first.
func (s *Scoreboard) Money() *drill.MoneySample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.money
}

// Log returns the latest news, oldest first.
func (s *Scoreboard) Log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

// Verdict returns the drill's report once it is verified, else nil.
func (s *Scoreboard) Verdict() *verify.Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.verdict
}
