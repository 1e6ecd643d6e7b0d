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

// defragTimeout bounds the defragmentation of one member after a reset:
// seconds for the few hundred MiB a long drill leaves on this lab's disks.
const defragTimeout = time.Minute

// resetLedger deletes every account, balance and transfer, so that the
// drill's verification sees only what its own load did.
func resetLedger(ctx context.Context, c *clientv3.Client) error {
	ops := make([]clientv3.Op, len(ledgerPrefixes))
	for i, p := range ledgerPrefixes {
		ops[i] = clientv3.OpDelete(p, clientv3.WithPrefix())
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.Txn(cctx).Then(ops...).Commit(); err != nil {
		return fmt.Errorf("drill: clear the lab's ledger: %w", err)
	}
	// Deleted keys keep their space until compacted and the backend is
	// defragmented: without this, drill after drill fills the quota. The
	// deletions leave a tombstone per key, which a compaction removes only
	// at a later revision: the reset's own record gives one.
	put, err := c.Put(cctx, ledgerkeys.Reset, time.Now().UTC().Format(time.RFC3339))
	if err != nil {
		return fmt.Errorf("drill: clear the lab's ledger: %w", err)
	}
	if _, err := c.Compact(cctx, put.Header.Revision, clientv3.WithCompactPhysical()); err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
		return fmt.Errorf("drill: compact the lab's ledger after clearing it: %w", err)
	}
	// A member that cannot be reached now (a DC a kept fault holds) is
	// defragmented by a later reset. Each gets its own time: defragmenting
	// rewrites the whole file, and a member is blocked meanwhile.
	for _, ep := range c.Endpoints() {
		dctx, cancel := context.WithTimeout(ctx, defragTimeout)
		_, err := c.Defragment(dctx, ep)
		cancel()
		if err != nil {
			slog.Warn("drill: could not defragment a ledger member after clearing it", "member", ep, "err", err)
		}
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
