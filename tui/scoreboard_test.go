package tui

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/fibercut/fibercut/drill"
	"github.com/fibercut/fibercut/verify"
)

// realDrill reads testdata/drill: the history and report of a real drill
// (isolate city hangzhou on the default lab, under load).
func realDrill(t *testing.T) ([]verify.Op, verify.Report) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "drill", "history.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, ops, err := verify.ReadHistory(f)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := verify.ReadReport(filepath.Join("testdata", "drill"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Faults) == 0 || len(ops) == 0 {
		t.Fatalf("testdata drill has %d faults and %d ops", len(rep.Faults), len(ops))
	}
	return ops, rep
}

// replay feeds the scoreboard as a drill would: fault events, and the
// operations from several goroutines at once, up to the history time to.
func replay(sb *Scoreboard, ops []verify.Op, rep verify.Report, upTo func(verify.Op) bool) {
	for _, f := range rep.Faults {
		inForce := f
		inForce.End = 0
		sb.Event(drill.Event{Kind: drill.EventFaultInForce, Fault: &inForce, Message: f.ID + " in force"})
	}
	var wg sync.WaitGroup
	const feeders = 4
	for i := range feeders {
		wg.Go(func() {
			for j := i; j < len(ops); j += feeders {
				if upTo(ops[j]) {
					sb.AddOp(ops[j])
				}
			}
		})
	}
	wg.Wait()
}

// TestStopwatchEqualsTheReport replays a real drill into a scoreboard: at
// the end, the stopwatch shows the report's headline RTO and first
// success; shortly after the fault it runs.
func TestStopwatchEqualsTheReport(t *testing.T) {
	ops, rep := realDrill(t)
	main, _ := rep.RTO.Main()
	fault := rep.Faults[0]
	quarter := (fault.End - fault.Start) / 4

	early := NewScoreboard(10)
	if w := early.Stopwatch(); w.Started {
		t.Errorf("stopwatch before any fault: %+v", w)
	}
	replay(early, ops, rep, func(op verify.Op) bool { return op.Complete <= fault.Start+quarter })
	if w := early.Stopwatch(); !w.Started || w.Stopped || w.Elapsed <= 0 || w.Elapsed > quarter {
		t.Errorf("stopwatch a quarter into the fault: %+v; want running, under %s", w, quarter)
	}

	sb := NewScoreboard(10)
	replay(sb, ops, rep, func(verify.Op) bool { return true })
	for _, f := range rep.Faults {
		sb.Event(drill.Event{Kind: drill.EventFaultHealed, Fault: &f, Message: f.ID + " healed"})
	}
	sb.Event(drill.Event{Kind: drill.EventVerdict, Report: &rep, Message: "PASS"})
	w := sb.Stopwatch()
	if !w.Started || w.Stopped != main.Outage.Recovered || w.Elapsed != main.Outage.RTO ||
		w.HasFirst != main.Outage.Succeeded || w.FirstSuccess != main.Outage.FirstSuccess {
		t.Errorf("stopwatch at the end: %+v; the report says recovered %v, RTO %s, first success %s",
			w, main.Outage.Recovered, main.Outage.RTO, main.Outage.FirstSuccess)
	}
	if got := sb.Faults(); len(got) != len(rep.Faults) || got[0].End != rep.Faults[0].End {
		t.Errorf("fault windows %+v, want the report's %+v", got, rep.Faults)
	}
	if log := sb.Log(); len(log) == 0 || log[len(log)-1] != "PASS" {
		t.Errorf("log %q does not end with the verdict", log)
	}
	if sb.Verdict() == nil {
		t.Error("no verdict after the verdict event")
	}
	var charted, ok int
	for _, b := range sb.Rate(verify.DefaultRTOOptions.Bucket) {
		charted += b.Committed
	}
	for _, op := range ops {
		if op.Kind == verify.KindTransfer && op.Outcome == verify.OK {
			ok++
		}
	}
	if charted != ok || ok == 0 {
		t.Errorf("the rate chart counts %d commits; the history has %d transfers ok", charted, ok)
	}
}

// TestScoreboardLogKeepsTheLatestNews checks the log's bound, and that a
// money check that holds is kept as a sample but is not news.
func TestScoreboardLogKeepsTheLatestNews(t *testing.T) {
	sb := NewScoreboard(2)
	for _, m := range []string{"a", "b", "c"} {
		sb.Event(drill.Event{Kind: drill.EventNote, Message: m})
	}
	sb.Event(drill.Event{Kind: drill.EventMoney, Money: &drill.MoneySample{Readable: true, OK: true, Accounts: 2}, Message: "money ok"})
	if got := sb.Log(); len(got) != 2 || got[0] != "b" || got[1] != "c" {
		t.Errorf("log %q, want the last two news lines b, c", got)
	}
	if m := sb.Money(); m == nil || m.Accounts != 2 {
		t.Errorf("money sample %+v", m)
	}
}
