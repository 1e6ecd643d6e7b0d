package demoapp

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fibercut/fibercut/verify"
)

// LoadConfig configures [RunLoad].
type LoadConfig struct {
	// BaseURL is the gateway, e.g. http://10.200.0.5:8080.
	BaseURL string
	// Users is the number of virtual users, at least 2. Each opens one
	// account and has at most one request in flight, like a person; a user
	// whose account could not be opened sits out.
	Users int
	// Rate is the target number of transfers per second, all users together.
	Rate float64
	// Duration is how long transfers are sent, after the accounts are open.
	Duration time.Duration
	// MaxOps bounds the number of requests (every attempt of every kind);
	// 0 means Rate×Duration×1.1 + Users.
	MaxOps int64
	// Timeout bounds each request; 2 s by default. A request that times out
	// has an unknown outcome.
	Timeout time.Duration
	// Seed makes the choice of payees and amounts repeatable; 0 picks one,
	// reported in [LoadStats].Seed. Idempotency keys always carry a fresh
	// random prefix, so two runs never share a key.
	Seed int64
	// History, when set, receives every operation; its clock times them.
	// RunLoad flushes it before returning but does not close it.
	History *verify.Writer
	// MaxAmountFen bounds each transfer's amount, drawn from
	// [1, MaxAmountFen]; 10_000 (¥100) by default.
	MaxAmountFen int64
	// Retry resends a transfer whose outcome is unknown, with the same key,
	// up to [LoadMaxAttempts] attempts in all, 50 ms apart and doubling.
	// Each attempt is its own op. Nothing is resent once the run stops, so
	// an outcome can stay unknown.
	Retry bool
	// NoBatch asks the DCs to commit each transfer alone instead of in a
	// group commit, to measure what group commit buys.
	NoBatch bool
	// Progress, when set, is called about once a second, from one goroutine,
	// with the counts so far.
	Progress func(LoadProgress)
	// OnTransfers, when set, is called once, as the transfer phase begins
	// (every account is open), with the history clock's reading then.
	OnTransfers func(at time.Duration)
	// OnOp, when set, is called with every operation as it is recorded,
	// from the users' goroutines, possibly at once: it must be quick and
	// safe for concurrent use.
	OnOp func(verify.Op)
}

// LoadMaxAttempts bounds the attempts of one transfer with
// [LoadConfig].Retry, and of opening one account.
const LoadMaxAttempts = 5

// StopReason says why a load run stopped sending.
type StopReason string

const (
	StopDuration StopReason = "duration" // Duration elapsed
	StopMaxOps   StopReason = "max-ops"  // MaxOps requests were sent
	StopCanceled StopReason = "canceled" // the context was cancelled
	StopError    StopReason = "error"    // the history could not be written, or no accounts
)

// LoadProgress is a snapshot of a running load.
type LoadProgress struct {
	Elapsed time.Duration // since the run started
	Ops     int64         // operations completed, every kind
	OK      int64
	Fail    int64
	Unknown int64
	// OKPerSec is the rate of ok transfers since the previous snapshot.
	OKPerSec float64
}

// OutcomeCounts counts operations by outcome.
type OutcomeCounts struct {
	OK, Fail, Unknown int64
}

// Total is the number of operations counted.
func (c OutcomeCounts) Total() int64 { return c.OK + c.Fail + c.Unknown }

func (c *OutcomeCounts) add(o verify.Outcome) {
	switch o {
	case verify.OK:
		c.OK++
	case verify.Fail:
		c.Fail++
	default:
		c.Unknown++
	}
}

// Latencies summarises how long operations took, exact nearest-rank
// quantiles.
type Latencies struct {
	N                  int
	P50, P90, P99, Max time.Duration
}

// LoadStats summarises a load run, computed from its operations.
type LoadStats struct {
	Seed     int64
	Accounts int // accounts opened
	// Counts by kind and outcome; every attempt is one operation.
	Opens, Transfers, Reads OutcomeCounts
	// Retries counts attempts after the first; Replayed the ok transfers
	// whose key had already moved money on an earlier attempt.
	Retries, Replayed int64
	// CommittedPerSec is ok transfers per second of TransferDuration.
	CommittedPerSec float64
	// Latency is of ok transfers.
	Latency Latencies
	// TransferDuration is from the first transfer to when sending stopped;
	// Duration is the whole run, opening accounts and the final drain
	// included.
	TransferDuration, Duration time.Duration
	Stopped                    StopReason
}

// Ops is the number of operations of every kind.
func (s LoadStats) Ops() int64 { return s.Opens.Total() + s.Transfers.Total() + s.Reads.Total() }

// RunLoad opens cfg.Users accounts through the gateway, then sends transfers
// between them at cfg.Rate for cfg.Duration, recording every request in
// cfg.History. It stops sending at Duration, at MaxOps or when ctx is
// cancelled; requests in flight then may complete, up to their timeout,
// and the history is flushed. A cancelled ctx is not an error: the stats
// say [StopCanceled].
func RunLoad(ctx context.Context, cfg LoadConfig) (LoadStats, error) {
	r, err := newLoadRun(ctx, cfg)
	if err != nil {
		return LoadStats{}, err
	}
	return r.run()
}

// loadRun is one run of RunLoad.
type loadRun struct {
	cfg     LoadConfig
	parent  context.Context // the caller's: cancelling it stops the run
	ctx     context.Context // for requests: parent without its cancellation
	base    *url.URL
	client  *http.Client
	clock   *verify.Clock
	keyPfx  string // random per run
	seed    int64
	maxOps  int64
	started time.Time

	sent atomic.Int64 // requests started, for MaxOps

	stopOnce sync.Once
	stopped  chan struct{}
	reason   StopReason
	stopAt   time.Time

	mu        sync.Mutex
	runErr    error // the first error, which stopped the run
	stats     LoadStats
	latencies []time.Duration // of ok transfers

	accounts []loadAccount // by user; id "" when not opened
}

type loadAccount struct {
	id, token, homeDC string
}

// Validate reports what RunLoad would reject in cfg, before anything is
// sent (or a history file created).
func (cfg LoadConfig) Validate() error {
	if cfg.Users < 2 {
		return fmt.Errorf("demoapp: load: %d users; need at least 2 to transfer between", cfg.Users)
	}
	if !(cfg.Rate > 0) || math.IsInf(cfg.Rate, 0) {
		return fmt.Errorf("demoapp: load: rate %v; want a positive number of transfers per second", cfg.Rate)
	}
	if cfg.Duration <= 0 {
		return fmt.Errorf("demoapp: load: duration %v; want a positive duration", cfg.Duration)
	}
	if cfg.MaxOps < 0 {
		return fmt.Errorf("demoapp: load: max ops %d; want 0 (default) or more", cfg.MaxOps)
	}
	if cfg.Timeout < 0 || cfg.MaxAmountFen < 0 {
		return fmt.Errorf("demoapp: load: timeout %v and max amount %d must not be negative", cfg.Timeout, cfg.MaxAmountFen)
	}
	_, err := parseGatewayURL(cfg.BaseURL)
	return err
}

func parseGatewayURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSuffix(s, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("demoapp: load: gateway URL %q: want http://host:port", s)
	}
	return u, nil
}

func newLoadRun(ctx context.Context, cfg LoadConfig) (*loadRun, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	base, err := parseGatewayURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.MaxAmountFen == 0 {
		cfg.MaxAmountFen = 10_000
	}
	maxOps := cfg.MaxOps
	if maxOps == 0 {
		// Less a hair, so that 100/s × 2 s × 1.1 is 220, not 221.
		maxOps = max(1, int64(math.Ceil(cfg.Rate*cfg.Duration.Seconds()*1.1-1e-6))) + int64(cfg.Users)
	}
	seed := cfg.Seed
	for seed == 0 {
		seed = rand.Int64()
	}
	var pfx [4]byte
	crand.Read(pfx[:])
	var clock *verify.Clock
	if cfg.History != nil {
		clock = cfg.History.Clock()
	} else {
		clock = verify.NewClock(time.Now())
	}
	return &loadRun{
		cfg:      cfg,
		parent:   ctx,
		ctx:      context.WithoutCancel(ctx),
		base:     base,
		client:   newLoadClient(cfg.Users, cfg.Timeout),
		clock:    clock,
		keyPfx:   hex.EncodeToString(pfx[:]),
		seed:     seed,
		maxOps:   maxOps,
		stopped:  make(chan struct{}),
		accounts: make([]loadAccount, cfg.Users),
	}, nil
}

// newLoadClient is one client for many concurrent requests to one host:
// no proxy, an idle connection kept per user, deadlines per request.
func newLoadClient(users int, timeout time.Duration) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        2 * users,
			MaxIdleConnsPerHost: 2 * users,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		// A redirect is not part of the API; its outcome is unknown.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (r *loadRun) run() (LoadStats, error) {
	r.started = time.Now()
	defer r.client.CloseIdleConnections()
	if r.parent.Err() != nil {
		r.stop(StopCanceled)
	}
	done := make(chan struct{})
	var bg sync.WaitGroup
	defer bg.Wait()
	defer close(done)
	bg.Go(func() {
		select {
		case <-r.parent.Done():
			r.stop(StopCanceled)
		case <-done:
		}
	})
	if r.cfg.Progress != nil {
		bg.Go(func() { r.progress(done) })
	}

	r.openAccounts()
	var payers []int
	for u, a := range r.accounts {
		if a.id != "" {
			payers = append(payers, u)
		}
	}
	r.mu.Lock()
	r.stats.Accounts = len(payers)
	r.mu.Unlock()

	var phase time.Time // start of the transfers; zero if none were sent
	switch {
	case r.isStopped():
	case len(payers) < 2:
		r.setErr(fmt.Errorf("demoapp: load: only %d of %d accounts opened through %s; need at least 2", len(payers), r.cfg.Users, r.base))
	default:
		phase = time.Now()
		if r.cfg.OnTransfers != nil {
			r.cfg.OnTransfers(r.cfg.History.Clock().Since())
		}
		timer := time.AfterFunc(r.cfg.Duration, func() { r.stop(StopDuration) })
		p := newLoadPacer(r.cfg.Rate, phase)
		var wg sync.WaitGroup
		for _, u := range payers {
			wg.Go(func() { r.transfers(u, payers, p) })
		}
		wg.Wait() // users stop only once the run is stopped
		timer.Stop()
	}
	// No-op when already stopped; after it, reason and stopAt are safe to read.
	r.stop(StopDuration)

	var flushErr error
	if r.cfg.History != nil {
		flushErr = r.cfg.History.Flush()
	}
	stats := r.summarise(phase)
	r.mu.Lock()
	err := r.runErr
	r.mu.Unlock()
	if err == nil && flushErr != nil {
		err = fmt.Errorf("demoapp: load: flush history: %w", flushErr)
	}
	return stats, err
}

// stop ends sending, for the first reason given.
func (r *loadRun) stop(reason StopReason) {
	r.stopOnce.Do(func() {
		r.reason = reason
		r.stopAt = time.Now()
		close(r.stopped)
	})
}

func (r *loadRun) isStopped() bool {
	select {
	case <-r.stopped:
		return true
	default:
		return false
	}
}

// setErr stops the run on its first error.
func (r *loadRun) setErr(err error) {
	r.mu.Lock()
	if r.runErr == nil {
		r.runErr = err
	}
	r.mu.Unlock()
	r.stop(StopError)
}

// acquire is the permission to send one more request: false once the run
// has stopped or MaxOps requests were sent.
func (r *loadRun) acquire() bool {
	if r.isStopped() {
		return false
	}
	n := r.sent.Add(1)
	if n >= r.maxOps {
		r.stop(StopMaxOps)
	}
	return n <= r.maxOps
}

// sleep waits d, or less if the run stops; it reports whether the run goes on.
func (r *loadRun) sleep(d time.Duration) bool {
	if d <= 0 {
		return !r.isStopped()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return !r.isStopped()
	case <-r.stopped:
		return false
	}
}

// loadBackoff is the pause before attempt n+1: 50 ms doubling, at most 1 s.
func loadBackoff(n int) time.Duration {
	return min(50*time.Millisecond<<min(n-1, 5), time.Second)
}

// loadPacer spaces the transfers of all users at the target rate. A user
// reserves the next slot when it is free to send; no debt accumulates
// while every user is busy (at most slack's worth is caught up), so the
// load does not burst when a stalled service recovers.
type loadPacer struct {
	mu       sync.Mutex
	interval time.Duration
	slack    time.Duration
	next     time.Time
}

func newLoadPacer(rate float64, start time.Time) *loadPacer {
	return &loadPacer{interval: time.Duration(float64(time.Second) / rate), slack: 20 * time.Millisecond, next: start}
}

// reserve returns the time at which the caller may send.
func (p *loadPacer) reserve(now time.Time) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	slot := p.next
	if earliest := now.Add(-p.slack); slot.Before(earliest) {
		slot = earliest
	}
	p.next = slot.Add(p.interval)
	return slot
}

// openAccounts opens one account per user, concurrently, each with up to
// LoadMaxAttempts attempts.
func (r *loadRun) openAccounts() {
	var wg sync.WaitGroup
	for u := range r.cfg.Users {
		wg.Go(func() {
			for attempt := 1; attempt <= LoadMaxAttempts; attempt++ {
				if attempt > 1 && !r.sleep(loadBackoff(attempt-1)) {
					return
				}
				if !r.acquire() {
					return
				}
				op, a := r.openOne(u, attempt)
				if !r.record(op) {
					return
				}
				if op.Outcome == verify.OK && op.Error == "" {
					r.accounts[u] = loadAccount{id: a.ID, token: a.Token, homeDC: a.HomeDC}
					return
				}
			}
		})
	}
	wg.Wait()
}

func (r *loadRun) openOne(u, attempt int) (verify.Op, Account) {
	seq, invoke := r.clock.Begin()
	var a Account
	status, er, err := r.exchange(http.MethodPost, "/api/accounts", "", nil, &a)
	op := r.newOp(seq, invoke, u, verify.KindOpen, status, er, err)
	op.Attempt = attempt
	if op.Outcome == verify.OK && err == nil {
		op.From, op.HomeDC, op.ServedBy, op.State, op.BalanceFen = a.ID, a.HomeDC, a.ServedBy, a.State, a.BalanceFen
		if a.ID == "" || a.Token == "" {
			op.Error = "answer lacks the account id or token"
		}
	}
	return op, a
}

// transfers is one user's life: wait for a slot, pay a random other
// account, retry an unknown outcome with the same key when asked to.
func (r *loadRun) transfers(u int, payers []int, p *loadPacer) {
	rng := rand.New(rand.NewPCG(uint64(r.seed), uint64(u)))
	attempts := 1
	if r.cfg.Retry {
		attempts = LoadMaxAttempts
	}
	for n := 1; ; n++ {
		slot := p.reserve(time.Now())
		if !r.sleep(time.Until(slot)) {
			return
		}
		i := rng.IntN(len(payers) - 1)
		if payers[i] == u {
			i = len(payers) - 1
		}
		to := payers[i]
		amount := 1 + rng.Int64N(r.cfg.MaxAmountFen)
		key := fmt.Sprintf("%s-u%d-%d", r.keyPfx, u, n)
		for attempt := 1; attempt <= attempts; attempt++ {
			if attempt > 1 && !r.sleep(loadBackoff(attempt-1)) {
				return
			}
			if !r.acquire() {
				return
			}
			op := r.transferOne(u, r.accounts[u], r.accounts[to], amount, key, attempt)
			if !r.record(op) {
				return
			}
			if op.Outcome != verify.Unknown {
				break
			}
		}
	}
}

func (r *loadRun) transferOne(u int, from, to loadAccount, amount int64, key string, attempt int) verify.Op {
	seq, invoke := r.clock.Begin()
	var tr TransferResponse
	status, er, err := r.exchange(http.MethodPost, "/api/accounts/"+url.PathEscape(from.id)+"/transfers", from.token,
		TransferRequest{To: to.id, AmountFen: amount, Key: key}, &tr)
	op := r.newOp(seq, invoke, u, verify.KindTransfer, status, er, err)
	op.Key, op.Attempt, op.From, op.To, op.AmountFen, op.HomeDC = key, attempt, from.id, to.id, amount, from.homeDC
	if op.Outcome == verify.OK && err == nil {
		op.ServedBy, op.State, op.Revision, op.Replayed, op.BalanceFen =
			tr.ServedBy, tr.State, tr.Transfer.Revision, tr.Replayed, tr.BalanceFen
	}
	return op
}

// newOp stamps completion and classifies the answer.
func (r *loadRun) newOp(seq int64, invoke time.Duration, u int, kind string, status int, er ErrorResponse, err error) verify.Op {
	op := verify.Op{
		Seq: seq, User: u, Kind: kind, Invoke: invoke, Complete: r.clock.Since(),
		Status: status, Outcome: verify.Classify(status, err, er.Unknown),
		ServedBy: er.ServedBy, State: er.State,
	}
	switch {
	case err != nil:
		op.Error = err.Error()
	case er.Error != "":
		op.Error = er.Error
	}
	return op
}

// exchange sends one request, with the run's timeout, and reads the
// answer: the status (0 when none came), the error body of a non-2xx
// answer, and the error that kept the exchange from completing (for a 2xx
// answer, one that kept its body from decoding into out).
func (r *loadRun) exchange(method, path, token string, in, out any) (int, ErrorResponse, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, ErrorResponse{}, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, r.base.String()+path, body)
	if err != nil {
		return 0, ErrorResponse{}, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set(HeaderClient, ClientLoad) // the gateway's audience record leaves it out
	if r.cfg.NoBatch {
		req.Header.Set(headerBatch, "off")
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, ErrorResponse{}, r.transportErr(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, ErrorResponse{}, fmt.Errorf("read answer: %w", r.transportErr(err))
	}
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, ErrorResponse{}, fmt.Errorf("decode answer: %w", err)
		}
		return resp.StatusCode, ErrorResponse{}, nil
	}
	var er ErrorResponse
	if json.Unmarshal(data, &er) != nil || er.Error == "" {
		snippet := strings.TrimSpace(string(data[:min(len(data), 200)]))
		er = ErrorResponse{Error: fmt.Sprintf("HTTP %d: %s", resp.StatusCode, snippet)}
	}
	return resp.StatusCode, er, nil
}

// transportErr shortens a client error for the history: a timeout says so,
// others lose the method and URL every op would repeat.
func (r *loadRun) transportErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("timeout after %v", r.cfg.Timeout)
	}
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}

// record counts op and appends it to the history; false when the history
// failed, which stops the run.
func (r *loadRun) record(op verify.Op) bool {
	r.mu.Lock()
	switch op.Kind {
	case verify.KindOpen:
		r.stats.Opens.add(op.Outcome)
	case verify.KindTransfer:
		r.stats.Transfers.add(op.Outcome)
		if op.Outcome == verify.OK {
			r.latencies = append(r.latencies, op.Latency())
			if op.Replayed {
				r.stats.Replayed++
			}
		}
	case verify.KindRead:
		r.stats.Reads.add(op.Outcome)
	}
	if op.Attempt > 1 {
		r.stats.Retries++
	}
	r.mu.Unlock()
	if r.cfg.OnOp != nil {
		r.cfg.OnOp(op)
	}
	if r.cfg.History != nil {
		if err := r.cfg.History.Append(op); err != nil {
			r.setErr(fmt.Errorf("demoapp: load: record op %d: %w", op.Seq, err))
			return false
		}
	}
	return true
}

// progress calls cfg.Progress every second until done.
func (r *loadRun) progress(done <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last, lastOK := r.started, int64(0)
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			r.mu.Lock()
			s := r.stats
			r.mu.Unlock()
			p := LoadProgress{
				Elapsed: now.Sub(r.started),
				Ops:     s.Ops(),
				OK:      s.Opens.OK + s.Transfers.OK + s.Reads.OK,
				Fail:    s.Opens.Fail + s.Transfers.Fail + s.Reads.Fail,
				Unknown: s.Opens.Unknown + s.Transfers.Unknown + s.Reads.Unknown,
			}
			if d := now.Sub(last).Seconds(); d > 0 {
				p.OKPerSec = float64(s.Transfers.OK-lastOK) / d
			}
			last, lastOK = now, s.Transfers.OK
			r.cfg.Progress(p)
		}
	}
}

// summarise computes the stats once the run has stopped and drained.
func (r *loadRun) summarise(phase time.Time) LoadStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Seed, s.Stopped, s.Duration = r.seed, r.reason, time.Since(r.started)
	if !phase.IsZero() && r.stopAt.After(phase) {
		s.TransferDuration = r.stopAt.Sub(phase)
		s.CommittedPerSec = float64(s.Transfers.OK) / s.TransferDuration.Seconds()
	}
	s.Latency = loadLatencies(r.latencies)
	return s
}

// loadLatencies sorts d and takes exact nearest-rank quantiles.
func loadLatencies(d []time.Duration) Latencies {
	if len(d) == 0 {
		return Latencies{}
	}
	slices.Sort(d)
	q := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(d)))) - 1
		return d[max(0, min(i, len(d)-1))]
	}
	return Latencies{N: len(d), P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: d[len(d)-1]}
}
