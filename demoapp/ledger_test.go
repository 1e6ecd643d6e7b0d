package demoapp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// startCluster runs a real three-member ledger in this process, on loopback
// addresses of its own (127.0.0.<base>..<base+2>), and returns the ledgers.
func startCluster(t testing.TB, base byte, maxBatch int) []*Ledger {
	return startClusterOf(t, 3, base, maxBatch)
}

// startClusterOf is startCluster with n members; opts change each
// member's configuration.
func startClusterOf(t testing.TB, n int, base byte, maxBatch int, opts ...func(*LedgerConfig)) []*Ledger {
	t.Helper()
	var peers []Peer
	for i := range n {
		peers = append(peers, Peer{DC: fmt.Sprintf("dc-%d", i), City: fmt.Sprintf("city-%d", i), WAN: netip.AddrFrom4([4]byte{127, 0, 0, base + byte(i)})})
	}
	ledgers := make([]*Ledger, n)
	errs := make([]error, n)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() {
			cfg := LedgerConfig{DC: p.DC, Dir: t.TempDir(), Token: "test", Peers: peers, TickMS: 50, ElectionMS: 500, MaxBatch: maxBatch}
			for _, o := range opts {
				o(&cfg)
			}
			ledgers[i], errs[i] = StartLedger(ctx, cfg)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start member %d: %v", i, err)
		}
	}
	t.Cleanup(func() {
		for _, l := range ledgers {
			l.Close()
		}
	})
	// Wait until the endpoint manager has seen a leader everywhere.
	deadline := time.Now().Add(10 * time.Second)
	for _, l := range ledgers {
		for !l.OK() {
			if time.Now().After(deadline) {
				t.Fatalf("ledger %s never saw a leader", l.self.DC)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return ledgers
}

func open(t *testing.T, l *Ledger) Account {
	t.Helper()
	a, err := l.OpenAccount(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func balance(t *testing.T, l *Ledger, id string) int64 {
	t.Helper()
	b, err := l.Balance(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLedgerTransfers(t *testing.T) {
	ls := startCluster(t, 31, 64)
	ctx := context.Background()
	a, b := open(t, ls[0]), open(t, ls[1])
	if a.BalanceFen != InitialBalanceFen || a.HomeDC != "dc-0" || b.HomeDC != "dc-1" || a.Token == "" {
		t.Fatalf("opened %+v and %+v", a, b)
	}
	if _, err := ls[2].Authorize(ctx, a.ID, a.Token); err != nil {
		t.Fatalf("authorize on another DC: %v", err)
	}
	if _, err := ls[2].Authorize(ctx, a.ID, b.Token); !errors.Is(err, ErrBadToken) {
		t.Fatalf("b's token on a = %v, want ErrBadToken", err)
	}

	req := TransferRequest{To: b.ID, AmountFen: 1234, Key: "k1"}
	r1, err := ls[0].Commit(ctx, req, a.ID, true)
	if err != nil || r1.Replayed || r1.BalanceFen != InitialBalanceFen-1234 || r1.Transfer.Revision == 0 {
		t.Fatalf("first transfer = %+v, %v", r1, err)
	}
	// The same key again, through another DC: no money moves.
	r2, err := ls[2].Commit(ctx, req, a.ID, true)
	if err != nil || !r2.Replayed || r2.Transfer.Revision != r1.Transfer.Revision {
		t.Fatalf("replayed transfer = %+v, %v; want the first one replayed", r2, err)
	}
	if got := balance(t, ls[1], b.ID); got != InitialBalanceFen+1234 {
		t.Fatalf("b's balance after a transfer sent twice = %d, want %d", got, InitialBalanceFen+1234)
	}
	// The same key for another transfer is refused.
	if _, err := ls[0].Commit(ctx, TransferRequest{To: b.ID, AmountFen: 99, Key: "k1"}, a.ID, true); !errors.Is(err, ErrKeyReused) {
		t.Fatalf("reused key = %v, want ErrKeyReused", err)
	}
	if _, err := ls[0].Commit(ctx, TransferRequest{To: b.ID, AmountFen: InitialBalanceFen, Key: "k2"}, a.ID, true); !errors.Is(err, ErrFunds) {
		t.Fatalf("overdraft = %v, want ErrFunds", err)
	}
	if _, err := ls[0].Commit(ctx, TransferRequest{To: "nobody", AmountFen: 1, Key: "k3"}, a.ID, true); !errors.Is(err, ErrNoAccount) {
		t.Fatalf("unknown recipient = %v, want ErrNoAccount", err)
	}
	if got := balance(t, ls[0], a.ID); got != InitialBalanceFen-1234 {
		t.Fatalf("a's balance after rejected transfers = %d", got)
	}
}

// TestGroupCommitConservesMoney commits many concurrent transfers among few
// accounts, through every DC at once (so batches of different DCs conflict),
// with and without batching, and checks the ledger with a direct read:
// money is conserved and every ok transfer is present exactly once.
func TestGroupCommitConservesMoney(t *testing.T) {
	for _, batch := range []bool{true, false} {
		t.Run("batch="+strconv.FormatBool(batch), func(t *testing.T) {
			base := byte(41)
			if !batch {
				base = 51
			}
			ls := startCluster(t, base, 64)
			ctx := context.Background()
			var ids []string
			for i := range 8 {
				ids = append(ids, open(t, ls[i%3]).ID)
			}
			var (
				wg  sync.WaitGroup
				mu  sync.Mutex
				oks = map[string]bool{}
			)
			for w := range 24 {
				wg.Go(func() {
					for i := range 20 {
						from, to := ids[(w+i)%8], ids[(w+3*i+1)%8]
						if from == to {
							continue
						}
						key := fmt.Sprintf("w%d-%d", w, i)
						_, err := ls[w%3].Commit(ctx, TransferRequest{To: to, AmountFen: int64(1 + i), Key: key}, from, batch)
						if err == nil {
							mu.Lock()
							oks[from+"/"+key] = true
							mu.Unlock()
						}
					}
				})
			}
			wg.Wait()
			if len(oks) < 200 {
				t.Errorf("only %d of ~420 transfers committed", len(oks))
			}
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			bals, err := ls[0].local.Get(cctx, prefixBalance, clientv3.WithPrefix())
			if err != nil {
				t.Fatal(err)
			}
			var sum int64
			for _, kv := range bals.Kvs {
				v, _ := strconv.ParseInt(string(kv.Value), 10, 64)
				sum += v
			}
			if want := int64(len(ids)) * InitialBalanceFen; sum != want {
				t.Errorf("sum of balances = %d, want %d: money was created or lost", sum, want)
			}
			xfers, err := ls[0].local.Get(cctx, prefixTransfer, clientv3.WithPrefix(), clientv3.WithKeysOnly())
			if err != nil {
				t.Fatal(err)
			}
			if len(xfers.Kvs) != len(oks) {
				t.Errorf("%d transfers stored, %d acknowledged", len(xfers.Kvs), len(oks))
			}
			for _, kv := range xfers.Kvs {
				delete(oks, string(kv.Key)[len(prefixTransfer):])
			}
			if len(oks) != 0 {
				t.Errorf("%d acknowledged transfers are missing from the ledger", len(oks))
			}
		})
	}
}

func TestParseTransfer(t *testing.T) {
	tests := []struct {
		body, field string
	}{
		{`{"to":"abcdefghjkmn","amount_fen":-5,"key":"k"}`, "amount_fen"},
		{`{"to":"abcdefghjkmn","amount_fen":0,"key":"k"}`, "amount_fen"},
		{`{"to":"abcdefghjkmn","amount_fen":1.5,"key":"k"}`, "amount_fen"},
		{`{"to":"abcdefghjkmn","amount_fen":1e3,"key":"k"}`, "amount_fen"},
		{`{"to":"abcdefghjkmn","amount_fen":"100","key":"k"}`, "amount_fen"},
		{`{"to":"abcdefghjkmn","amount_fen":9223372036854775808,"key":"k"}`, "amount_fen"},
		{`{"to":"abcdefghjkmn","key":"k"}`, "amount_fen"},
		{`{"to":"","amount_fen":1,"key":"k"}`, "to"},
		{`{"to":5,"amount_fen":1,"key":"k"}`, "to"},
		{`{"to":"abc","amount_fen":1,"key":"k"}`, "to"},
		{`{"to":"../../internal","amount_fen":1,"key":"k"}`, "to"},
		{`{"to":"abcdefghjkmn","amount_fen":1,"key":""}`, "key"},
		{`{"to":"abcdefghjkmn","amount_fen":1,"key":"a b"}`, "key"},
		{`{"to":"abcdefghjkmn","amount_fen":1,"key":"k","memo":"x"}`, "memo"},
		{`[1,2]`, ""},
		{`not json`, ""},
	}
	for _, tt := range tests {
		_, err := ParseTransfer([]byte(tt.body))
		var ae *apiError
		if !errors.As(err, &ae) || ae.status != 400 || ae.field != tt.field {
			t.Errorf("ParseTransfer(%s) = %v (field %q); want 400 naming %q", tt.body, err, fieldOf(ae), tt.field)
		}
	}
	got, err := ParseTransfer([]byte(`{"to":"abcdefghjkmn","amount_fen":9223372036854775807,"key":"k-1.x:y_z"}`))
	if err != nil || got.AmountFen != 9223372036854775807 || got.To != "abcdefghjkmn" {
		t.Errorf("ParseTransfer(max int64) = %+v, %v", got, err)
	}
}

func fieldOf(ae *apiError) string {
	if ae == nil {
		return ""
	}
	return ae.field
}

func TestJudgeMemberHealth(t *testing.T) {
	dcs := []string{"a", "b", "c", "d", "e"}
	// round builds one round of answers: every member answers, follows
	// member 1 (in DC a) and has committed and applied index 1000, except
	// as changed.
	round := func(change func(i int, m *memberStatus)) []memberStatus {
		out := make([]memberStatus, len(dcs))
		for i, dc := range dcs {
			out[i] = memberStatus{peer: Peer{DC: dc}, answered: true, leader: 1, member: uint64(i + 1), committed: 1000, applied: 1000}
			if change != nil {
				change(i, &out[i])
			}
		}
		return out
	}
	t0 := time.Unix(1_800_000_000, 0)
	long := t0.Add(-time.Hour) // a start long enough ago for any hold to be over
	fresh := func() map[string]time.Time {
		m := map[string]time.Time{}
		for _, dc := range dcs {
			m[dc] = long
		}
		return m
	}
	check := func(t *testing.T, v *clusterView, leader string, healthy ...string) {
		t.Helper()
		if v.LeaderDC != leader || v.Reachable != (leader != "") || !slices.Equal(v.Healthy, healthy) {
			t.Fatalf("view: leader %q reachable %v healthy %v; want leader %q healthy %v", v.LeaderDC, v.Reachable, v.Healthy, leader, healthy)
		}
	}

	t.Run("all current", func(t *testing.T) {
		check(t, judge(round(nil), fresh(), t0), "a", dcs...)
	})
	t.Run("cut off, then back and held", func(t *testing.T) {
		bad := fresh()
		v := judge(round(func(i int, m *memberStatus) {
			if i == 4 {
				*m = memberStatus{peer: m.peer}
			}
		}), bad, t0)
		check(t, v, "a", "a", "b", "c", "d")
		// Back and current 0.5 s later: still held out, then in after the hold.
		check(t, judge(round(nil), bad, t0.Add(rejoinHold/2)), "a", "a", "b", "c", "d")
		check(t, judge(round(nil), bad, t0.Add(rejoinHold)), "a", dcs...)
	})
	t.Run("behind after a heal", func(t *testing.T) {
		bad := fresh()
		behind := round(func(i int, m *memberStatus) {
			if i == 2 {
				m.committed, m.applied = 1000-maxLagEntries-1, 1000-maxLagEntries-1
			}
		})
		check(t, judge(behind, bad, t0), "a", "a", "b", "d", "e")
		if !bad["c"].Equal(t0) {
			t.Fatalf("lagging member's last bad time = %v, want %v", bad["c"], t0)
		}
		justBehind := round(func(i int, m *memberStatus) {
			if i == 2 {
				m.committed, m.applied = 1000-maxLagEntries, 1000-maxLagEntries
			}
		})
		check(t, judge(justBehind, bad, t0.Add(rejoinHold-time.Millisecond)), "a", "a", "b", "d", "e")
		check(t, judge(justBehind, bad, t0.Add(rejoinHold)), "a", dcs...)
	})
	t.Run("received but not applied", func(t *testing.T) {
		// A rejoined member has the log and knows it committed, but is still
		// applying it: its reads would wait. It is not current until its
		// applied index is close, then held as any rejoining member.
		bad := fresh()
		applying := round(func(i int, m *memberStatus) {
			if i == 1 {
				m.applied = 1000 - maxLagEntries - 1
			}
		})
		check(t, judge(applying, bad, t0), "a", "a", "c", "d", "e")
		check(t, judge(round(nil), bad, t0.Add(rejoinHold/2)), "a", "a", "c", "d", "e")
		check(t, judge(round(nil), bad, t0.Add(rejoinHold)), "a", dcs...)
		// Lag is measured against the most advanced commit, which one
		// member alone may know.
		ahead := round(func(i int, m *memberStatus) {
			if i == 3 {
				m.committed, m.applied = 1000+maxLagEntries+1, 1000+maxLagEntries+1
			}
		})
		check(t, judge(ahead, fresh(), t0), "a", "d")
	})
	t.Run("election is not held", func(t *testing.T) {
		bad := fresh()
		// Member 1 (DC a) is gone; the rest know no leader yet.
		electing := round(func(i int, m *memberStatus) {
			if i == 0 {
				*m = memberStatus{peer: m.peer}
			} else {
				m.leader = 0
			}
		})
		check(t, judge(electing, bad, t0), "")
		// 100 ms later DC c leads: everyone current serves at once.
		elected := round(func(i int, m *memberStatus) {
			if i == 0 {
				*m = memberStatus{peer: m.peer}
			} else {
				m.leader = 3
			}
		})
		check(t, judge(elected, bad, t0.Add(100*time.Millisecond)), "c", "b", "c", "d", "e")
	})
	t.Run("minority follows another leader", func(t *testing.T) {
		bad := fresh()
		split := round(func(i int, m *memberStatus) {
			if i == 4 {
				m.leader = 5
			}
		})
		check(t, judge(split, bad, t0), "a", "a", "b", "c", "d")
		if !bad["e"].Equal(t0) {
			t.Fatal("a member following another leader was not marked bad")
		}
	})
	t.Run("nobody answers", func(t *testing.T) {
		check(t, judge(round(func(_ int, m *memberStatus) { *m = memberStatus{peer: m.peer} }), fresh(), t0), "")
	})
}
