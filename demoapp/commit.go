package demoapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// writer is a DC's group-commit writer: transfers submitted while a commit is
// in flight ride together in the next one (the seed story's trolley that
// carries ten dishes). One batch is one etcd transaction that creates each
// xfer key only if absent and updates every touched balance under
// compare-on-revision, so a batch either applies whole or not at all, and a
// retried key can never move money twice.
type writer struct {
	l   *Ledger
	max int
	ch  chan *commitReq
	// cache holds the balances and revisions this writer last read or
	// wrote. Only the batching goroutine uses it. A batch whose balances
	// are all cached skips the read; if another writer changed one, the
	// write's revision compare fails and the batch is read afresh.
	cache map[string]cachedBalance
}

type cachedBalance struct{ fen, rev int64 }

type commitReq struct {
	ctx  context.Context
	t    TransferRequest
	from string
	res  chan commitResult
	out  commitResult // filled while the batch is computed
	xfer *Transfer    // the transfer this request creates or replays
}

type commitResult struct {
	resp TransferResponse
	err  error
}

func newWriter(l *Ledger, max int) *writer {
	return &writer{l: l, max: max, ch: make(chan *commitReq, 4*max), cache: map[string]cachedBalance{}}
}

// submit queues a transfer and waits for its batch. With batch false it is
// committed alone, in the caller's goroutine (to measure what group commit
// buys).
func (w *writer) submit(ctx context.Context, t TransferRequest, from string, batch bool) (TransferResponse, error) {
	r := &commitReq{ctx: ctx, t: t, from: from, res: make(chan commitResult, 1)}
	if !batch || w.max == 1 {
		w.commit([]*commitReq{r}, false)
	} else {
		select {
		case w.ch <- r:
		case <-ctx.Done():
			return TransferResponse{}, fmt.Errorf("%w: %v", ErrNoQuorum, ctx.Err()) // never queued
		}
	}
	select {
	case res := <-r.res:
		return res.resp, res.err
	case <-ctx.Done():
		return TransferResponse{}, fmt.Errorf("%w: %v", ErrUnknownResult, ctx.Err())
	}
}

// drain appends to batch what is queued on ch now, up to max in all: a
// group commit takes what arrived while the last one was in flight.
func drain[T any](ch <-chan T, batch []T, max int) []T {
	for len(batch) < max {
		select {
		case r := <-ch:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

func (w *writer) run(ctx context.Context) {
	for {
		var first *commitReq
		select {
		case first = <-w.ch:
		case <-ctx.Done():
			return
		}
		w.commit(drain(w.ch, []*commitReq{first}, w.max), true)
	}
}

// commit commits a batch, retrying on conflict with fresh reads and, when
// conflicts persist, splitting it in halves. cached says whether this is
// the batching goroutine, which may use the cache.
func (w *writer) commit(batch []*commitReq, cached bool) {
	if cached && w.cachedAll(batch) && !w.try(batch, true) {
		return
	}
	for range 3 {
		if !w.try(batch, cached) {
			return
		}
	}
	if len(batch) == 1 {
		r := batch[0]
		r.res <- commitResult{err: fmt.Errorf("%w: the accounts kept changing under this transfer; retry", ErrNoQuorum)}
		return
	}
	half := len(batch) / 2
	w.commit(batch[:half], cached)
	w.commit(batch[half:], cached)
}

// cachedAll reports whether every balance the batch touches is cached.
func (w *writer) cachedAll(batch []*commitReq) bool {
	for _, r := range batch {
		if _, ok := w.cache[BalanceKey(r.from)]; !ok {
			return false
		}
		if _, ok := w.cache[BalanceKey(r.t.To)]; !ok {
			return false
		}
	}
	return true
}

// try runs one attempt and reports whether it hit a conflict (nothing was
// applied and the whole batch should be tried again). Otherwise every
// request has been answered. With fromCache it reads nothing: balances come
// from the cache, and transfer keys are taken as absent (the write's
// create-only compare checks that; a retried key fails it and the batch is
// read afresh). With useCache (but not fromCache) the read refreshes the
// cache and the write updates it.
func (w *writer) try(batch []*commitReq, useCache bool) (conflict bool) {
	fromCache := useCache && w.cachedAll(batch)
	return w.attempt(batch, useCache, fromCache)
}

func (w *writer) attempt(batch []*commitReq, useCache, fromCache bool) (conflict bool) {
	l := w.l
	// Read every balance and transfer key the batch touches, in one
	// round trip.
	var keys []string
	index := map[string]int{}
	want := func(k string) {
		if _, ok := index[k]; !ok {
			index[k] = len(keys)
			keys = append(keys, k)
		}
	}
	for _, r := range batch {
		want(BalanceKey(r.from))
		want(BalanceKey(r.t.To))
		want(TransferKey(r.from, r.t.Key))
	}
	ops := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		ops[i] = clientv3.OpGet(k)
	}
	ctx, cancel := callCtx(batch[0].ctx, commitTimeout)
	defer cancel()
	type balance struct {
		fen    int64
		rev    int64
		exists bool
		dirty  bool
	}
	bals := map[string]*balance{}
	stored := map[string]*Transfer{} // xfer key → transfer (stored or created in this batch)
	if fromCache {
		for _, k := range keys {
			if c, ok := w.cache[k]; ok {
				bals[k] = &balance{fen: c.fen, rev: c.rev, exists: true}
			}
		}
		keys = nil
	}
	var read *clientv3.TxnResponse
	if !fromCache {
		var err error
		if read, err = l.local.Txn(ctx).Then(ops...).Commit(); err != nil {
			w.fail(batch, l.unavailable(err))
			return false
		}
	}
	for i, k := range keys {
		kvs := read.Responses[i].GetResponseRange().Kvs
		switch {
		case len(kvs) == 0:
			if k[:len(prefixBalance)] == prefixBalance {
				bals[k] = &balance{}
			}
		case k[:len(prefixBalance)] == prefixBalance:
			fen, err := strconv.ParseInt(string(kvs[0].Value), 10, 64)
			if err != nil {
				w.fail(batch, fmt.Errorf("demoapp: corrupt balance %s: %w", k, err))
				return false
			}
			bals[k] = &balance{fen: fen, rev: kvs[0].ModRevision, exists: true}
			if useCache {
				w.cache[k] = cachedBalance{fen, kvs[0].ModRevision}
			}
		default:
			var t Transfer
			if err := json.Unmarshal(kvs[0].Value, &t); err != nil {
				w.fail(batch, fmt.Errorf("demoapp: corrupt transfer %s: %w", k, err))
				return false
			}
			t.Revision = kvs[0].ModRevision
			stored[k] = &t
		}
	}
	// Apply the batch in memory, in order.
	var created []string
	var puts []clientv3.Op
	for _, r := range batch {
		r.out, r.xfer = commitResult{}, nil
		xk := TransferKey(r.from, r.t.Key)
		from, to := bals[BalanceKey(r.from)], bals[BalanceKey(r.t.To)]
		if t, ok := stored[xk]; ok {
			if t.To != r.t.To || t.AmountFen != r.t.AmountFen {
				r.out.err = fmt.Errorf("%w: key %q moved %d fen to %s", ErrKeyReused, r.t.Key, t.AmountFen, t.To)
				continue
			}
			r.xfer = t
			r.out.resp = TransferResponse{Replayed: true, BalanceFen: from.fen}
			continue
		}
		switch {
		case !from.exists:
			r.out.err = fmt.Errorf("%w %q", ErrNoAccount, r.from)
			continue
		case !to.exists:
			r.out.err = &apiError{status: http.StatusNotFound, field: "to", msg: fmt.Sprintf("to: %v %q", ErrNoAccount, r.t.To), err: ErrNoAccount}
			continue
		case from.fen < r.t.AmountFen:
			if fromCache {
				// The cache may be behind a credit made by another
				// writer: never refuse on its word; read afresh.
				delete(w.cache, BalanceKey(r.from))
				return true
			}
			r.out.err = fmt.Errorf("%w: balance %d fen, transfer %d fen", ErrFunds, from.fen, r.t.AmountFen)
			continue
		}
		from.fen -= r.t.AmountFen
		to.fen += r.t.AmountFen + w.l.cfg.breakExtraFen
		from.dirty, to.dirty = true, true
		t := &Transfer{Key: r.t.Key, From: r.from, To: r.t.To, AmountFen: r.t.AmountFen, CommittedBy: l.self.DC}
		stored[xk] = t
		created = append(created, xk)
		b, _ := json.Marshal(t)
		puts = append(puts, clientv3.OpPut(xk, string(b)))
		r.xfer = t
		r.out.resp = TransferResponse{BalanceFen: from.fen}
	}
	if len(created) > 0 {
		var cmps []clientv3.Cmp
		for k, b := range bals {
			if b.dirty {
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", b.rev))
				puts = append(puts, clientv3.OpPut(k, strconv.FormatInt(b.fen, 10)))
			}
		}
		for _, xk := range created {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(xk), "=", 0))
		}
		resp, err := l.local.Txn(ctx).If(cmps...).Then(puts...).Commit()
		if useCache && (err != nil || !resp.Succeeded) {
			for k, b := range bals { // unknown or stale: forget them
				if b.dirty {
					delete(w.cache, k)
				}
			}
		}
		if err != nil {
			// Refused before it was proposed: nothing applied. Otherwise
			// (a timeout) it may have been: the client retries the key.
			if errors.Is(err, rpctypes.ErrNoLeader) || isNoSpace(err) {
				w.fail(batch, l.unavailable(err))
			} else {
				w.fail(batch, fmt.Errorf("%w: %v", ErrUnknownResult, err))
			}
			return false
		}
		if !resp.Succeeded {
			return true
		}
		for _, xk := range created {
			stored[xk].Revision = resp.Header.Revision
		}
		if useCache {
			for k, b := range bals {
				if b.dirty {
					w.cache[k] = cachedBalance{b.fen, resp.Header.Revision}
				}
			}
		}
	}
	for _, r := range batch {
		if r.out.err == nil {
			r.out.resp.Transfer = *r.xfer
		}
		r.res <- r.out
	}
	return false
}

// fail answers every request of the batch with err.
func (w *writer) fail(batch []*commitReq, err error) {
	for _, r := range batch {
		r.res <- commitResult{err: err}
	}
}
