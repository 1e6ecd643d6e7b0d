package drill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/fibercut/fibercut/demoapp"
	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/ledgerkeys"
)

// members returns each DC's ledger client URL, on the WAN.
func members(l *lab.Lab) map[string]string {
	m := map[string]string{}
	for _, d := range l.DCs {
		m[d.ID] = "http://" + netip.AddrPortFrom(d.WANIP, demoapp.ClientPort).String()
	}
	return m
}

// ledgerClient connects from the host to every member of the lab's ledger.
func ledgerClient(l *lab.Lab) (*clientv3.Client, error) {
	var eps []string
	for _, u := range members(l) {
		eps = append(eps, u)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("drill: connect to the ledger: %w", err)
	}
	return c, nil
}

// ledgerPrefixes are the key spaces a drill owns.
var ledgerPrefixes = ledgerkeys.All

// How long each step of a reset may take. A long session leaves
// hundreds of thousands of transfers: their deletion is one raft entry,
// but etcd compacts in batches of a thousand revisions with a pause
// between (BenchmarkSoakAcrossDrills: 10 s was too short for 200,000
// transfers), and defragmenting rewrites a member's whole file.
const (
	clearTimeout   = 30 * time.Second
	memberTimeout  = 5 * time.Second // a member held by a kept fault costs this
	compactTimeout = 2 * time.Minute
	defragTimeout  = time.Minute
)

// clearPage is how many keys a reset deletes in one request (a variable
// for tests).
var clearPage int64 = 10_000

// clearPageOf deletes the first page of keys under prefix p and says if
// there are more. A page the cluster did not commit for now (a leader
// election, as right after a heal rejoins a DC) is tried again within
// clearTimeout: deleting a range again is harmless.
func clearPageOf(ctx context.Context, c *clientv3.Client, p string) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, clearTimeout)
	defer cancel()
	for {
		resp, err := c.Get(cctx, p, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithLimit(clearPage))
		if err == nil && len(resp.Kvs) > 0 {
			last := resp.Kvs[len(resp.Kvs)-1].Key
			_, err = c.Delete(cctx, p, clientv3.WithRange(string(last)+"\x00"))
		}
		if err == nil {
			return resp.More, nil
		}
		if !notCommittedNow(err) {
			return false, err
		}
		select {
		case <-cctx.Done():
			return false, err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// notCommittedNow tells the etcd errors of a cluster between leaders: the
// request was not committed now, and may be tried again.
func notCommittedNow(err error) bool {
	for _, e := range []error{rpctypes.ErrTimeout, rpctypes.ErrTimeoutDueToLeaderFail, rpctypes.ErrTimeoutDueToConnectionLost,
		rpctypes.ErrLeaderChanged, rpctypes.ErrNoLeader, rpctypes.ErrGRPCTimeout, rpctypes.ErrGRPCTimeoutDueToLeaderFail,
		rpctypes.ErrGRPCTimeoutDueToConnectionLost, rpctypes.ErrGRPCLeaderChanged, rpctypes.ErrGRPCNoLeader} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// resetLedger deletes every account, balance and transfer, so that the
// drill's verification sees only what its own load did.
func resetLedger(ctx context.Context, c *clientv3.Client) error {
	// A page at a time: one deletion of a long session's million keys is
	// one raft entry that every member takes seconds to apply, and etcd
	// gives up on it ("request timed out", BenchmarkSoakAcrossDrills).
	for _, p := range ledgerPrefixes {
		for {
			more, err := clearPageOf(ctx, c, p)
			if err != nil {
				return fmt.Errorf("drill: clear the lab's ledger (%s*): %w", p, err)
			}
			if !more {
				break
			}
		}
	}
	// Deleted keys keep their space until compacted and the backend is
	// defragmented: without this, drill after drill fills the quota.
	// Each member is settled in turn: a compaction waits only for the
	// member that served it, and a defragmentation while a member is
	// still compacting keeps what it has not yet freed. A member that
	// cannot be reached now (a DC a kept fault holds) is settled by a
	// later reset.
	for _, ep := range c.Endpoints() {
		if err := settleMember(ctx, ep); err != nil {
			slog.Warn("drill: could not free a ledger member's space after clearing it", "member", ep, "err", err)
		}
	}
	return nil
}

// settleMember compacts one member past the reset and defragments it.
// The deletions leave a tombstone per key, which only a compaction at a
// later revision removes: the reset's record (ledgerkeys.Reset), written
// through this member, gives one; compactions run in order on a member,
// so when this one is done there, every earlier one is too.
func settleMember(ctx context.Context, ep string) error {
	mc, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer mc.Close()
	cctx, cancel := context.WithTimeout(ctx, memberTimeout)
	put, err := mc.Put(cctx, ledgerkeys.Reset, time.Now().UTC().Format(time.RFC3339Nano))
	cancel()
	if err != nil {
		return fmt.Errorf("write the reset's record: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, compactTimeout)
	_, err = mc.Compact(pctx, put.Header.Revision, clientv3.WithCompactPhysical())
	cancel()
	if err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
		return fmt.Errorf("compact: %w", err)
	}
	dctx, cancel := context.WithTimeout(ctx, defragTimeout)
	_, err = mc.Defragment(dctx, ep)
	cancel()
	if err != nil {
		return fmt.Errorf("defragment: %w", err)
	}
	return nil
}

// moneySample reads every balance at one revision and checks that they add
// up to accounts × the initial balance.
func moneySample(ctx context.Context, c *clientv3.Client) MoneySample {
	// A member cut off from the quorum answers nothing: ask with a short
	// deadline and a leader required, a few times, so that the client's
	// round robin reaches a member that can answer.
	var resp *clientv3.GetResponse
	var err error
	for range 3 {
		cctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), 300*time.Millisecond)
		resp, err = c.Get(cctx, ledgerkeys.Balances, clientv3.WithPrefix())
		cancel()
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return MoneySample{Detail: "unreadable: " + err.Error()}
	}
	m := MoneySample{Readable: true, Revision: resp.Header.Revision, Accounts: len(resp.Kvs)}
	for _, kv := range resp.Kvs {
		v, err := strconv.ParseInt(string(kv.Value), 10, 64)
		if err != nil {
			m.Detail = fmt.Sprintf("balance %s is not a number: %q", kv.Key, kv.Value)
			return m
		}
		m.SumFen += v
	}
	m.WantFen = int64(m.Accounts) * demoapp.InitialBalanceFen
	m.OK = m.SumFen == m.WantFen
	if !m.OK {
		m.Detail = fmt.Sprintf("at revision %d, %d balances sum to %d fen, want %d", m.Revision, m.Accounts, m.SumFen, m.WantFen)
	}
	return m
}

// converge waits until every member answers, all name the same leader, and
// their applied indexes are within a few entries of each other.
func converge(ctx context.Context, c *clientv3.Client, l *lab.Lab, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	for {
		leaders := map[uint64]bool{}
		var lo, hi uint64
		answered := 0
		var each []string
		for dc, u := range members(l) {
			sctx, scancel := context.WithTimeout(ctx, 500*time.Millisecond)
			st, err := c.Status(sctx, u)
			scancel()
			if err != nil {
				last = fmt.Sprintf("%s: %v", dc, err)
				continue
			}
			answered++
			each = append(each, fmt.Sprintf("%s %d", dc, st.RaftAppliedIndex))
			leaders[st.Leader] = true
			if lo == 0 || st.RaftAppliedIndex < lo {
				lo = st.RaftAppliedIndex
			}
			hi = max(hi, st.RaftAppliedIndex)
		}
		if answered == len(l.DCs) && len(leaders) == 1 && !leaders[0] && hi-lo <= 2 {
			return nil
		}
		if answered == len(l.DCs) {
			slices.Sort(each)
			last = fmt.Sprintf("leaders %v, applied indexes %d..%d (%s)", keys(leaders), lo, hi, strings.Join(each, ", "))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drill: the ledger members did not converge within %s (last: %s)", timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func keys(m map[uint64]bool) []uint64 {
	var out []uint64
	for k := range m {
		out = append(out, k)
	}
	return out
}

// LeaderDC asks the DCs' nodes, over the management network, which DC holds
// the ledger's leader; the answer most of them give wins.
func LeaderDC(ctx context.Context, l *lab.Lab) (string, error) {
	votes := map[string]int{}
	for _, d := range l.DCs {
		h, err := lab.FetchHealth(ctx, d.MgmtIP)
		if err == nil && h.Leader != "" {
			votes[h.Leader]++
		}
	}
	best := ""
	for dc, n := range votes {
		if n > votes[best] {
			best = dc
		}
	}
	if best == "" {
		return "", fmt.Errorf("drill: no DC knows the ledger's leader")
	}
	return best, nil
}
