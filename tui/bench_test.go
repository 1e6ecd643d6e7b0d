package tui

import (
	"context"
	"fmt"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/fibercut/fibercut/lab/labtest"
	"github.com/fibercut/fibercut/topology"
	"github.com/fibercut/fibercut/verify"
)

// drillOps makes the history of a drill at rate transfers/s for d, with a
// fault from the given time that stops every commit for 0.8 s and lasts
// 30 s: what the dashboard analyses once a second.
func drillOps(rate int, d, fault time.Duration) ([]verify.Op, []verify.FaultWindow) {
	n := int(d.Seconds()) * rate
	step := time.Second / time.Duration(rate)
	ops := make([]verify.Op, 0, n)
	for i := range n {
		at := time.Duration(i) * step
		op := verify.Op{Seq: int64(i + 1), User: i % 64, Kind: verify.KindTransfer, Key: fmt.Sprint("k", i),
			From: fmt.Sprint("u", i%64), To: fmt.Sprint("u", (i+1)%64), AmountFen: 1,
			Invoke: at, Complete: at + 20*time.Millisecond, Outcome: verify.OK}
		if at >= fault && at < fault+800*time.Millisecond {
			op.Complete, op.Outcome = fault+800*time.Millisecond, verify.Unknown
		}
		ops = append(ops, op)
	}
	return ops, []verify.FaultWindow{{Desc: "isolate city hangzhou", Start: fault, End: fault + 30*time.Second}}
}

// BenchmarkAnalysis is what the dashboard recomputes at most once a
// second, before the stopwatch has stopped (after, only the chart's rate
// is): the stopwatch (verify.AnalyzeRTO) and the chart's rate timeline, at
// the end of atec-2018 (75 s at 400/s, the cut at 25 s), and 60 s after a
// cut made 30 minutes into a stage at 400/s.
func BenchmarkAnalysis(b *testing.B) {
	tp, err := topology.Builtin(topology.Default)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name       string
		d, faultAt time.Duration
	}{{"atec-2018", 75 * time.Second, 25 * time.Second}, {"stage-30min", 31 * time.Minute, 30 * time.Minute}} {
		b.Run(c.name, func(b *testing.B) {
			ops, windows := drillOps(400, c.d, c.faultAt)
			sn := Snapshot{Ops: ops, Faults: windows, Now: ops[len(ops)-1].Complete}
			m := New(Options{Topology: tp, Scoreboard: NewScoreboard(5), Dashboard: true})
			m.Update(tea.WindowSizeMsg{Width: 160, Height: 45})
			b.ReportAllocs()
			for b.Loop() {
				m.calcAt, m.calcWatch = time.Time{}, Stopwatch{}
				m.analysis(sn, 500*time.Millisecond)
			}
		})
	}
}

// BenchmarkFrame draws one frame of the dashboard at 160×45 from the same
// history, between two analyses (the screen is drawn on every tick, 4 a
// second, and reuses the last analysis).
func BenchmarkFrame(b *testing.B) {
	tp, err := topology.Builtin(topology.Default)
	if err != nil {
		b.Fatal(err)
	}
	ops, windows := drillOps(400, 75*time.Second, 25*time.Second)
	sb := NewScoreboard(50)
	for _, op := range ops {
		sb.AddOp(op)
	}
	sb.mu.Lock()
	sb.faults = windows
	sb.mu.Unlock()
	m := New(Options{Topology: tp, Scoreboard: sb, Lang: ZH, AudienceURL: "http://192.168.1.20:8080/", Dashboard: true})
	m.Update(tea.WindowSizeMsg{Width: 160, Height: 45})
	m.Render() // the first frame analyses
	b.ReportAllocs()
	for b.Loop() {
		m.Render()
	}
}

// BenchmarkPolls asks a real lab what the dashboard asks: every DC's role
// (every 3 s on stage) and the hall's summary from the gateway (every
// second).
func BenchmarkPolls(b *testing.B) {
	cli := labtest.RequireDocker(b)
	l := labtest.Up(b, cli, topology.Default)
	ctx := context.Background()
	b.Run("roles", func(b *testing.B) {
		for b.Loop() {
			if _, err := RolesOf(ctx, l); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hall", func(b *testing.B) {
		for b.Loop() {
			if _, err := HallOf(ctx, l); err != nil {
				b.Fatal(err)
			}
		}
	})
}
