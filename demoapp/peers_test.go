package demoapp

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fibercut/fibercut/topology"
)

func TestParsePeersByAddressOrName(t *testing.T) {
	topo, err := topology.Builtin(topology.Default)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := ParsePeers("hz-a=10.0.0.10,hz-b=hz-b-0.hz-b.fibercut-demo.svc", topo)
	if err != nil {
		t.Fatal(err)
	}
	want := []Peer{
		{DC: "hz-a", City: "hangzhou", WAN: netip.MustParseAddr("10.0.0.10")},
		{DC: "hz-b", City: "hangzhou", Host: "hz-b-0.hz-b.fibercut-demo.svc"},
	}
	if len(ps) != 2 || ps[0] != want[0] || ps[1] != want[1] {
		t.Fatalf("ParsePeers = %+v, want %+v", ps, want)
	}
	if got := ps[1].HostPort(2380); got != "hz-b-0.hz-b.fibercut-demo.svc:2380" {
		t.Errorf("HostPort = %q", got)
	}
	if got := FormatPeers(ps); got != "hz-a=10.0.0.10,hz-b=hz-b-0.hz-b.fibercut-demo.svc" {
		t.Errorf("FormatPeers = %q", got)
	}
	for _, tc := range []struct{ in, want string }{
		{"hz-a", "want DC=IPv4 or DC=host name"},
		{"hz-a=", "want DC=IPv4 or DC=host name"},
		{"xx-a=10.0.0.1", "no DC xx-a"},
		{"hz-a=::1", "not an IPv4 address"},
		{"hz-a=Bad_Name", "neither an IPv4 address nor a host name"},
		{"hz-a=10.0.0.1,hz-a=10.0.0.2", "named twice"},
	} {
		_, err := ParsePeers(tc.in, topo)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParsePeers(%q) = %v, want an error saying %q", tc.in, err, tc.want)
		}
	}
}

// TestPeerNames checks that a node tells its peers by what their names
// resolve to now, looks them up again for an unknown address at most once
// a second, and never answers for itself or a stranger.
func TestPeerNames(t *testing.T) {
	now := time.Unix(1000, 0)
	addrs := map[string][]netip.Addr{
		"a.svc": {netip.MustParseAddr("10.1.0.1")},
		"b.svc": {netip.MustParseAddr("10.1.0.2")},
	}
	var mu sync.Mutex // the lookups run at once, one per name
	lookups := 0
	r := &peerNames{
		now: func() time.Time { return now },
		lookup: func(_ context.Context, host string) ([]netip.Addr, error) {
			mu.Lock()
			defer mu.Unlock()
			lookups++
			if as, ok := addrs[host]; ok {
				return as, nil
			}
			return nil, errors.New("no such host")
		},
	}
	peers := map[string]Peer{
		"a": {DC: "a", Host: "a.svc"}, "b": {DC: "b", Host: "b.svc"},
		"c": {DC: "c", Host: "c.svc"}, // does not resolve
	}
	check := func(addr, wantDC string) {
		t.Helper()
		dc, ok := r.dcOf(netip.MustParseAddr(addr), peers, "a")
		if dc != wantDC || ok != (wantDC != "") {
			t.Errorf("dcOf(%s) = %q, %v; want %q", addr, dc, ok, wantDC)
		}
	}
	check("10.1.0.2", "b")
	check("10.1.0.1", "") // self
	if lookups != 2 {     // b and c; never self
		t.Fatalf("%d lookups after the first request, want 2 (b and c)", lookups)
	}
	check("10.9.9.9", "") // a stranger, within the second: no new lookup
	check("10.1.0.2", "b")
	if lookups != 2 {
		t.Fatalf("%d lookups, want still 2", lookups)
	}
	// b restarts with a new address: the old one no longer counts once
	// the names are looked up again.
	addrs["b.svc"] = []netip.Addr{netip.MustParseAddr("10.1.0.7")}
	now = now.Add(resolveEvery)
	check("10.1.0.7", "b")
	if lookups != 4 {
		t.Fatalf("%d lookups, want 4", lookups)
	}
	check("10.1.0.2", "")
}

// TestPeerNamesKnownDoNotWait checks that while a stranger's request waits
// for a slow lookup, requests from known peers are answered from what the
// last lookup found.
func TestPeerNamesKnownDoNotWait(t *testing.T) {
	now := time.Unix(1000, 0)
	entered, release := make(chan struct{}, 2), make(chan struct{})
	slow := false
	r := &peerNames{
		now: func() time.Time { return now },
		lookup: func(context.Context, string) ([]netip.Addr, error) {
			if slow {
				entered <- struct{}{}
				<-release // past the lookup's own deadline, as a stuck resolver would
			}
			return []netip.Addr{netip.MustParseAddr("10.1.0.2")}, nil
		},
	}
	peers := map[string]Peer{"a": {DC: "a", Host: "a.svc"}, "b": {DC: "b", Host: "b.svc"}}
	if dc, _ := r.dcOf(netip.MustParseAddr("10.1.0.2"), peers, "a"); dc != "b" {
		t.Fatalf("dcOf(b's address) = %q, want b", dc)
	}
	slow, now = true, now.Add(resolveEvery)
	stranger := make(chan string)
	go func() {
		dc, _ := r.dcOf(netip.MustParseAddr("10.9.9.9"), peers, "a")
		stranger <- dc
	}()
	<-entered
	// The stranger's lookup is held until b's request is answered: if b
	// waited for it, neither would return.
	known := make(chan string)
	go func() {
		dc, _ := r.dcOf(netip.MustParseAddr("10.1.0.2"), peers, "a")
		known <- dc
	}()
	select {
	case dc := <-known:
		if dc != "b" {
			t.Errorf("dcOf(b's address) during a lookup = %q, want b", dc)
		}
	case dc := <-stranger:
		t.Fatalf("the stranger's request returned %q before its lookup was released", dc)
	case <-time.After(30 * time.Second):
		t.Fatal("a request from a known peer waited for a stranger's lookup")
	}
	close(release)
	if dc := <-stranger; dc != "" {
		t.Errorf("dcOf(stranger) = %q, want none", dc)
	}
}

// TestLedgerByName runs a real one-member ledger that goes by a host name
// (as a Kubernetes pod does) and commits a transfer through it.
func TestLedgerByName(t *testing.T) {
	peers := []Peer{{DC: "dc-0", City: "city-0", Host: "localhost"}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := StartLedger(ctx, LedgerConfig{DC: "dc-0", Dir: t.TempDir(), Token: "test", Peers: peers, TickMS: 50, ElectionMS: 500})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := l.member.Server.Cluster().Member(l.member.Server.MemberID()).PeerURLs; len(got) != 1 || got[0] != "http://localhost:2380" {
		t.Fatalf("member advertises %v, want [http://localhost:2380]", got)
	}
	for !l.OK() {
		if ctx.Err() != nil {
			t.Fatal("the ledger never saw a leader")
		}
		time.Sleep(20 * time.Millisecond)
	}
	a, b := open(t, l), open(t, l)
	if _, err := l.Commit(ctx, TransferRequest{To: b.ID, AmountFen: 100, Key: "k"}, a.ID, true); err != nil {
		t.Fatal(err)
	}
	if got := balance(t, l, b.ID); got != InitialBalanceFen+100 {
		t.Fatalf("balance of b = %d, want %d", got, InitialBalanceFen+100)
	}
}
