package tui

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/fibercut/fibercut/drill"
	"github.com/fibercut/fibercut/verify"
)

// Replay plays a drill's report directory (history.jsonl, report.json)
// back into a scoreboard, at a speed: for rehearsals, and for tests that
// need no lab.
type Replay struct {
	sb     *Scoreboard
	ops    []verify.Op // by completion
	faults []verify.FaultWindow
	report verify.Report
	dir    string
	speed  float64

	begin   time.Duration // history time of the first operation
	started time.Time     // wall time the replay began, zero before
	next    int           // next op to play
	shown   int           // fault events sent: 2 per window (in force, healed)
	done    bool
}

// LoadReplay reads a report directory. speed 4 plays four times faster
// than the drill ran.
func LoadReplay(dir string, speed float64, sb *Scoreboard) (*Replay, error) {
	f, err := os.Open(filepath.Join(dir, "history.jsonl"))
	if err != nil {
		return nil, fmt.Errorf("tui: replay: %w", err)
	}
	defer f.Close()
	_, ops, err := verify.ReadHistory(f)
	if err != nil && !errors.Is(err, verify.ErrTruncated) { // a cut-short history still plays
		return nil, fmt.Errorf("tui: replay %s: %w", dir, err)
	}
	rep, err := verify.ReadReport(dir)
	if err != nil {
		return nil, fmt.Errorf("tui: replay: %w", err)
	}
	if len(ops) == 0 {
		return nil, fmt.Errorf("tui: replay: %s records no operation", dir)
	}
	if speed <= 0 {
		speed = 1
	}
	slices.SortStableFunc(ops, func(a, b verify.Op) int { return int(a.Complete - b.Complete) })
	r := &Replay{sb: sb, ops: ops, faults: rep.Faults, report: rep, dir: dir, speed: speed, begin: ops[0].Complete}
	return r, nil
}

// Report is the report being replayed; Dir where it was read from.
func (r *Replay) Report() verify.Report { return r.report }
func (r *Replay) Dir() string           { return r.dir }

// Done reports whether everything, verdict included, was played.
func (r *Replay) Done() bool { return r.done }

// Advance plays what happened up to now (wall time) at the replay's speed.
func (r *Replay) Advance(now time.Time) {
	if r.started.IsZero() {
		r.started = now
	}
	r.playTo(r.begin + time.Duration(float64(now.Sub(r.started))*r.speed))
}

// Finish plays everything that is left, and the verdict.
func (r *Replay) Finish() { r.playTo(r.ops[len(r.ops)-1].Complete + time.Hour) }

// PlayTo plays what happened up to history time t.
func (r *Replay) PlayTo(t time.Duration) { r.playTo(t) }

func (r *Replay) playTo(t time.Duration) {
	if r.done {
		return
	}
	for r.next < len(r.ops) || r.shown < 2*len(r.faults) {
		// The next thing to happen: an op's completion, or a fault's
		// start or end, whichever comes first.
		nextOp := time.Duration(1<<62 - 1)
		if r.next < len(r.ops) {
			nextOp = r.ops[r.next].Complete
		}
		nextFault, fault := time.Duration(1<<62-1), -1
		if r.shown < 2*len(r.faults) {
			w := r.faults[r.shown/2]
			nextFault, fault = w.Start, r.shown
			if r.shown%2 == 1 {
				if w.End == 0 { // never healed: no event to send
					r.shown++
					continue
				}
				nextFault = w.End
			}
		}
		switch {
		case fault >= 0 && nextFault <= nextOp && nextFault <= t:
			w := r.faults[fault/2]
			if fault%2 == 0 {
				in := w
				in.End = 0
				r.sb.Event(drill.Event{Kind: drill.EventFaultInForce, Fault: &in, Message: w.ID + ": " + w.Desc + " in force"})
			} else {
				r.sb.Event(drill.Event{Kind: drill.EventFaultHealed, Fault: &w, Message: w.ID + ": " + w.Desc + " healed"})
			}
			r.shown++
		case r.next < len(r.ops) && nextOp <= t:
			r.sb.AddOp(r.ops[r.next])
			r.next++
		default:
			return
		}
	}
	verdict := "FAIL"
	if r.report.Passed {
		verdict = "PASS"
	}
	r.sb.Event(drill.Event{Kind: drill.EventVerdict, Report: &r.report, Message: verdict + ": report in " + r.dir})
	r.done = true
}
