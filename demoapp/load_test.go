package demoapp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fibercut/fibercut/verify"
)

// loadFake serves the three endpoints of api.go from an in-memory
// ledger, idempotent by key. With dropEvery > 0 it applies every
// dropEvery-th new transfer and then holds its answer back until the client
// gives up, as a gateway whose answer is lost after the commit.
type loadFake struct {
	dropEvery int
	hold      time.Duration

	mu       sync.Mutex
	accounts map[string]*loadFakeAccount
	order    []string
	xfers    map[string]Transfer // by key
	applied  map[string]int      // key → times money moved
	dropped  map[string]bool     // keys whose first answer was held back
	rev      int64
	fresh    int // new transfers so far

	requests atomic.Int64
}

type loadFakeAccount struct {
	token   string
	balance int64
}

func newLoadFake(t *testing.T, dropEvery int, hold time.Duration) (*loadFake, *httptest.Server) {
	g := &loadFake{
		dropEvery: dropEvery, hold: hold,
		accounts: map[string]*loadFakeAccount{}, xfers: map[string]Transfer{},
		applied: map[string]int{}, dropped: map[string]bool{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/accounts", g.open)
	mux.HandleFunc("GET /api/accounts/{id}", g.read)
	mux.HandleFunc("POST /api/accounts/{id}/transfers", g.transfer)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.requests.Add(1)
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return g, srv
}

func loadFakeReply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func loadFakeError(w http.ResponseWriter, status int, msg string) {
	loadFakeReply(w, status, ErrorResponse{Error: msg, ServedBy: "fake-a", State: StateServing})
}

func (g *loadFake) open(w http.ResponseWriter, _ *http.Request) {
	g.mu.Lock()
	id := fmt.Sprintf("acc%03d", len(g.order)+1)
	a := &loadFakeAccount{token: "tok-" + id, balance: InitialBalanceFen}
	g.accounts[id] = a
	g.order = append(g.order, id)
	g.mu.Unlock()
	loadFakeReply(w, http.StatusCreated, Account{
		ID: id, Token: a.token, Name: id, HomeDC: "fake-a", HomeCity: "fakecity", BalanceFen: a.balance,
		ServedBy: "fake-a", ServedCity: "fakecity", State: StateServing,
	})
}

// auth checks the bearer token of account id; it answers and returns nil on
// failure. Callers hold g.mu.
func (g *loadFake) auth(w http.ResponseWriter, r *http.Request, id string) *loadFakeAccount {
	a := g.accounts[id]
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	switch {
	case !ok:
		loadFakeError(w, http.StatusUnauthorized, "missing token")
	case a == nil:
		loadFakeError(w, http.StatusNotFound, "no such account")
	case tok != a.token:
		loadFakeError(w, http.StatusForbidden, "wrong token")
	default:
		return a
	}
	return nil
}

func (g *loadFake) read(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	id := r.PathValue("id")
	if a := g.auth(w, r, id); a != nil {
		loadFakeReply(w, http.StatusOK, Account{ID: id, HomeDC: "fake-a", BalanceFen: a.balance, ServedBy: "fake-a", State: StateServing})
	}
}

func (g *loadFake) transfer(w http.ResponseWriter, r *http.Request) {
	var req TransferRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		loadFakeError(w, http.StatusBadRequest, "bad body")
		return
	}
	from := r.PathValue("id")
	g.mu.Lock()
	a := g.auth(w, r, from)
	if a == nil {
		g.mu.Unlock()
		return
	}
	to := g.accounts[req.To]
	switch {
	case req.Key == "" || req.AmountFen <= 0 || to == nil || req.To == from:
		g.mu.Unlock()
		loadFakeError(w, http.StatusBadRequest, "bad transfer")
		return
	}
	if prev, ok := g.xfers[req.Key]; ok {
		same := prev.From == from && prev.To == req.To && prev.AmountFen == req.AmountFen
		bal := a.balance
		g.mu.Unlock()
		if !same {
			loadFakeError(w, http.StatusConflict, "key reused for another transfer")
			return
		}
		loadFakeReply(w, http.StatusOK, TransferResponse{Transfer: prev, Replayed: true, BalanceFen: bal, ServedBy: "fake-a", State: StateServing})
		return
	}
	if a.balance < req.AmountFen {
		g.mu.Unlock()
		loadFakeError(w, http.StatusConflict, "insufficient funds")
		return
	}
	a.balance -= req.AmountFen
	to.balance += req.AmountFen
	g.rev++
	x := Transfer{Key: req.Key, From: from, To: req.To, AmountFen: req.AmountFen, CommittedBy: "fake-a", Revision: g.rev}
	g.xfers[req.Key] = x
	g.applied[req.Key]++
	g.fresh++
	drop := g.dropEvery > 0 && g.fresh%g.dropEvery == 0
	if drop {
		g.dropped[req.Key] = true
	}
	bal := a.balance
	g.mu.Unlock()
	if drop {
		select { // applied, but the answer comes too late
		case <-r.Context().Done():
		case <-time.After(g.hold):
		}
	}
	loadFakeReply(w, http.StatusOK, TransferResponse{Transfer: x, BalanceFen: bal, ServedBy: "fake-a", State: StateServing})
}

// checkLedger asserts the fake's ledger conserved money and applied each
// key at most once.
func (g *loadFake) checkLedger(t *testing.T) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	var sum int64
	for _, a := range g.accounts {
		sum += a.balance
		if a.balance < 0 {
			t.Errorf("negative balance %d", a.balance)
		}
	}
	if want := int64(len(g.accounts)) * InitialBalanceFen; sum != want {
		t.Errorf("money not conserved: sum %d, want %d", sum, want)
	}
	for k, n := range g.applied {
		if n != 1 {
			t.Errorf("key %s moved money %d times", k, n)
		}
	}
}

// runLoadIntoHistory runs a load into an in-memory history and reads it back.
func runLoadIntoHistory(t *testing.T, ctx context.Context, cfg LoadConfig) (LoadStats, verify.Header, []verify.Op, error) {
	t.Helper()
	var buf bytes.Buffer
	w, err := verify.NewWriter(&buf, verify.Header{Target: cfg.BaseURL, Users: cfg.Users, Rate: cfg.Rate})
	if err != nil {
		t.Fatal(err)
	}
	cfg.History = w
	stats, runErr := RunLoad(ctx, cfg)
	// RunLoad flushed: every op is readable before Close, which ends the
	// history with its end record.
	if _, ops, err := verify.ReadHistory(bytes.NewReader(buf.Bytes())); !errors.Is(err, verify.ErrTruncated) || int64(len(ops)) != stats.Ops() {
		t.Fatalf("the flushed history before Close: %d ops, %v; want all %d and no end record yet", len(ops), err, stats.Ops())
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	h, ops, err := verify.ReadHistory(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("read history: %v", err)
	}
	checkLoadHistory(t, ops, stats)
	return stats, h, ops, runErr
}

// checkLoadHistory asserts what holds for every history: unique sequence
// numbers in invocation order, completions after invocations, stats that
// agree with the ops.
func checkLoadHistory(t *testing.T, ops []verify.Op, stats LoadStats) {
	t.Helper()
	bySeq := map[int64]verify.Op{}
	var counts [3]OutcomeCounts
	for _, op := range ops {
		if _, dup := bySeq[op.Seq]; dup {
			t.Errorf("seq %d twice", op.Seq)
		}
		bySeq[op.Seq] = op
		if op.Complete < op.Invoke || op.Invoke < 0 {
			t.Errorf("op %d: invoke %v, complete %v", op.Seq, op.Invoke, op.Complete)
		}
		switch op.Kind {
		case verify.KindOpen:
			counts[0].add(op.Outcome)
		case verify.KindTransfer:
			counts[1].add(op.Outcome)
			if op.Key == "" || op.From == "" || op.To == "" || op.From == op.To || op.AmountFen < 1 || op.AmountFen > 10_000 {
				t.Errorf("transfer op %+v", op)
			}
		case verify.KindRead:
			counts[2].add(op.Outcome)
		}
	}
	for s := int64(2); s <= int64(len(ops)); s++ {
		if a, b := bySeq[s-1], bySeq[s]; b.Invoke < a.Invoke {
			t.Errorf("seq %d invoked before seq %d", s, s-1)
		}
	}
	if counts != [3]OutcomeCounts{stats.Opens, stats.Transfers, stats.Reads} {
		t.Errorf("history counts %+v, stats %+v %+v %+v", counts, stats.Opens, stats.Transfers, stats.Reads)
	}
	l := stats.Latency
	if l.N != int(stats.Transfers.OK) || l.P50 > l.P90 || l.P90 > l.P99 || l.P99 > l.Max {
		t.Errorf("latencies %+v for %d ok transfers", l, stats.Transfers.OK)
	}
}

func TestLoadSteady(t *testing.T) {
	g, srv := newLoadFake(t, 0, 0)
	var progress atomic.Int64
	stats, h, ops, err := runLoadIntoHistory(t, t.Context(), LoadConfig{
		BaseURL: srv.URL, Users: 8, Rate: 400, Duration: time.Second, Seed: 1,
		Progress: func(LoadProgress) { progress.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stats %+v, %d progress reports", stats, progress.Load())
	if h.Format != verify.FormatV1 || h.Users != 8 {
		t.Errorf("header %+v", h)
	}
	if stats.Stopped != StopDuration || stats.Accounts != 8 || stats.Seed != 1 {
		t.Errorf("stopped %q, %d accounts, seed %d", stats.Stopped, stats.Accounts, stats.Seed)
	}
	if stats.Opens != (OutcomeCounts{OK: 8}) {
		t.Errorf("opens %+v, want 8 ok", stats.Opens)
	}
	if n := stats.Transfers.Total(); n < 200 || n > 480 {
		t.Errorf("%d transfers at 400/s for 1 s; want 200..480", n)
	}
	if stats.Transfers.Fail+stats.Transfers.Unknown > 0 {
		t.Errorf("transfers %+v against a healthy fake", stats.Transfers)
	}
	if stats.CommittedPerSec <= 0 || stats.TransferDuration <= 0 {
		t.Errorf("committed %v/s over %v", stats.CommittedPerSec, stats.TransferDuration)
	}
	keys := map[string]bool{}
	for _, op := range ops {
		if op.Kind == verify.KindOpen && (op.From == "" || op.HomeDC != "fake-a" || op.BalanceFen != InitialBalanceFen) {
			t.Errorf("open op %+v", op)
		}
		if op.Kind != verify.KindTransfer {
			continue
		}
		if keys[op.Key] {
			t.Errorf("key %s used twice without retries", op.Key)
		}
		keys[op.Key] = true
		if op.Outcome == verify.OK && (op.Revision <= 0 || op.ServedBy != "fake-a" || op.State != StateServing || op.BalanceFen <= 0) {
			t.Errorf("ok transfer without revision, served-by, state or balance: %+v", op)
		}
	}
	g.checkLedger(t)
	g.mu.Lock()
	if len(g.xfers) != int(stats.Transfers.OK) {
		t.Errorf("fake committed %d transfers, history has %d ok", len(g.xfers), stats.Transfers.OK)
	}
	g.mu.Unlock()
}

func TestLoadLostAnswers(t *testing.T) {
	for _, retry := range []bool{false, true} {
		t.Run(fmt.Sprintf("retry=%v", retry), func(t *testing.T) {
			// 5 % of new transfers are applied, then answered after the
			// client's timeout.
			g, srv := newLoadFake(t, 20, 5*time.Second)
			stats, _, ops, err := runLoadIntoHistory(t, t.Context(), LoadConfig{
				BaseURL: srv.URL, Users: 8, Rate: 200, Duration: time.Second,
				Timeout: 300 * time.Millisecond, Retry: retry,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("stats %+v", stats)
			g.checkLedger(t)
			g.mu.Lock()
			dropped, applied := g.dropped, g.applied
			g.mu.Unlock()
			if len(dropped) == 0 {
				t.Fatal("the fake dropped no answer")
			}
			byKey := map[string][]verify.Op{}
			for _, op := range ops {
				if op.Kind == verify.KindTransfer {
					byKey[op.Key] = append(byKey[op.Key], op)
				}
			}
			for key := range dropped {
				tries := byKey[key]
				if len(tries) == 0 {
					t.Fatalf("dropped key %s not in the history", key)
				}
				if first := tries[0]; first.Outcome != verify.Unknown || first.Status != 0 || !strings.Contains(first.Error, "timeout") {
					t.Errorf("lost answer recorded as %s (status %d, %q); want unknown timeout", first.Outcome, first.Status, first.Error)
				}
				if !retry {
					if len(tries) != 1 {
						t.Errorf("key %s sent %d times without retry", key, len(tries))
					}
					continue
				}
				if len(tries) < 2 { // the run may stop before the retry
					t.Logf("key %s: no retry before the run stopped", key)
					continue
				}
				last := tries[len(tries)-1]
				if last.Outcome != verify.OK || !last.Replayed || last.Attempt != len(tries) || last.Revision == 0 {
					t.Errorf("retry of %s: %+v; want ok, replayed, attempt %d", key, last, len(tries))
				}
				if applied[key] != 1 {
					t.Errorf("key %s applied %d times", key, applied[key])
				}
			}
			for key, tries := range byKey {
				if !dropped[key] && (len(tries) != 1 || tries[0].Outcome != verify.OK) {
					t.Errorf("key %s was not dropped, yet %d tries, first %s", key, len(tries), tries[0].Outcome)
				}
			}
			if retry && stats.Replayed == 0 {
				t.Error("no replayed transfer with retries on")
			}
			if !retry && stats.Transfers.Unknown != int64(len(dropped)) {
				t.Errorf("%d unknown transfers, %d answers dropped", stats.Transfers.Unknown, len(dropped))
			}
		})
	}
}

func TestLoadMaxOps(t *testing.T) {
	g, srv := newLoadFake(t, 0, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	stats, _, ops, err := runLoadIntoHistory(t, ctx, LoadConfig{
		BaseURL: srv.URL, Users: 8, Rate: 1000, Duration: 10 * time.Second, MaxOps: 50,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) > 50 || g.requests.Load() > 50 {
		t.Errorf("%d ops recorded, %d requests served; max 50", len(ops), g.requests.Load())
	}
	if stats.Stopped != StopMaxOps || stats.Ops() != 50 {
		t.Errorf("stopped %q after %d ops; want max-ops after 50", stats.Stopped, stats.Ops())
	}
	g.checkLedger(t)

	// The default bound is Rate×Duration×1.1 + Users.
	r, err := newLoadRun(t.Context(), LoadConfig{BaseURL: srv.URL, Users: 8, Rate: 100, Duration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.maxOps != 228 {
		t.Errorf("default max ops %d, want 228", r.maxOps)
	}
}

func TestLoadCancel(t *testing.T) {
	g, srv := newLoadFake(t, 0, 0)
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	stats, _, ops, err := runLoadIntoHistory(t, ctx, LoadConfig{
		BaseURL: srv.URL, Users: 4, Rate: 100, Duration: time.Minute, Timeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Generous: in-flight requests may run to their timeout.
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("cancel took %v to stop a one-minute run", took)
	}
	if stats.Stopped != StopCanceled {
		t.Errorf("stopped %q, want canceled", stats.Stopped)
	}
	if stats.Transfers.Total() == 0 || len(ops) == 0 {
		t.Errorf("no transfers recorded before the cancel")
	}
	served := g.requests.Load()
	time.Sleep(100 * time.Millisecond)
	if g.requests.Load() != served {
		t.Error("requests still sent after RunLoad returned")
	}
}

func TestLoadNoGateway(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	stats, _, ops, err := runLoadIntoHistory(t, t.Context(), LoadConfig{
		BaseURL: url, Users: 2, Rate: 10, Duration: time.Second, Timeout: time.Second,
	})
	if err == nil || !strings.Contains(err.Error(), "0 of 2 accounts") {
		t.Fatalf("err %v; want one that says no account opened", err)
	}
	if stats.Stopped != StopError || stats.Opens.Unknown != 2*LoadMaxAttempts || len(ops) != 2*LoadMaxAttempts {
		t.Errorf("stopped %q, opens %+v, %d ops; want %d unknown opens", stats.Stopped, stats.Opens, len(ops), 2*LoadMaxAttempts)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	for _, cfg := range []LoadConfig{
		{BaseURL: "http://127.0.0.1:1", Users: 1, Rate: 1, Duration: time.Second},
		{BaseURL: "http://127.0.0.1:1", Users: 2, Rate: 0, Duration: time.Second},
		{BaseURL: "http://127.0.0.1:1", Users: 2, Rate: 1, Duration: 0},
		{BaseURL: "127.0.0.1:1", Users: 2, Rate: 1, Duration: time.Second},
		{BaseURL: "ftp://x", Users: 2, Rate: 1, Duration: time.Second},
		{BaseURL: "http://127.0.0.1:1", Users: 2, Rate: 1, Duration: time.Second, MaxOps: -1},
	} {
		if _, err := RunLoad(t.Context(), cfg); err == nil || !strings.HasPrefix(err.Error(), "demoapp: load: ") {
			t.Errorf("RunLoad(%+v): %v", cfg, err)
		}
	}
}

func TestLoadPacer(t *testing.T) {
	start := time.Now()
	p := newLoadPacer(100, start) // 10 ms apart
	for i := range 5 {
		if got, want := p.reserve(start), start.Add(time.Duration(i)*10*time.Millisecond); !got.Equal(want) {
			t.Errorf("slot %d at %v, want %v", i, got.Sub(start), want.Sub(start))
		}
	}
	// After a stall no debt is kept beyond the slack.
	later := start.Add(time.Second)
	if got := p.reserve(later); got.Before(later.Add(-p.slack)) {
		t.Errorf("after a stall, slot %v before now-slack", later.Sub(got))
	}
}

func TestLoadLatencies(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	got := loadLatencies(d)
	want := Latencies{N: 100, P50: 50 * time.Millisecond, P90: 90 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if (loadLatencies(nil) != Latencies{}) {
		t.Error("latencies of nothing")
	}
}
