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
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/netutil"

	"github.com/fibercut/fibercut/nodeapi"
	"github.com/fibercut/fibercut/topology"
	"github.com/fibercut/fibercut/verify"
)

// GatewayName is the name the gateway gives itself in health answers.
const GatewayName = "gateway"

// GatewayConfig configures the entry layer.
type GatewayConfig struct {
	Lab      string
	Version  string
	Topology *topology.Topology
	Peers    []Peer
	// Listen is the address to serve on; ":8080" by default.
	Listen string
	// NodePort is where the DCs' nodes listen; nodeapi.NodePort by default.
	NodePort int
	// Record is the address (the gateway's management address and
	// nodeapi.GatewayRecordPort) the audience record is served on; "" serves
	// it nowhere. Never the public port.
	Record string
	// DropAudience is the test switch [EnvTestDropAudience]; 0 is off.
	DropAudience int
	// Trusted is the lab's host as the gateway sees it (the WAN bridge's
	// address): not rate-limited, and the only one whose requests may say
	// they are the load's or ask for commits without batching.
	Trusted netip.Addr
	// AudienceMax bounds the accounts the hall opens per drill;
	// DefaultAudienceMax when 0.
	AudienceMax int
	// Limits are the per-address rates; DefaultClientLimits when zero.
	Limits ClientLimits
}

// gateway maps each user to a home DC (the unit), forwards the user's
// requests there, and when the home DC stops answering re-homes the user to
// a healthy DC in another city. Requests keep their idempotency keys, so a
// transfer retried elsewhere moves money at most once.
type gateway struct {
	cfg    GatewayConfig
	dcs    []Peer // in topology order
	units  []string
	next   atomic.Uint64
	client *http.Client
	health atomic.Pointer[map[string]bool]

	mu    sync.Mutex
	users map[string]*user

	aud              *audience
	opens, transfers *limiter
}

// user is what the gateway knows of an account.
type user struct {
	home, homeCity string
	serving        string // DC serving the user now
}

// RunGateway serves the audience page and the API until ctx is done.
func RunGateway(ctx context.Context, cfg GatewayConfig) error {
	g := newGateway(cfg)
	listen := cfg.Listen
	if listen == "" {
		listen = ":" + strconv.Itoa(nodeapi.GatewayPort)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("demoapp: gateway listen: %w", err)
	}
	srv := hardened(g.routes())
	ln = netutil.LimitListener(ln, MaxGatewayConns)
	go g.watch(ctx)
	if cfg.Record != "" {
		go func() {
			if err := g.serveRecord(ctx, cfg.Record); err != nil {
				slog.Error("gateway: the audience record is not served", "err", err)
			}
		}()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	slog.Info("gateway serving", "lab", cfg.Lab, "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("demoapp: gateway: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("demoapp: gateway shutdown: %w", err)
	}
	return nil
}

func newGateway(cfg GatewayConfig) *gateway {
	if cfg.NodePort == 0 {
		cfg.NodePort = nodeapi.NodePort
	}
	if cfg.AudienceMax <= 0 {
		cfg.AudienceMax = DefaultAudienceMax
	}
	if cfg.Limits == (ClientLimits{}) {
		cfg.Limits = DefaultClientLimits
	}
	g := &gateway{cfg: cfg, dcs: cfg.Peers, users: map[string]*user{}, aud: newAudience(cfg.DropAudience, cfg.AudienceMax),
		opens: newLimiter(cfg.Limits.Opens, cfg.Limits.Off), transfers: newLimiter(cfg.Limits.Transfers, cfg.Limits.Off),
		client: &http.Client{
			Transport: &http.Transport{
				Proxy:               nil,
				DialContext:         (&net.Dialer{Timeout: 300 * time.Millisecond}).DialContext,
				MaxIdleConnsPerHost: 512,
				IdleConnTimeout:     30 * time.Second,
			},
			// The gateway speaks the public API to the nodes and
			// nothing else: an answer that points elsewhere is passed on,
			// never followed.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}}
	// Units: each DC appears as often as its weight.
	for _, p := range cfg.Peers {
		w := 1
		if d, ok := cfg.Topology.DC(p.DC); ok && d.UnitWeight > 0 {
			w = d.UnitWeight
		}
		for range w {
			g.units = append(g.units, p.DC)
		}
	}
	g.health.Store(&map[string]bool{}) // none healthy until the first round of checks
	return g
}

func (g *gateway) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+nodeapi.HealthPath, func(w http.ResponseWriter, _ *http.Request) {
		// The gateway is ready when it sees a DC that can commit: only
		// then can users be served.
		h := nodeapi.Health{Lab: g.cfg.Lab, DC: GatewayName, Version: g.cfg.Version, Ledger: "no datacenter can commit"}
		for _, p := range g.dcs {
			if g.healthy(p.DC) {
				h.Ledger = nodeapi.LedgerOK
				break
			}
		}
		writeJSON(w, http.StatusOK, h)
	})
	mux.HandleFunc("GET "+nodeapi.GatewayStatusPath, g.status)
	mux.HandleFunc("POST /api/accounts", g.limited(g.opens, "account openings", g.recorded(verify.KindOpen, g.open)))
	mux.HandleFunc("GET /api/accounts/{id}", g.forward)
	mux.HandleFunc("POST /api/accounts/{id}/transfers", g.limited(g.transfers, "transfers", g.recorded(verify.KindTransfer, g.forward)))
	mux.Handle("/", WebHandler())
	return mux
}

// healthInterval is how often the gateway checks every DC.
const healthInterval = 100 * time.Millisecond

// watch checks every DC's health endpoint over the WAN every healthInterval:
// a DC is healthy when it answers and its ledger can commit.
func (g *gateway) watch(ctx context.Context) {
	tick := time.NewTicker(healthInterval)
	defer tick.Stop()
	for {
		m := make(map[string]bool, len(g.dcs))
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, p := range g.dcs {
			wg.Go(func() {
				cctx, cancel := context.WithTimeout(ctx, 2*healthInterval)
				defer cancel()
				err := nodeapi.ProbeHealthHost(cctx, p.HostPort(g.cfg.NodePort), g.cfg.Lab, p.DC)
				mu.Lock()
				m[p.DC] = err == nil
				mu.Unlock()
			})
		}
		wg.Wait()
		g.health.Store(&m)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (g *gateway) healthy(dc string) bool { return (*g.health.Load())[dc] }

func (g *gateway) peer(dc string) Peer {
	for _, p := range g.dcs {
		if p.DC == dc {
			return p
		}
	}
	return Peer{}
}

// status reports which DCs the gateway sees as healthy.
func (g *gateway) status(w http.ResponseWriter, _ *http.Request) {
	out := make([]nodeapi.GatewayDC, len(g.dcs))
	for i, p := range g.dcs {
		out[i] = nodeapi.GatewayDC{DC: p.DC, City: p.City, Healthy: g.healthy(p.DC)}
	}
	writeJSON(w, http.StatusOK, out)
}

// upstream is the node's path for a public request: built from the
// route and the validated, escaped id, never from the path the client
// sent (which may hold "..", escaped slashes or a query).
func upstream(r *http.Request) string {
	id := r.PathValue("id")
	switch {
	case id == "":
		return "/api/accounts"
	case r.Method == http.MethodGet:
		return "/api/accounts/" + url.PathEscape(id)
	default:
		return "/api/accounts/" + url.PathEscape(id) + "/transfers"
	}
}

// send forwards a request to a DC's node and returns status and body. A
// transport error or timeout means the DC did not answer.
func (g *gateway) send(ctx context.Context, dc string, r *http.Request, body []byte, timeout time.Duration) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p := g.peer(dc)
	u := "http://" + p.HostPort(g.cfg.NodePort) + upstream(r)
	req, err := http.NewRequestWithContext(ctx, r.Method, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	headers := []string{"Authorization", "Content-Type"}
	if g.trusted(r) {
		headers = append(headers, headerBatch) // only the lab's host measures without batching
	}
	for _, h := range headers {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// attemptTimeout bounds one try at a DC: past it the DC is taken as failed
// and the request goes elsewhere with the same idempotency key. Requests
// take well under 100 ms when all is well.
const attemptTimeout = 400 * time.Millisecond

// forwardBudget bounds all the tries of one request: it stays below the
// clients' own timeouts, so that they hear "switching" rather than nothing.
const forwardBudget = 1500 * time.Millisecond

// electionBackoff is how long to wait before trying again after a DC said
// it has no quorum: during a leader election every DC says so for a moment.
const electionBackoff = 50 * time.Millisecond

// open assigns the new user a home DC, spreading users over the units and
// skipping DCs that are down.
func (g *gateway) open(w http.ResponseWriter, r *http.Request) {
	n := len(g.units)
	start := int(g.next.Add(1))
	tried := 0
	// First the healthy units; if none answers, every unit once, since
	// the health view may be a moment behind.
	for i := 0; i < 2*n && tried < 3; i++ {
		dc := g.units[(start+i)%n]
		if i < n && !g.healthy(dc) {
			continue
		}
		tried++
		status, body, err := g.send(r.Context(), dc, r, nil, attemptTimeout)
		if err != nil || status == http.StatusServiceUnavailable {
			continue
		}
		var a Account
		if status == http.StatusCreated && json.Unmarshal(body, &a) == nil {
			g.remember(a.ID, &user{home: a.HomeDC, homeCity: a.HomeCity, serving: a.HomeDC})
		}
		g.reply(w, status, body, StateServing)
		return
	}
	writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: "no datacenter can open accounts right now; retry", State: StateSwitching})
}

// remember keeps what the gateway knows of an account, up to
// maxGatewayUsers accounts (past it, accounts are looked up on each call).
func (g *gateway) remember(id string, u *user) *user {
	g.mu.Lock()
	defer g.mu.Unlock()
	if old, ok := g.users[id]; ok {
		return old
	}
	if len(g.users) < maxGatewayUsers {
		g.users[id] = u
	}
	return u
}

// lookup returns what the gateway knows of an account, learning it from
// a healthy DC when the gateway has not seen it yet (after a restart).
// Any DC's ledger holds every account, so one that answers decides: when
// it answers something other than the account (404, 401, 403), that
// answer is returned for the caller to pass on, and u is nil. u and the
// answer are both empty when no DC answered.
func (g *gateway) lookup(ctx context.Context, r *http.Request, id string) (u *user, status int, body []byte) {
	g.mu.Lock()
	u, ok := g.users[id]
	g.mu.Unlock()
	if ok {
		return u, 0, nil
	}
	probe := r.Clone(ctx)
	probe.Method = http.MethodGet
	for _, p := range g.dcs {
		if !g.healthy(p.DC) {
			continue
		}
		st, b, err := g.send(ctx, p.DC, probe, nil, attemptTimeout)
		if err != nil || st == http.StatusServiceUnavailable {
			continue // this DC cannot say: ask the next
		}
		var a Account
		if st != http.StatusOK || json.Unmarshal(b, &a) != nil {
			return nil, st, b
		}
		return g.remember(id, &user{home: a.HomeDC, homeCity: a.HomeCity, serving: a.HomeDC}), 0, nil
	}
	return nil, 0, nil
}

// rehome moves a user whose serving DC failed to a healthy DC, preferring
// another city than the home's, and returns it ("" when none is healthy).
func (g *gateway) rehome(u *user, failed string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if u.serving != failed && g.healthy(u.serving) {
		return u.serving // another request already moved the user
	}
	var same, other []string
	for _, p := range g.dcs {
		if p.DC == failed || !g.healthy(p.DC) {
			continue
		}
		if p.City == u.homeCity {
			same = append(same, p.DC)
		} else {
			other = append(other, p.DC)
		}
	}
	cands := slices.Concat(other, same)
	if len(cands) == 0 {
		return ""
	}
	// Spread re-homed users over the candidates.
	u.serving = cands[int(g.next.Add(1))%len(cands)]
	return u.serving
}

func (g *gateway) state(u *user, dc string) string {
	if dc == u.home {
		return StateServing
	}
	return StateSwitched
}

// forward sends a user's request to the DC serving the user, and on failure
// (no answer within attemptTimeout, or 503) re-homes the user and tries
// again with the same body, hence the same idempotency key.
func (g *gateway) forward(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 4096))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: "body: " + err.Error(), Field: "body"})
		return
	}
	id := r.PathValue("id")
	if !ValidAccountID(id) {
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: fmt.Sprintf("id: %q is not an account id: 6-24 lowercase letters and digits 2-9", id), Field: "id"})
		return
	}
	u, status, answer := g.lookup(r.Context(), r, id)
	switch {
	case u == nil && status != 0:
		g.reply(w, status, answer, "") // the ledger's definite answer: 404, 401, 403
		return
	case u == nil:
		writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: "no datacenter answers right now; retry", State: StateSwitching})
		return
	}
	deadline := time.Now().Add(forwardBudget)
	g.mu.Lock()
	dc := u.serving
	g.mu.Unlock()
	var lastStatus int
	var lastBody []byte
	// uncertain: an attempt got no answer, or was told its outcome is
	// unknown, so it may have committed: the final answer must not claim
	// that nothing was applied. sent: an attempt went out at all.
	uncertain, sent := false, false
	for attempt := 0; attempt < 16; attempt++ {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		if !g.healthy(dc) {
			if dc = g.rehome(u, dc); dc == "" {
				// No DC can commit right now (an election, or the
				// majority is gone): wait a moment and look again.
				g.mu.Lock()
				dc = u.serving
				g.mu.Unlock()
				time.Sleep(min(electionBackoff, left))
				continue
			}
		}
		sent = true
		status, b, err := g.send(r.Context(), dc, r, body, min(attemptTimeout, left))
		if r.Context().Err() != nil {
			return // the user went away
		}
		if err == nil && status != http.StatusServiceUnavailable {
			g.reply(w, status, b, g.state(u, dc))
			return
		}
		lastStatus, lastBody = status, b
		slog.Debug("gateway: dc failed", "dc", dc, "status", status, "err", err)
		if err != nil {
			uncertain = true
			// No answer: the DC is cut off or down. Move the user.
			if next := g.rehome(u, dc); next != "" {
				dc = next
			}
			continue
		}
		// The DC answered that it cannot commit now: during an election
		// every DC does, so moving the user would not help. Wait.
		var er ErrorResponse
		if json.Unmarshal(b, &er) == nil && er.Unknown {
			uncertain = true
		}
		time.Sleep(min(electionBackoff, time.Until(deadline)))
	}
	if lastStatus == http.StatusServiceUnavailable && !uncertain {
		g.reply(w, lastStatus, lastBody, StateSwitching)
		return
	}
	writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: "容灾切换中 / switching datacenter: no datacenter answered in time; retry with the same key",
		State: StateSwitching, Unknown: r.Method == http.MethodPost && sent && (uncertain || lastStatus == 0)})
}

// reply passes a node's JSON answer on, with the serving state set.
func (g *gateway) reply(w http.ResponseWriter, status int, body []byte, state string) {
	if state != "" {
		var m map[string]json.RawMessage
		if json.Unmarshal(body, &m) == nil {
			m["state"], _ = json.Marshal(state)
			if b, err := json.Marshal(m); err == nil {
				body = b
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}
