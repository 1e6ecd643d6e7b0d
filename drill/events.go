package drill

import (
	"sync"
	"time"

	"github.com/fibercut/fibercut/verify"
)

// EventKind says what an [Event] reports.
type EventKind string

// The kinds of event a drill sends.
const (
	// EventProgress: the load's counts, about once a second. Progress
	// that a slow consumer has not taken yet is merged into the newest.
	EventProgress EventKind = "progress"
	// EventPhase: the drill moved on to Phase.
	EventPhase EventKind = "phase"
	// EventFaultInForce: Fault took effect (Fault.Start is when).
	EventFaultInForce EventKind = "fault-in-force"
	// EventFaultHealed: Fault was healed (Fault.End is when).
	EventFaultHealed EventKind = "fault-healed"
	// EventMoney: a live check of the balances, Money.
	EventMoney EventKind = "money"
	// EventStepFailed: a step could not be applied or healed.
	EventStepFailed EventKind = "step-failed"
	// EventAbort: an abort rule stopped the drill.
	EventAbort EventKind = "abort"
	// EventNote: news for people, such as faults healed before the drill.
	EventNote EventKind = "note"
	// EventVerdict: the drill is verified; Report is its report. It is
	// the last event of a drill that got that far.
	EventVerdict EventKind = "verdict"
)

// The phases of a drill, in order.
const (
	PhaseWarmup    = "warmup"    // load before the first step
	PhaseSteps     = "steps"     // the scenario's faults
	PhaseSettle    = "settle"    // load after the last step
	PhaseHealing   = "healing"   // the drill's faults are healed
	PhaseConverge  = "converge"  // waiting for the ledger members to agree
	PhaseVerifying = "verifying" // reading the final state, checking, reporting
)

// Event is what a drill reports as it runs, typed by Kind; Message says
// it for people (every kind but progress has one).
type Event struct {
	Kind EventKind
	// At is the time since the transfer phase began; Total the planned
	// length of the whole phase.
	At, Total time.Duration
	// Step says what is going on: "warmup", the fault in force, "settle".
	Step string
	// OKPerSec is the committed transfers per second of the last second.
	OKPerSec          float64
	OK, Fail, Unknown int64
	// Phase, for EventPhase.
	Phase string
	// Fault, for EventFaultInForce and EventFaultHealed, on the history's
	// clock.
	Fault *verify.FaultWindow
	// Money, for EventMoney.
	Money *MoneySample
	// Report, for EventVerdict.
	Report *verify.Report
	// Message is the news in words.
	Message string
}

// MoneySample is one live check of the balances during a drill.
type MoneySample struct {
	// Readable is false while no quorum answers: nothing is known then.
	Readable bool
	// Revision is the ledger revision the balances were read at.
	Revision int64
	// Accounts and SumFen are what was read; WantFen is accounts ×
	// the initial balance. OK reports SumFen == WantFen.
	Accounts        int
	SumFen, WantFen int64
	OK              bool
	// Detail says what was wrong, or why it could not be read.
	Detail string
}

// feed delivers events to a consumer from one goroutine, in order, and
// never blocks the sender: a slow consumer cannot delay the fault
// schedule. Progress events still waiting are merged into the newest;
// every other event is delivered.
type feed struct {
	fn   func(Event)
	wake chan struct{}
	done chan struct{}

	mu     sync.Mutex
	q      []Event
	closed bool
}

// newFeed starts delivering to fn; a nil fn makes a feed that drops
// everything.
func newFeed(fn func(Event)) *feed {
	f := &feed{fn: fn, wake: make(chan struct{}, 1), done: make(chan struct{})}
	if fn == nil {
		close(f.done)
		return f
	}
	go f.loop()
	return f
}

// send queues e for delivery. It may be called from any goroutine.
func (f *feed) send(e Event) {
	if f.fn == nil {
		return
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	if n := len(f.q); e.Kind == EventProgress && n > 0 && f.q[n-1].Kind == EventProgress {
		f.q[n-1] = e
	} else {
		f.q = append(f.q, e)
	}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// close delivers what is queued, then stops; later sends are dropped.
func (f *feed) close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
	<-f.done
}

func (f *feed) loop() {
	defer close(f.done)
	for range f.wake {
		for {
			f.mu.Lock()
			if len(f.q) == 0 {
				closed := f.closed
				f.mu.Unlock()
				if closed {
					return
				}
				break
			}
			e := f.q[0]
			f.q = f.q[1:]
			f.mu.Unlock()
			f.fn(e)
		}
	}
}
