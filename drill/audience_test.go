package drill_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fibercut/fibercut/demoapp"
	"github.com/fibercut/fibercut/drill"
	"github.com/fibercut/fibercut/faults"
	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/lab/labtest"
	"github.com/fibercut/fibercut/verify"
)

// phone is one person in the hall, calling the gateway's published port as
// the audience page does.
type phone struct {
	t    *testing.T
	c    demoapp.Client
	acct demoapp.Account
}

func openPhone(t *testing.T, base string) *phone {
	t.Helper()
	p := &phone{t: t, c: demoapp.Client{Base: base, As: demoapp.ClientPage}}
	for range 20 { // the gateway may answer 503 while a fault is in force
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		a, _, err := p.c.Open(ctx)
		cancel()
		if err == nil {
			p.acct = a
			return p
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal("no account could be opened from the hall in 20 tries")
	return nil
}

// pay transfers, retrying the same key while the gateway answers 503, and
// returns the last status.
func (p *phone) pay(to string, fen int64, key string) int {
	p.t.Helper()
	var st int
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, st, _ = p.c.Transfer(ctx, p.acct, demoapp.TransferRequest{To: to, AmountFen: fen, Key: key})
		cancel()
		if st != http.StatusServiceUnavailable && st != 0 {
			return st
		}
		time.Sleep(200 * time.Millisecond)
	}
	return st
}

// TestAudienceTransfersAreProven makes transfers from the hall, through
// the gateway's published port, during drills on a real lab: the verdict
// proves them present and counts them apart. On a second drill the gateway
// (by its test switch) acknowledges the fourth transfer without applying
// it, and the verdict must fail, naming that transfer as the audience's.
// The record is not reachable on the public port nor on the WAN.
func TestAudienceTransfersAreProven(t *testing.T) {
	cli := labtest.RequireDocker(t)
	labtest.RequireRoot(t)
	name := labtest.UniqueName(t)
	labtest.Cleanup(t, cli, name)
	sc, err := drill.ParseScenario("hall.yaml", []byte(`
name: hall
description: the hall transfers while the load runs
load: {users: 8, rate: 100}
warmup: 2s
steps:
  - {at: 0s, fault: cut hz-a sh-a, for: 2s}
settle: 2s
`))
	if err != nil {
		t.Fatal(err)
	}
	store := faults.NewStore(filepath.Join(t.TempDir(), "f.json"))
	opts := drill.Options{Lab: name, Binary: labtest.StaticBinary(t), Store: store, LoadFor: 2 * time.Minute,
		GatewayEnv: []string{demoapp.EnvTestDropAudience + "=4"}}

	session := func(transfers int, during func(s *drill.Session, p []*phone)) *drill.Outcome {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		opts.Out = t.TempDir()
		s, err := drill.Start(ctx, cli, sc, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Stop(context.Background())
		gw := s.Lab().Gateway
		base := "http://127.0.0.1:" + strconv.Itoa(gw.HostPort)
		hall := []*phone{openPhone(t, base), openPhone(t, base)}
		time.Sleep(time.Second) // the load commits before the cut, as a drill must
		if _, err := s.Apply(ctx, faults.Spec{Kind: faults.KindCut, A: "hz-a", B: "sh-a", For: 2 * time.Second}); err != nil {
			t.Fatal(err)
		}
		for i := range transfers {
			from, to := hall[i%2], hall[(i+1)%2]
			if st := from.pay(to.acct.ID, int64(100*(i+1)), fmt.Sprintf("hall-%d", i+1)); st != http.StatusOK {
				t.Fatalf("hall transfer %d: HTTP %d", i+1, st)
			}
		}
		if during != nil {
			during(s, hall)
		}
		out, err := s.Finish(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	var l *lab.Lab
	out := session(3, func(s *drill.Session, _ []*phone) {
		l = s.Lab()
		// The record is served on the management address only.
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(l.Gateway.HostPort) + demoapp.PathAudience)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s on the public port: HTTP %d, want 404", demoapp.PathAudience, resp.StatusCode)
		}
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(l.Gateway.WANIP.String(), strconv.Itoa(lab.GatewayRecordPort)), time.Second); err == nil {
			c.Close()
			t.Errorf("the audience record answers on the gateway's WAN address %s", l.Gateway.WANIP)
		}
	})
	rep := out.Report
	if !rep.Passed {
		t.Fatalf("the hall's transfers failed the drill:%s\n%s", explain(rep), rep.Summary())
	}
	want := []verify.Tally{{Source: verify.SourceAudience, Opened: 2, Acknowledged: 3}}
	if fmt.Sprint(rep.Check.Sources) != fmt.Sprint(want) {
		t.Fatalf("audience counted as %+v, want %+v", rep.Check.Sources, want)
	}
	if !strings.Contains(rep.Summary(), "audience: 2 accounts opened, 3 transfers acknowledged, 0 lost") {
		t.Errorf("the summary does not report the hall apart:\n%s", rep.Summary())
	}
	t.Log(rep.Summary())

	// The record starts again with the next drill: the fourth transfer is
	// dropped by the gateway's test switch.
	var dropped string
	out = session(4, func(_ *drill.Session, hall []*phone) { dropped = hall[1].acct.ID + "/hall-4" })
	rep = out.Report
	if rep.Passed || rep.Check.Lost != 1 || len(rep.Check.Sources) != 1 || rep.Check.Sources[0].Lost != 1 {
		t.Fatalf("a dropped audience transfer: passed %v, lost %d, audience %+v; want a failed verdict with it lost\n%s",
			rep.Passed, rep.Check.Lost, rep.Check.Sources, rep.Summary())
	}
	for _, c := range rep.Check.Checks {
		if c.Name == verify.CheckAckedPresent && !strings.Contains(c.Detail, dropped+" (audience)") {
			t.Errorf("%s: %q does not name %s (audience)", c.Name, c.Detail, dropped)
		}
	}

	// Without a load (stage --no-load) only the hall's money is checked.
	opts.NoLoad = true
	out = session(2, nil)
	rep = out.Report
	if !rep.Passed || rep.Load.Ops != 0 || rep.Check.Acknowledged != 2 || len(rep.Check.Sources) != 1 || rep.Check.Sources[0].Acknowledged != 2 {
		t.Fatalf("a drill without load: passed %v, %d load ops, %d acknowledged, audience %+v; want a pass on the hall's 2 transfers alone:%s\n%s",
			rep.Passed, rep.Load.Ops, rep.Check.Acknowledged, rep.Check.Sources, explain(rep), rep.Summary())
	}
	t.Log(rep.Summary())
}
