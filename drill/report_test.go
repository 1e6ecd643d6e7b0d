package drill

import (
	"strings"
	"testing"
	"time"

	"github.com/fibercut/fibercut/verify"
)

func TestOutageExpectation(t *testing.T) {
	s := time.Second
	fault := func(gap, inGroup, elsewhere time.Duration, never int) verify.FaultRTO {
		return verify.FaultRTO{Outage: verify.Recovery{
			Recovered: true, Succeeded: true,
			LongestGap: verify.Gap{From: 10 * s, To: 10*s + gap},
			InGroup:    verify.UserOutage{Users: 10, Max: inGroup, NeverRecovered: never},
			Elsewhere:  verify.UserOutage{Users: 50, Max: elsewhere},
		}}
	}
	tests := []struct {
		name   string
		faults []verify.FaultRTO
		ok     bool
		got    string
	}{
		{"short stops", []verify.FaultRTO{fault(s/2, 2*s, 0, 0), fault(s, s, s/10, 0)}, true,
			"no commit for 1.00 s at most; one user waited 2.00 s at most"},
		{"a later fault stops everyone too long", []verify.FaultRTO{fault(s/2, s, 0, 0), fault(6*s, s, 0, 0)}, false,
			"no commit for 6.00 s at most"},
		{"one user waits too long", []verify.FaultRTO{fault(s/2, s, 0, 0), fault(s/2, s, 5*s+time.Millisecond, 0)}, false,
			"one user waited 5.00 s at most"},
		{"a user never transfers again", []verify.FaultRTO{fault(s/2, s, 0, 2)}, false,
			"2 users never transferred again"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := verify.Report{RTO: verify.RTOReport{Faults: tt.faults}, Check: verify.Result{Valid: true}}
			var found bool
			for _, e := range expectations(Expect{OutageMax: 5 * s}, rep) {
				if e.Name != "longest outage" {
					continue
				}
				found = true
				if e.OK != tt.ok || !strings.Contains(e.Got, tt.got) || e.Want != "≤ 5.00 s" {
					t.Errorf("longest outage: ok %v, want %q, got %q; want ok %v and got containing %q", e.OK, e.Want, e.Got, tt.ok, tt.got)
				}
			}
			if !found {
				t.Fatal("no longest-outage expectation")
			}
		})
	}
}

func TestExpectLines(t *testing.T) {
	got := Expect{RTOMax: 5 * time.Second, OutageMax: 3 * time.Second, LostMax: 0}.Lines()
	want := []string{
		"RTO ≤ 5s (back at 90 % of the pre-fault rate, and holding)",
		"no stop longer than 3s: no commit at all, or one user unable to transfer",
		"lost ≤ 0 acknowledged transfers (RPO)",
		"money conserved and every ledger invariant holding (always)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Lines() =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestCannotPassOnNothing: a drill with no acknowledged transfer, or whose
// load committed nothing before the first fault or after the last heal,
// fails whatever its scenario says.
func TestCannotPassOnNothing(t *testing.T) {
	s := time.Second
	bucket := func(at time.Duration, n int) verify.Bucket { return verify.Bucket{Start: at, Committed: n} }
	timeline := func(before, during, after int) []verify.Bucket {
		var out []verify.Bucket
		for at := time.Duration(0); at < 30*s; at += s / 10 {
			n := during
			switch {
			case at < 10*s:
				n = before
			case at >= 20*s:
				n = after
			}
			out = append(out, bucket(at, n))
		}
		return out
	}
	faults := []verify.FaultWindow{{Start: 10 * s, End: 20 * s}}
	failed := func(ex []verify.Expectation) []string {
		var out []string
		for _, e := range ex {
			if !e.OK {
				out = append(out, e.Name+": "+e.Got)
			}
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		rep   verify.Report
		load  bool
		wants []string
	}{
		{"a whole drill", verify.Report{Check: verify.Result{Acknowledged: 400}, Faults: faults, Timeline: timeline(4, 0, 4)}, true, nil},
		{"nothing at all", verify.Report{}, true, []string{"transfers acknowledged: none: nothing was checked"}},
		{"every transfer unknown", verify.Report{Faults: faults, Timeline: timeline(0, 0, 0)}, true,
			[]string{"transfers acknowledged", "commits before the first fault: 0", "commits after the last heal: 0"}},
		{"never came back", verify.Report{Check: verify.Result{Acknowledged: 40}, Faults: faults, Timeline: timeline(4, 0, 0)}, true,
			[]string{"commits after the last heal: 0"}},
		{"the hall alone, no load", verify.Report{Check: verify.Result{Acknowledged: 2}, Faults: faults}, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := failed(somethingChecked(tc.rep, tc.load))
			if len(got) != len(tc.wants) {
				t.Fatalf("failed %q; want %q", got, tc.wants)
			}
			for i, w := range tc.wants {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("failed %q; want %q", got[i], w)
				}
			}
		})
	}
}
