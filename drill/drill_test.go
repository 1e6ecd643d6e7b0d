package drill_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fibercut/fibercut/demoapp"
	"github.com/fibercut/fibercut/drill"
	"github.com/fibercut/fibercut/faults"
	"github.com/fibercut/fibercut/lab/labtest"
	"github.com/fibercut/fibercut/verify"
)

// ciScale shortens the built-in scenarios in tests; their expectations are
// not scaled.
const ciScale = 0.5

func explain(rep verify.Report) string {
	var b strings.Builder
	for _, e := range rep.Expectations {
		if !e.OK {
			b.WriteString("\n  ✗ " + e.Name + ": want " + e.Want + ", got " + e.Got)
		}
	}
	for _, c := range rep.Check.Checks {
		if !c.OK {
			b.WriteString("\n  ✗ " + c.Name + ": " + c.Detail)
		}
	}
	for _, s := range rep.Steps {
		if s.Error != "" {
			b.WriteString("\n  step " + s.What + ": " + s.Error)
		}
	}
	return b.String()
}

// TestBuiltinScenariosOnLab runs every built-in scenario on one real lab, at
// half time, with the baseline WAN latency on, and requires each to pass.
func TestBuiltinScenariosOnLab(t *testing.T) {
	cli := labtest.RequireDocker(t)
	labtest.RequireRoot(t)
	name := labtest.UniqueName(t)
	labtest.Cleanup(t, cli, name)
	store := faults.NewStore(filepath.Join(t.TempDir(), "faults.json"))
	for _, sn := range drill.BuiltinScenarios() {
		t.Run(sn, func(t *testing.T) {
			sc, err := drill.BuiltinScenario(sn)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			// With the WAN latency on, as `drill run` has it by default.
			out, err := drill.Run(ctx, cli, sc, drill.Options{Lab: name, Out: t.TempDir(), TimeScale: ciScale,
				Binary: labtest.StaticBinary(t), Store: store, WANLatency: "on"})
			if err != nil {
				t.Fatalf("drill %s: %v", sn, err)
			}
			rep := out.Report
			if !rep.Passed {
				t.Fatalf("drill %s did not pass:%s\n%s", sn, explain(rep), rep.Summary())
			}
			if !rep.WAN.On || rep.WAN.Lost != "" {
				t.Errorf("drill %s ran without the WAN latency: %+v", sn, rep.WAN)
			}
			if len(rep.Faults) == 0 || rep.Check.Acknowledged == 0 || rep.Check.Lost != 0 {
				t.Fatalf("drill %s: %d faults, %d acknowledged, %d lost", sn, len(rep.Faults), rep.Check.Acknowledged, rep.Check.Lost)
			}
			t.Log(rep.Summary())
		})
	}
}

// TestBrokenLedgerFailsTheDrill runs a drill on a lab whose nodes credit one
// fen too many with every transfer, and requires the drill to fail, naming
// the broken invariants. This proves the checker can fail.
func TestBrokenLedgerFailsTheDrill(t *testing.T) {
	cli := labtest.RequireDocker(t)
	labtest.RequireRoot(t)
	name := labtest.UniqueName(t)
	labtest.Cleanup(t, cli, name)
	sc, err := drill.ParseScenario("broken.yaml", []byte(`
name: broken-ledger
description: a short drill on a ledger that creates money
load: {users: 8, rate: 100}
warmup: 3s
steps:
  - {at: 0s, fault: cut hz-a sh-a, for: 1s}
settle: 2s
abort: {money_not_conserved: false}
`))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := drill.Run(ctx, cli, sc, drill.Options{Lab: name, Out: t.TempDir(), Binary: labtest.StaticBinary(t),
		NodeEnv: []string{demoapp.EnvBreakLedger + "=extra-fen"}, Store: faults.NewStore(filepath.Join(t.TempDir(), "f.json"))})
	if err != nil && !errors.Is(err, drill.ErrAborted) {
		t.Fatal(err)
	}
	rep := out.Report
	if rep.Passed || rep.Check.Valid {
		t.Fatalf("a drill on a ledger that creates money passed:\n%s", rep.Summary())
	}
	failed := map[string]string{}
	for _, c := range rep.Check.Checks {
		if !c.OK {
			failed[c.Name] = c.Detail
		}
	}
	for _, want := range []string{verify.CheckMoneyConserved, verify.CheckReplay} {
		if d, ok := failed[want]; !ok || d == "" {
			t.Errorf("check %q did not fail (failed: %v)", want, failed)
		}
	}
}
