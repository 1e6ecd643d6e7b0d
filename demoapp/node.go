package demoapp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/fibercut/fibercut/nodeapi"
	"github.com/fibercut/fibercut/topology"
)

// NodeConfig is what a node needs to know about itself and its lab.
type NodeConfig struct {
	Lab      string
	DC       string
	City     string
	Version  string
	Topology *topology.Topology
	Peers    []Peer
	DataDir  string
	// Listen is the address to serve on; ":7100" (every interface) by default.
	Listen string
	// MaxBatch bounds a group commit; 256 by default.
	MaxBatch int
}

// NodeConfigFromEnv reads the node's configuration from the environment the
// lab gives its containers.
func NodeConfigFromEnv() (NodeConfig, error) {
	cfg := NodeConfig{
		Lab:     os.Getenv(nodeapi.EnvLab),
		DC:      os.Getenv(nodeapi.EnvDC),
		City:    os.Getenv(nodeapi.EnvCity),
		DataDir: os.Getenv(nodeapi.EnvDataDir),
		Listen:  ":" + strconv.Itoa(nodeapi.NodePort),
	}
	var missing []string
	for _, kv := range [][2]string{{nodeapi.EnvLab, cfg.Lab}, {nodeapi.EnvDC, cfg.DC}, {nodeapi.EnvCity, cfg.City},
		{nodeapi.EnvTopology, os.Getenv(nodeapi.EnvTopology)}, {nodeapi.EnvPeers, os.Getenv(nodeapi.EnvPeers)}} {
		if kv[1] == "" {
			missing = append(missing, kv[0])
		}
	}
	if len(missing) > 0 {
		return cfg, fmt.Errorf("demoapp: node environment lacks %v; `fibercut node` runs inside a lab container started by `fibercut lab up`", missing)
	}
	t, err := topology.Parse(nodeapi.EnvTopology, []byte(os.Getenv(nodeapi.EnvTopology)))
	if err != nil {
		return cfg, fmt.Errorf("demoapp: %w", err)
	}
	cfg.Topology = t
	if cfg.Peers, err = ParsePeers(os.Getenv(nodeapi.EnvPeers), t); err != nil {
		return cfg, err
	}
	if cfg.DataDir == "" {
		cfg.DataDir = nodeapi.DataDir
	}
	return cfg, nil
}

// ParsePeers parses "hz-a=10.200.0.10,hz-b=10.200.0.11" against a topology.
// A peer goes by an IPv4 address or by a host name
// ("hz-a=hz-a-0.hz-a.fibercut-demo.svc"); each DC of the topology is named
// once.
func ParsePeers(s string, t *topology.Topology) ([]Peer, error) {
	var peers []Peer
	seen := map[string]bool{}
	for item := range strings.SplitSeq(s, ",") {
		dc, where, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok || where == "" {
			return nil, fmt.Errorf("demoapp: peer %q: want DC=IPv4 or DC=host name", item)
		}
		d, ok := t.DC(dc)
		if !ok {
			return nil, fmt.Errorf("demoapp: peer %q: no DC %s in topology %s", item, dc, t.Name)
		}
		if seen[dc] {
			return nil, fmt.Errorf("demoapp: peer %q: dc %s is named twice", item, dc)
		}
		seen[dc] = true
		p := Peer{DC: dc, City: d.City}
		if a, err := netip.ParseAddr(where); err == nil {
			if !a.Is4() {
				return nil, fmt.Errorf("demoapp: peer %q: %s is not an IPv4 address", item, where)
			}
			p.WAN = a
		} else if msgs := validation.IsDNS1123Subdomain(where); len(msgs) == 0 {
			p.Host = where
		} else {
			return nil, fmt.Errorf("demoapp: peer %q: %q is neither an IPv4 address nor a host name (%s)", item, where, strings.Join(msgs, "; "))
		}
		peers = append(peers, p)
	}
	return peers, nil
}

// FormatPeers writes peers as ParsePeers reads them.
func FormatPeers(peers []Peer) string {
	parts := make([]string, len(peers))
	for i, p := range peers {
		parts[i] = p.DC + "=" + p.Addr()
	}
	return strings.Join(parts, ",")
}

// node serves the transfer API of one DC.
type node struct {
	cfg    NodeConfig
	ledger atomic.Pointer[Ledger]
	peers  map[string]Peer
	names  *peerNames // for the peers that go by name
	fwd    *http.Client
}

// RunNode starts the DC's ledger member and serves the API until ctx is
// done. The health endpoint answers at once, reporting the ledger as
// "starting" until the member has joined its cluster.
func RunNode(ctx context.Context, cfg NodeConfig) error {
	n := &node{cfg: cfg, peers: map[string]Peer{}, names: newPeerNames(), fwd: newForwardClient()}
	for _, p := range cfg.Peers {
		n.peers[p.DC] = p
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("demoapp: node listen: %w", err)
	}
	srv := hardened(n.routes())
	slog.Info("node serving", "lab", cfg.Lab, "dc", cfg.DC, "addr", ln.Addr().String())
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	if cfg.Topology != nil && len(cfg.Peers) > 0 {
		go func() {
			lc := LedgerConfig{
				DC: cfg.DC, Dir: filepath.Join(cfg.DataDir, "etcd"), Token: cfg.Lab, Peers: cfg.Peers,
				TickMS: cfg.Topology.Ledger.TickMS, ElectionMS: cfg.Topology.Ledger.ElectionMS,
				MaxBatch: cmpOr(cfg.MaxBatch, 256),
			}
			if v := os.Getenv(EnvLedgerQuota); v != "" {
				q, err := strconv.ParseInt(v, 10, 64)
				if err != nil || q < 1<<20 {
					errc <- fmt.Errorf("%s=%q: want a number of bytes, 1 MiB or more", EnvLedgerQuota, v)
					return
				}
				lc.QuotaBytes = q
			}
			if os.Getenv(EnvBreakLedger) == "extra-fen" {
				slog.Warn("ledger deliberately broken: every transfer credits one extra fen", "dc", cfg.DC)
				lc.breakExtraFen = 1
			}
			l, err := StartLedger(ctx, lc)
			if err != nil {
				errc <- err
				return
			}
			n.ledger.Store(l)
		}()
	}
	select {
	case err = <-errc:
		err = fmt.Errorf("demoapp: node: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = fmt.Errorf("demoapp: node shutdown: %w", serr)
	}
	if l := n.ledger.Load(); l != nil {
		l.Close()
	}
	return err
}

func cmpOr(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func newForwardClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 300 * time.Millisecond}).DialContext,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     30 * time.Second,
	}}
}

func (n *node) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+nodeapi.HealthPath, n.health)
	mux.HandleFunc("POST /api/accounts", n.open)
	mux.HandleFunc("GET /api/accounts/{id}", n.read)
	mux.HandleFunc("POST /api/accounts/{id}/transfers", n.transfer)
	mux.HandleFunc("POST /internal/commit", n.fromPeers(n.commit))
	mux.HandleFunc("POST /internal/open", n.fromPeers(n.create))
	return mux
}

func (n *node) health(w http.ResponseWriter, _ *http.Request) {
	h := nodeapi.Health{Lab: n.cfg.Lab, DC: n.cfg.DC, City: n.cfg.City, Version: n.cfg.Version}
	if n.cfg.Topology != nil {
		h.Ledger = "starting"
		if l := n.ledger.Load(); l != nil {
			v := l.View()
			h.Leader = v.LeaderDC
			h.Ledger = "no quorum"
			switch {
			case l.Full():
				h.Ledger = "full: the backend quota is reached, every write is refused; recreate the lab (fibercut lab down, lab up)"
			case l.OK():
				h.Ledger = nodeapi.LedgerOK
			}
		}
	}
	writeJSON(w, http.StatusOK, h)
}

// apiError is an error with its HTTP status and the field it is about.
type apiError struct {
	status  int
	field   string
	msg     string
	unknown bool
	err     error // the ledger error it stands for, if any
}

func (e *apiError) Error() string { return e.msg }
func (e *apiError) Unwrap() error { return e.err }

func badField(field, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, field: field, msg: field + ": " + fmt.Sprintf(format, args...)}
}

// toAPIError maps ledger errors to HTTP.
func toAPIError(err error) *apiError {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, ErrNoAccount):
		return &apiError{status: http.StatusNotFound, msg: err.Error()}
	case errors.Is(err, ErrBadToken):
		return &apiError{status: http.StatusForbidden, msg: "this token does not open this account"}
	case errors.Is(err, ErrFunds):
		return &apiError{status: http.StatusConflict, field: "amount_fen", msg: err.Error()}
	case errors.Is(err, ErrKeyReused):
		return &apiError{status: http.StatusConflict, field: "key", msg: err.Error()}
	case errors.Is(err, ErrUnknownResult):
		return &apiError{status: http.StatusServiceUnavailable, msg: err.Error(), unknown: true}
	case errors.Is(err, ErrNoQuorum):
		return &apiError{status: http.StatusServiceUnavailable, msg: err.Error()}
	case errors.Is(err, ErrFull):
		return &apiError{status: http.StatusInsufficientStorage, msg: err.Error() + "; nothing was applied"}
	}
	return &apiError{status: http.StatusInternalServerError, msg: err.Error()}
}

func (n *node) writeError(w http.ResponseWriter, err error) {
	ae := toAPIError(err)
	writeJSON(w, ae.status, ErrorResponse{Error: ae.msg, Field: ae.field, Unknown: ae.unknown,
		ServedBy: n.cfg.DC, ServedCity: n.cfg.City})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// ledgerOr503 returns the ledger once it has started.
func (n *node) ledgerOr503(w http.ResponseWriter) *Ledger {
	l := n.ledger.Load()
	if l == nil {
		n.writeError(w, fmt.Errorf("%w: the ledger member is starting", ErrNoQuorum))
	}
	return l
}

func (n *node) open(w http.ResponseWriter, r *http.Request) {
	l := n.ledgerOr503(w)
	if l == nil {
		return
	}
	a, err := l.openWith(r.Context(), func(ctx context.Context, rec accountRecord) error {
		return n.createAtLeader(ctx, l, rec)
	})
	if err != nil {
		n.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, a)
}

// createAtLeader commits a new account through the group commit of the
// leader's DC, as route does transfers: one opener for the whole cluster
// makes groups five times larger than one per DC, and a hall joining at
// once costs the ledger a fifth of the proposals (docs/benchmarks.md).
// The record carries the token's hash, never the token. When the leader's
// node cannot be reached, this DC creates it itself: the create-only
// guard makes that safe (at worst the first try did land, and the id
// drawn again leaves an account no one holds the token of).
func (n *node) createAtLeader(ctx context.Context, l *Ledger, rec accountRecord) error {
	resp, err := n.postLeader(ctx, l, "/internal/open", rec)
	if err != nil {
		return l.unavailable(err)
	}
	if resp == nil {
		return l.Create(ctx, rec)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusCreated:
		return nil
	case http.StatusConflict:
		return errIDTaken
	}
	return decodeError(resp)
}

// create is the internal endpoint behind createAtLeader: it commits a
// record another DC drew, for an account homed in that DC.
func (n *node) create(w http.ResponseWriter, r *http.Request, dc string) {
	l := n.ledgerOr503(w)
	if l == nil {
		return
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 4096))
	dec.DisallowUnknownFields()
	var rec accountRecord
	if err := dec.Decode(&rec); err != nil {
		n.writeError(w, badField("body", "%v", err))
		return
	}
	if err := checkRecord(rec, n.peers[dc]); err != nil {
		n.writeError(w, err)
		return
	}
	switch err := l.Create(r.Context(), rec); {
	case errors.Is(err, errIDTaken):
		writeJSON(w, http.StatusConflict, ErrorResponse{Error: "account id " + rec.ID + " is taken", Field: "id"})
	case err != nil:
		n.writeError(w, err)
	default:
		writeJSON(w, http.StatusCreated, struct{}{})
	}
}

// checkRecord accepts only the record a node of DC p draws (openWith):
// a new-length id, the guest name, p's DC and city, and a SHA-256 in hex.
func checkRecord(rec accountRecord, p Peer) *apiError {
	switch {
	case len(rec.ID) != AccountIDLen || !ValidAccountID(rec.ID):
		return badField("id", "want %d characters of %s, got %q", AccountIDLen, idAlphabet, rec.ID)
	case rec.Name != guestName(rec.ID):
		return badField("name", "want %q", guestName(rec.ID))
	case rec.HomeDC != p.DC || rec.HomeCity != p.City:
		return badField("home_dc", "an account opened by %s is homed in %s (%s), got %s (%s)", p.DC, p.DC, p.City, rec.HomeDC, rec.HomeCity)
	}
	if b, err := hex.DecodeString(rec.TokenSHA256); err != nil || len(b) != sha256.Size || strings.ToLower(rec.TokenSHA256) != rec.TokenSHA256 {
		return badField("token_sha256", "want %d lowercase hex digits", 2*sha256.Size)
	}
	return nil
}

// bearer returns the request's bearer token.
func bearer(r *http.Request) (string, *apiError) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		return "", &apiError{status: http.StatusUnauthorized, field: "Authorization", msg: "missing token: send Authorization: Bearer TOKEN, the token you got when the account was opened"}
	}
	return tok, nil
}

// badID is the answer to a path whose id cannot be an account's.
func badID(id string) *apiError {
	return badField("id", "%q is not an account id: 6-24 lowercase letters and digits 2-9", id)
}

func (n *node) authorize(w http.ResponseWriter, r *http.Request, l *Ledger) (accountRecord, bool) {
	tok, aerr := bearer(r)
	if aerr != nil {
		n.writeError(w, aerr)
		return accountRecord{}, false
	}
	id := r.PathValue("id")
	if !ValidAccountID(id) {
		n.writeError(w, badID(id))
		return accountRecord{}, false
	}
	rec, err := l.Authorize(r.Context(), id, tok)
	if err != nil {
		n.writeError(w, err)
		return rec, false
	}
	return rec, true
}

func (n *node) read(w http.ResponseWriter, r *http.Request) {
	l := n.ledgerOr503(w)
	if l == nil {
		return
	}
	rec, ok := n.authorize(w, r, l)
	if !ok {
		return
	}
	bal, err := l.Balance(r.Context(), rec.ID)
	if err != nil {
		n.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Account{ID: rec.ID, Name: rec.Name, HomeDC: rec.HomeDC, HomeCity: rec.HomeCity,
		BalanceFen: bal, ServedBy: n.cfg.DC, ServedCity: n.cfg.City})
}

var keyRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// ParseTransfer decodes a transfer request strictly: every field present,
// of the right JSON type, amount a positive whole number of fen that fits in
// int64, and no unknown field. The error names the field.
func ParseTransfer(body []byte) (TransferRequest, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return TransferRequest{}, &apiError{status: http.StatusBadRequest, msg: "body: want a JSON object {\"to\": ID, \"amount_fen\": N, \"key\": KEY}: " + err.Error()}
	}
	for k := range raw {
		if k != "to" && k != "amount_fen" && k != "key" {
			return TransferRequest{}, badField(k, "unknown field; valid fields: to, amount_fen, key")
		}
	}
	var t TransferRequest
	str := func(field string) (string, error) {
		v, ok := raw[field]
		if !ok {
			return "", badField(field, "missing")
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", badField(field, "must be a JSON string, got %s", v)
		}
		return s, nil
	}
	var err error
	if t.To, err = str("to"); err != nil {
		return t, err
	}
	if t.To == "" {
		return t, t.check("")
	}
	if t.Key, err = str("key"); err != nil {
		return t, err
	}
	if !keyRE.MatchString(t.Key) {
		return t, t.check("")
	}
	v, ok := raw["amount_fen"]
	if !ok {
		return t, badField("amount_fen", "missing")
	}
	v = bytes.TrimSpace(v)
	if len(v) == 0 || (v[0] != '-' && (v[0] < '0' || v[0] > '9')) {
		return t, badField("amount_fen", "must be a JSON number of fen (¥1 = 100 fen), got %s", v)
	}
	amount, perr := strconv.ParseInt(string(v), 10, 64)
	switch {
	case errors.Is(perr, strconv.ErrRange):
		return t, badField("amount_fen", "%s does not fit in 64 bits", v)
	case perr != nil:
		return t, badField("amount_fen", "must be a whole number of fen, got %s", v)
	}
	t.AmountFen = amount
	return t, t.check("")
}

// check is what a transfer from account from must be beyond its JSON
// types (from "" when not known yet).
func (t TransferRequest) check(from string) error {
	switch {
	case t.To == "":
		return badField("to", "empty: give the account id to transfer to")
	case !ValidAccountID(t.To):
		return badField("to", "%q is not an account id: 6-24 lowercase letters and digits 2-9", t.To)
	case t.To == from:
		return badField("to", "cannot transfer to the paying account itself")
	case !keyRE.MatchString(t.Key):
		return badField("key", "must be 1-64 characters of letters, digits, '.', '_', ':' or '-'")
	case t.AmountFen <= 0:
		return badField("amount_fen", "must be positive, got %d", t.AmountFen)
	}
	return nil
}

// headerBatch lets a client ask for its transfer to be committed alone, to
// measure what group commit buys.
const headerBatch = "X-Fibercut-Batch"

func (n *node) transfer(w http.ResponseWriter, r *http.Request) {
	l := n.ledgerOr503(w)
	if l == nil {
		return
	}
	if _, aerr := bearer(r); aerr != nil { // no input checks for anonymous callers
		n.writeError(w, aerr)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4096))
	if err != nil {
		n.writeError(w, badField("body", "%v", err))
		return
	}
	t, err := ParseTransfer(body)
	if err != nil {
		n.writeError(w, err)
		return
	}
	rec, ok := n.authorize(w, r, l)
	if !ok {
		return
	}
	if err := t.check(rec.ID); err != nil {
		n.writeError(w, err)
		return
	}
	batch := r.Header.Get(headerBatch) != "off"
	tok, _ := bearer(r)
	resp, err := n.route(r.Context(), l, commitRequest{From: rec.ID, Token: tok, Transfer: t, Batch: batch})
	if err != nil {
		n.writeError(w, err)
		return
	}
	resp.ServedBy, resp.ServedCity = n.cfg.DC, n.cfg.City
	writeJSON(w, http.StatusOK, resp)
}

// commitRequest is what a node sends the node of the leader's DC. It
// carries the payer's token: the leader's node checks it again, so the
// internal endpoint lets no one spend more than the public one does.
type commitRequest struct {
	From     string          `json:"from"`
	Token    string          `json:"token"`
	Transfer TransferRequest `json:"transfer"`
	Batch    bool            `json:"batch"`
}

// route commits through the group-commit writer of the leader's DC: one
// writer for the whole cluster means batches from different DCs do not
// conflict. When the leader's node cannot be reached, this DC commits
// itself: compare-on-revision keeps that safe.
func (n *node) route(ctx context.Context, l *Ledger, c commitRequest) (TransferResponse, error) {
	resp, err := n.postLeader(ctx, l, "/internal/commit", c)
	if err != nil {
		return TransferResponse{}, fmt.Errorf("%w: %v", ErrUnknownResult, err)
	}
	if resp == nil {
		// This DC leads, or the request may have reached the leader's
		// node: committing here with the same key is safe, it moves
		// money at most once.
		return l.Commit(ctx, c.Transfer, c.From, c.Batch)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		var tr TransferResponse
		if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
			return tr, fmt.Errorf("%w: reply from the leader's DC: %v", ErrUnknownResult, err)
		}
		return tr, nil
	}
	return TransferResponse{}, decodeError(resp)
}

// postLeader posts v as JSON to path on the node of the leader's DC. It
// returns no answer and no error when this DC should do the work itself:
// it leads, no leader is known, or the leader's node could not be reached
// (it may have done the work: callers must be idempotent). It returns an
// error only when ctx ended first.
func (n *node) postLeader(ctx context.Context, l *Ledger, path string, v any) (*http.Response, error) {
	leader := l.View().LeaderDC
	p, ok := n.peers[leader]
	if !ok || leader == n.cfg.DC {
		return nil, nil
	}
	b, _ := json.Marshal(v)
	fctx, cancel := context.WithTimeout(ctx, commitTimeout+500*time.Millisecond)
	url := "http://" + p.HostPort(nodeapi.NodePort) + path
	req, _ := http.NewRequestWithContext(fctx, http.MethodPost, url, bytes.NewReader(b))
	resp, err := n.fwd.Do(req)
	if err != nil {
		cancel()
		if ctx.Err() != nil {
			return nil, err
		}
		slog.Debug("forward to the leader's DC failed; doing it here", "leader", leader, "path", path, "err", err)
		return nil, nil
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

// cancelOnClose ends a forwarded request's context when its body is
// closed, after reading what is left of a short body: only a body read to
// its end lets the connection carry the next request.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	io.Copy(io.Discard, io.LimitReader(c.ReadCloser, 1<<16))
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// decodeError turns a node's error answer into the same error here.
func decodeError(resp *http.Response) *apiError {
	var er ErrorResponse
	json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&er)
	return &apiError{status: resp.StatusCode, field: er.Field, msg: er.Error, unknown: er.Unknown}
}

// fromPeers guards an internal endpoint: it answers only another DC's
// node, and passes the handler that node's DC.
func (n *node) fromPeers(h func(w http.ResponseWriter, r *http.Request, dc string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		dc, ok := n.peerDC(r)
		if !ok {
			n.writeError(w, &apiError{status: http.StatusForbidden, msg: "internal endpoint: only the lab's other datacenters may call it"})
			return
		}
		h(w, r, dc)
	}
}

// peerDC returns the DC of the node a request comes from: the internal
// endpoints answer only the other DCs' nodes (not the gateway, not the
// host).
func (n *node) peerDC(r *http.Request) (string, bool) {
	a := clientAddr(r)
	named := false
	for dc, p := range n.peers {
		if dc != n.cfg.DC && p.WAN.IsValid() && p.WAN == a {
			return dc, true
		}
		named = named || p.Host != ""
	}
	if !named || !a.IsValid() {
		return "", false
	}
	return n.names.dcOf(a, n.peers, n.cfg.DC)
}

func (n *node) commit(w http.ResponseWriter, r *http.Request, _ string) {
	l := n.ledgerOr503(w)
	if l == nil {
		return
	}
	var c commitRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 8192)).Decode(&c); err != nil {
		n.writeError(w, badField("body", "%v", err))
		return
	}
	if c.Token == "" {
		n.writeError(w, &apiError{status: http.StatusUnauthorized, field: "token", msg: "missing token: the payer's token must come with the transfer"})
		return
	}
	if !ValidAccountID(c.From) {
		n.writeError(w, badID(c.From))
		return
	}
	if _, err := l.Authorize(r.Context(), c.From, c.Token); err != nil {
		n.writeError(w, err)
		return
	}
	if err := c.Transfer.check(c.From); err != nil {
		n.writeError(w, err)
		return
	}
	resp, err := l.Commit(r.Context(), c.Transfer, c.From, c.Batch)
	if err != nil {
		n.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}
