package topology

import (
	"strings"
	"testing"
	"time"
)

func TestWarnings(t *testing.T) {
	for _, name := range BuiltinNames() {
		tp, err := Builtin(name)
		if err != nil {
			t.Fatal(err)
		}
		if w := tp.Warnings(); len(w) != 0 {
			t.Errorf("built-in %s warns: %q", name, w)
		}
	}
	tp, err := Builtin(Default)
	if err != nil {
		t.Fatal(err)
	}
	rtt, l := tp.MaxRoundTrip()
	if rtt != 30*time.Millisecond || l.Latency != 15*time.Millisecond {
		t.Fatalf("%s: largest round trip %s over %s–%s, want 30ms over a 15ms link", Default, rtt, l.A, l.B)
	}
	tp.Ledger.ElectionMS = 299
	w := tp.Warnings()
	if len(w) != 1 || !strings.Contains(w[0], "election_ms: 299 is below 10 × the largest round trip (30ms") || !strings.Contains(w[0], "at least 300") {
		t.Fatalf("election_ms 299 with a 30 ms round trip: warnings %q", w)
	}
	tp.Ledger.ElectionMS = 300
	if w := tp.Warnings(); len(w) != 0 {
		t.Fatalf("election_ms 300 with a 30 ms round trip: warnings %q", w)
	}
}

func TestLatencySummary(t *testing.T) {
	topo, err := Builtin(Default)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := topo.LatencySummary(), "1ms on 2 links, 5ms on 4, 15ms on 4"; got != want {
		t.Errorf("LatencySummary() = %q, want %q", got, want)
	}
	one := &Topology{Links: []Link{{A: "a", B: "b", Latency: 2 * time.Millisecond}, {A: "a", B: "c"}}}
	if got, want := one.LatencySummary(), "2ms on 1 link"; got != want {
		t.Errorf("LatencySummary() = %q, want %q", got, want)
	}
	if got, want := (&Topology{}).LatencySummary(), "no link has a latency"; got != want {
		t.Errorf("LatencySummary() = %q, want %q", got, want)
	}
}
