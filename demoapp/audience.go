package demoapp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/fibercut/fibercut/verify"
)

// The audience record: the gateway keeps an append-only record of every
// account opening and transfer made through it by anyone but the load
// generator (the hall's phones, or whoever else calls the public API), so a
// drill can prove the hall's money as it proves the load's. The load
// generator marks its requests with HeaderClient: ClientLoad; the audience
// page marks its own with ClientPage. Requests that say neither, and a
// stranger's that say ClientLoad, are recorded too: a request the record
// does not hold would show up in the ledger as a transfer never issued.
//
// The record is served on the gateway's management address only
// ([GatewayConfig.Record]), never on the public port:
//
//	GET  /internal/audience          the record so far: a fibercut-history/1 stream
//	GET  /internal/audience/summary  accounts opened, by home city, and how many are served from another city now
//	POST /internal/audience/freeze   close the hall's transfers, wait for those in flight, return the record
//	POST /internal/audience/reset    empty the record and open the hall again (the ledger was cleared)
const (
	HeaderClient = "X-Fibercut-Client"
	ClientLoad   = "load" // the load generator: not recorded
	ClientPage   = "page" // the audience page
)

// MaxAudienceOps bounds the record. When it is full the gateway refuses
// the hall's openings and transfers (503, nothing applied) rather than
// serve requests it cannot account for.
const MaxAudienceOps = 200_000

// EnvTestDropAudience, set to N on the gateway (tests only), makes it
// answer the N-th audience transfer (by distinct key) after each reset
// with a made-up "ok"
// and never send it to the ledger: a transfer acknowledged and lost, which
// the drill's verdict must catch and name.
const EnvTestDropAudience = "FIBERCUT_TEST_DROP_AUDIENCE"

// Paths of the record, on the gateway's management address.
const (
	PathAudience        = "/internal/audience"
	PathAudienceSummary = "/internal/audience/summary"
	PathAudienceFreeze  = "/internal/audience/freeze"
	PathAudienceReset   = "/internal/audience/reset"
)

// AudienceSummary is what the stage shows of the hall.
type AudienceSummary struct {
	// Opened counts the accounts opened, by home city.
	Opened map[string]int `json:"opened"`
	// Switched counts those served now by a DC in another city than their
	// home's.
	Switched int `json:"switched"`
	// Transfers counts the transfers acknowledged (distinct keys).
	Transfers int  `json:"transfers"`
	Frozen    bool `json:"frozen"`
}

// audience is the record. Every recorded request holds gate for reading
// while it runs, so that freeze, which takes it for writing, waits for
// those in flight.
type audience struct {
	gate sync.RWMutex

	mu       sync.Mutex
	base     time.Time // the record's base instant: ops' times count from it
	ops      []verify.Op
	frozen   bool
	accounts map[string]string // account id → home city, opened through the record
	acked    map[string]bool   // "from/key" of transfers acknowledged
	keys     map[string]bool   // "from/key" of every transfer invoked since reset
	dropNth  int               // tests: the transfer (by distinct key) to drop, 0 for none
	max      int               // accounts the hall may open
	opening  int               // openings admitted and not answered yet
}

func newAudience(dropNth, max int) *audience {
	return &audience{base: time.Now(), accounts: map[string]string{}, acked: map[string]bool{}, keys: map[string]bool{},
		dropNth: dropNth, max: max}
}

// recorded wraps the public handlers of openings and transfers: requests
// marked as the load's pass through, the others are recorded.
func (g *gateway) recorded(kind string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(HeaderClient) == ClientLoad && g.trusted(r) {
			next(w, r)
			return
		}
		a := g.aud
		a.gate.RLock()
		defer a.gate.RUnlock()
		body, err := io.ReadAll(io.LimitReader(r.Body, 4096))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: "body: " + err.Error(), Field: "body"})
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		op := verify.Op{Kind: kind, Source: verify.SourceAudience, Attempt: 1}
		if kind == verify.KindTransfer {
			op.From = r.PathValue("id")
			var req TransferRequest
			if json.Unmarshal(body, &req) == nil {
				op.To, op.AmountFen, op.Key = req.To, req.AmountFen, req.Key
			}
		}
		drop, status, why := a.admit(op)
		if why != "" {
			er := ErrorResponse{Error: why}
			if status == http.StatusForbidden {
				er.Field = "accounts" // the hall is full
			}
			writeJSON(w, status, er)
			return
		}
		if op.Kind == verify.KindOpen {
			defer a.opened()
		}
		op.Invoke = time.Since(a.base)
		rec := &captureWriter{ResponseWriter: w}
		if drop {
			// Tests only: acknowledge the transfer and send it nowhere.
			slog.Warn("gateway: dropping an audience transfer (test switch " + EnvTestDropAudience + ")")
			writeJSON(rec, http.StatusOK, TransferResponse{Transfer: Transfer{Key: op.Key, From: op.From, To: op.To, AmountFen: op.AmountFen},
				BalanceFen: InitialBalanceFen, State: StateServing})
		} else {
			next(rec, r)
		}
		op.Complete = time.Since(a.base)
		settle(&op, rec.status, rec.body.Bytes(), r.Context().Err() != nil)
		a.add(op, g.cityOf(op))
	}
}

// admit says whether a request may go on: why is not empty (with the
// status to answer) when the record is closed or full, or the hall has
// opened its share of accounts; drop is the test switch's verdict on a
// transfer. An admitted opening counts against the cap until [audience.opened].
func (a *audience) admit(op verify.Op) (drop bool, status int, why string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.frozen:
		return false, http.StatusServiceUnavailable, "the drill is being verified: transfers are closed for a moment; retry"
	case len(a.ops) >= MaxAudienceOps:
		return false, http.StatusServiceUnavailable, fmt.Sprintf("the gateway's audience record is full (%d operations): nothing was applied", MaxAudienceOps)
	case op.Kind == verify.KindOpen && len(a.accounts)+a.opening >= a.max:
		return false, http.StatusForbidden, fmt.Sprintf("the hall is full: %d accounts have been opened from phones, the most this drill takes; nothing was opened", a.max)
	}
	if op.Kind == verify.KindOpen {
		a.opening++
	}
	if k := op.From + "/" + op.Key; op.Kind == verify.KindTransfer && !a.keys[k] {
		a.keys[k] = true
		return len(a.keys) == a.dropNth, 0, ""
	}
	return false, 0, ""
}

// opened ends an admitted opening: from now on the record's accounts
// count it, if it succeeded.
func (a *audience) opened() {
	a.mu.Lock()
	a.opening--
	a.mu.Unlock()
}

// cityOf is the home city of an account opened by op, "" for a transfer.
func (g *gateway) cityOf(op verify.Op) string {
	if op.Kind != verify.KindOpen || op.Outcome != verify.OK {
		return ""
	}
	return g.peer(op.HomeDC).City
}

func (a *audience) add(op verify.Op, city string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	op.Seq = int64(len(a.ops) + 1)
	a.ops = append(a.ops, op)
	if city != "" {
		a.accounts[op.From] = city
	}
	if op.Kind == verify.KindTransfer && op.Outcome == verify.OK {
		a.acked[op.From+"/"+op.Key] = true
	}
}

// settle sets an op's outcome from the answer the gateway gave, by
// [verify.Classify] as the load's are; a caller gone before the answer may
// have had it applied.
func settle(op *verify.Op, status int, body []byte, gone bool) {
	op.Status = status
	switch {
	case status >= 200 && status < 300:
		op.Outcome = verify.OK
		if op.Kind == verify.KindOpen {
			var a Account
			if json.Unmarshal(body, &a) != nil || a.ID == "" {
				op.Outcome, op.Error = verify.Unknown, "the answer did not decode"
				return
			}
			op.From, op.HomeDC, op.ServedBy, op.BalanceFen, op.State = a.ID, a.HomeDC, a.ServedBy, a.BalanceFen, a.State
			return
		}
		var t TransferResponse
		if json.Unmarshal(body, &t) != nil {
			op.Outcome, op.Error = verify.Unknown, "the answer did not decode"
			return
		}
		op.Revision, op.Replayed, op.BalanceFen, op.ServedBy, op.State = t.Transfer.Revision, t.Replayed, t.BalanceFen, t.ServedBy, t.State
	case gone || status == 0:
		op.Outcome, op.Error = verify.Unknown, "the caller went away before the answer"
	default:
		var er ErrorResponse
		json.Unmarshal(body, &er)
		op.Error, op.ServedBy, op.State = er.Error, er.ServedBy, er.State
		op.Outcome = verify.Classify(status, nil, er.Unknown) // as the load classifies its own
	}
}

// captureWriter passes an answer on and keeps its status and body.
type captureWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (c *captureWriter) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
	c.ResponseWriter.WriteHeader(status)
}

func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	if c.body.Len() < 1<<20 {
		c.body.Write(b)
	}
	return c.ResponseWriter.Write(b)
}

// recordRoutes serves the record on the management address.
func (g *gateway) recordRoutes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathAudience, func(w http.ResponseWriter, _ *http.Request) { g.writeRecord(w) })
	mux.HandleFunc("GET "+PathAudienceSummary, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, g.audienceSummary())
	})
	mux.HandleFunc("POST "+PathAudienceFreeze, func(w http.ResponseWriter, _ *http.Request) {
		a := g.aud
		a.gate.Lock() // waits for the requests in flight
		a.mu.Lock()
		a.frozen = true
		a.mu.Unlock()
		a.gate.Unlock()
		g.writeRecord(w)
	})
	mux.HandleFunc("POST "+PathAudienceReset, func(w http.ResponseWriter, _ *http.Request) {
		a := g.aud
		a.gate.Lock()
		a.mu.Lock()
		a.base, a.ops, a.frozen = time.Now(), nil, false
		a.accounts, a.acked, a.keys = map[string]string{}, map[string]bool{}, map[string]bool{}
		a.mu.Unlock()
		a.gate.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// writeRecord writes the record as a history, with verify's writer: a
// header whose base is the record's, its ops, the end record.
func (g *gateway) writeRecord(w http.ResponseWriter) {
	a := g.aud
	a.mu.Lock()
	base, ops := a.base, a.ops[:len(a.ops):len(a.ops)] // append-only: the prefix does not change
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-ndjson")
	hw, err := verify.NewWriter(w, verify.Header{Base: base, Lab: g.cfg.Lab, Target: "audience"})
	if err != nil {
		return // the connection failed: the reader sees a cut-short history
	}
	for _, op := range ops {
		if hw.Append(op) != nil {
			return
		}
	}
	hw.Close()
}

func (g *gateway) audienceSummary() AudienceSummary {
	a := g.aud
	a.mu.Lock()
	s := AudienceSummary{Opened: map[string]int{}, Transfers: len(a.acked), Frozen: a.frozen}
	accts := make(map[string]string, len(a.accounts))
	for id, city := range a.accounts {
		s.Opened[city]++
		accts[id] = city
	}
	a.mu.Unlock()
	g.mu.Lock()
	for id, city := range accts {
		if u, ok := g.users[id]; ok && g.peer(u.serving).City != city {
			s.Switched++
		}
	}
	g.mu.Unlock()
	return s
}

// serveRecord serves the record on addr until ctx is done.
func (g *gateway) serveRecord(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("demoapp: gateway record listen: %w", err)
	}
	srv := &http.Server{Handler: g.recordRoutes(), ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	slog.Info("gateway audience record serving", "addr", ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("demoapp: gateway record: %w", err)
	}
	return nil
}

// AudienceClient reads and controls a gateway's audience record from the
// host, over the lab's management network.
type AudienceClient struct {
	// Addr is the gateway's management address and record port.
	Addr   string
	Client *http.Client // http.DefaultClient when nil
}

// Reset empties the record and opens the hall's transfers again.
func (c AudienceClient) Reset(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodPost, PathAudienceReset)
	return err
}

// Freeze closes the hall's transfers, waits for those in flight and
// returns the record: its header (Base is the record's base instant) and
// its ops, each marked [verify.SourceAudience].
func (c AudienceClient) Freeze(ctx context.Context) (verify.Header, []verify.Op, error) {
	return c.history(ctx, http.MethodPost, PathAudienceFreeze)
}

// Record returns the record so far.
func (c AudienceClient) Record(ctx context.Context) (verify.Header, []verify.Op, error) {
	return c.history(ctx, http.MethodGet, PathAudience)
}

// Summary returns what the stage shows of the hall.
func (c AudienceClient) Summary(ctx context.Context) (AudienceSummary, error) {
	var s AudienceSummary
	b, err := c.do(ctx, http.MethodGet, PathAudienceSummary)
	if err == nil {
		err = json.Unmarshal(b, &s)
	}
	return s, err
}

func (c AudienceClient) history(ctx context.Context, method, path string) (verify.Header, []verify.Op, error) {
	b, err := c.do(ctx, method, path)
	if err != nil {
		return verify.Header{}, nil, err
	}
	h, ops, err := verify.ReadHistory(bytes.NewReader(b))
	if err != nil {
		return h, nil, fmt.Errorf("demoapp: the gateway's audience record: %w", err)
	}
	return h, ops, nil
}

func (c AudienceClient) do(ctx context.Context, method, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.Addr+path, nil)
	if err != nil {
		return nil, err
	}
	cl := c.Client
	if cl == nil {
		cl = http.DefaultClient
	}
	resp, err := cl.Do(req)
	if err != nil {
		return nil, fmt.Errorf("demoapp: the gateway's audience record at %s: %w", c.Addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 512<<20))
	if err != nil {
		return nil, fmt.Errorf("demoapp: the gateway's audience record at %s: %w", c.Addr, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("demoapp: the gateway's audience record at %s%s: HTTP %d: %.200s", c.Addr, path, resp.StatusCode, b)
	}
	return b, nil
}

// ParseDropAudience reads [EnvTestDropAudience]: "" is 0 (off).
func ParseDropAudience(v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("demoapp: %s=%q: want a transfer's number from 1, or nothing", EnvTestDropAudience, v)
	}
	return n, nil
}
