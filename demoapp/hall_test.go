package demoapp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/fibercut/fibercut/topology"
)

// The hall's findings, each a test that failed before its fix.

func TestValidAccountID(t *testing.T) {
	for id, want := range map[string]bool{
		"abcdef": true, "a2b3c4d5e6f7": true, "zzzzzzzzzzzzzzzzzzzzzzzz": true,
		"": false, "abcde": false, "zzzzzzzzzzzzzzzzzzzzzzzzz": false, "ABCDEF": false, "abc/def": false,
		"..%2F..": false, "abcde0": false, "abcdel": false, "abc def": false,
	} {
		if got := ValidAccountID(id); got != want {
			t.Errorf("ValidAccountID(%q) = %v, want %v", id, got, want)
		}
	}
	seen := map[string]bool{}
	for range 1000 {
		id := randomID(AccountIDLen)
		if !ValidAccountID(id) || len(id) != AccountIDLen || seen[id] {
			t.Fatalf("randomID drew %q (seen before: %v)", id, seen[id])
		}
		seen[id] = true
	}
}

// fakeUpstream is every DC's node at once: it records the paths it is
// asked for, answers reads of one account, and sends anything else to
// /internal/commit with a redirect, as a ServeMux does with "..".
type fakeUpstream struct {
	mu    sync.Mutex
	paths []string
}

func (f *fakeUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.paths = append(f.paths, r.Method+" "+r.URL.RawPath+"|"+r.URL.Path)
	f.mu.Unlock()
	switch {
	case strings.HasPrefix(r.URL.Path, "/healthz"):
		w.WriteHeader(http.StatusOK)
	case r.URL.Path == "/api/accounts/abcdefghjkmn" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, Account{ID: "abcdefghjkmn", HomeDC: "hz-a", HomeCity: "hangzhou"})
	case r.URL.Path == "/api/accounts/abcdefghjkmn/transfers":
		writeJSON(w, http.StatusOK, TransferResponse{})
	case r.URL.Path == "/api/accounts":
		writeJSON(w, http.StatusCreated, Account{ID: "abcdefghjkmn", Token: "t", HomeDC: "hz-a", HomeCity: "hangzhou"})
	default:
		http.Redirect(w, r, "/internal/commit", http.StatusTemporaryRedirect)
	}
}

// testGateway is a gateway whose five DCs are all the fake upstream, every
// one healthy.
func testGateway(t *testing.T, up http.Handler, cfg GatewayConfig) (*gateway, http.Handler) {
	t.Helper()
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	ap := netip.MustParseAddrPort(strings.TrimPrefix(srv.URL, "http://"))
	topo, err := topology.Builtin(topology.Default)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Topology, cfg.NodePort = topo, int(ap.Port())
	health := map[string]bool{}
	for _, dc := range topo.DCIDs() {
		d, _ := topo.DC(dc)
		cfg.Peers = append(cfg.Peers, Peer{DC: dc, City: d.City, WAN: ap.Addr()})
		health[dc] = true
	}
	g := newGateway(cfg)
	g.health.Store(&health)
	return g, g.routes()
}

// TestGatewayOnlySpeaksThePublicAPI sends what a mischievous phone might:
// escaped traversals towards the nodes' internal endpoint, ids that are not
// ids. None reaches the nodes but as a public API path of a valid id, and
// a node's redirect is passed on, never followed.
func TestGatewayOnlySpeaksThePublicAPI(t *testing.T) {
	up := &fakeUpstream{}
	_, h := testGateway(t, up, GatewayConfig{})
	body := `{"to":"abcdefghjkmp","amount_fen":1,"key":"k"}`
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"POST", "/api/accounts/..%2F..%2Finternal%2Fcommit%3F/transfers", http.StatusBadRequest},
		{"POST", "/api/accounts/%2E%2E/transfers", http.StatusBadRequest},
		{"GET", "/api/accounts/abc%2Fdef", http.StatusBadRequest},
		{"GET", "/api/accounts/ABCDEFGHJKMN", http.StatusBadRequest},
		{"POST", "/api/accounts/abcdefghjkmn/transfers", http.StatusOK},
		{"GET", "/api/accounts/abcdefghjkmp", http.StatusTemporaryRedirect}, // the node's answer, not followed
	} {
		req := httptest.NewRequest(c.method, c.path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer t")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s %s: %d %s; want %d", c.method, c.path, rec.Code, rec.Body, c.want)
		}
	}
	ok := regexp.MustCompile(`^(GET|POST) \|/api/accounts(/[a-hj-km-np-z2-9]{12}(/transfers)?)?$`)
	up.mu.Lock()
	defer up.mu.Unlock()
	for _, p := range up.paths {
		if !ok.MatchString(p) {
			t.Errorf("the nodes were asked for %q: not a public API path", p)
		}
	}
}

// TestHallLimits: a phone is held to its rate (429 and Retry-After, the
// lab's host is not), the hall to its size, and a stranger saying it is
// the load is recorded as the hall.
func TestHallLimits(t *testing.T) {
	host := netip.MustParseAddr("10.200.0.1")
	g, h := testGateway(t, &fakeUpstream{}, GatewayConfig{Trusted: host, AudienceMax: 7})
	call := func(from, path, client string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", path, strings.NewReader(`{"to":"abcdefghjkmp","amount_fen":1,"key":"k"}`))
		req.RemoteAddr = from + ":40000"
		req.Header.Set("Authorization", "Bearer t")
		if client != "" {
			req.Header.Set(HeaderClient, client)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	// Opens: a burst, then 429 with Retry-After.
	for i := range OpensBurst {
		if rec := call("192.0.2.7", "/api/accounts", ClientPage); rec.Code != http.StatusCreated {
			t.Fatalf("open %d of a burst: %d %s", i+1, rec.Code, rec.Body)
		}
	}
	rec := call("192.0.2.7", "/api/accounts", ClientPage)
	if secs, err := strconv.Atoi(rec.Header().Get("Retry-After")); rec.Code != http.StatusTooManyRequests || err != nil || secs < 1 {
		t.Errorf("an open past the burst: %d, Retry-After %q; want 429 and a whole number of seconds", rec.Code, rec.Header().Get("Retry-After"))
	}
	// Another phone opens; the host is never limited, and does not count
	// in the hall when it says it is the load.
	if rec := call("192.0.2.8", "/api/accounts", ClientPage); rec.Code != http.StatusCreated {
		t.Errorf("another phone's open: %d", rec.Code)
	}
	for range 3 * OpensBurst {
		if rec := call(host.String(), "/api/accounts", ClientLoad); rec.Code != http.StatusCreated {
			t.Fatalf("the host's open: %d %s", rec.Code, rec.Body)
		}
	}
	// The hall is full at AudienceMax accounts (the fake gives one id,
	// so count openings, as the record does by account): two phones more.
	rec = call("192.0.2.9", "/api/accounts", "load") // a stranger saying "load"
	if rec.Code != http.StatusCreated {
		t.Fatalf("a stranger's open: %d", rec.Code)
	}
	g.aud.mu.Lock()
	recorded := len(g.aud.ops)
	g.aud.mu.Unlock()
	if want := OpensBurst + 2; recorded != want {
		t.Errorf("the record holds %d openings; want %d (the phones', the stranger's, not the host's)", recorded, want)
	}
	g.aud.mu.Lock()
	for i := range 7 {
		g.aud.accounts[fmt.Sprint("acct", i)] = "hangzhou"
	}
	g.aud.mu.Unlock()
	rec = call("192.0.2.10", "/api/accounts", ClientPage)
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "the hall is full") || !strings.Contains(rec.Body.String(), `"field":"accounts"`) {
		t.Errorf("the 8th account of a hall of 7: %d %s; want 403 saying the hall is full", rec.Code, rec.Body)
	}
	// Transfers: their own bucket.
	n := 0
	for range 2 * TransfersBurst {
		if call("192.0.2.11", "/api/accounts/abcdefghjkmn/transfers", ClientPage).Code == http.StatusTooManyRequests {
			break
		}
		n++
	}
	if n != TransfersBurst {
		t.Errorf("%d transfers passed before a 429; want the burst, %d", n, TransfersBurst)
	}
}

// TestClientLimitsChosen raises the limits as a speaker behind a tunnel
// does (the whole hall at one address), and turns them off.
func TestClientLimitsChosen(t *testing.T) {
	burst := func(lim ClientLimits, path string) int {
		_, h := testGateway(t, &fakeUpstream{}, GatewayConfig{Limits: lim, AudienceMax: 1000})
		for i := range 100 {
			req := httptest.NewRequest("POST", path, strings.NewReader(`{"to":"abcdefghjkmp","amount_fen":1,"key":"k"}`))
			req.RemoteAddr = "192.0.2.7:40000"
			req.Header.Set("Authorization", "Bearer t")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code == http.StatusTooManyRequests {
				return i
			}
		}
		return 100
	}
	raised, err := ParseClientLimits("opens=1/40,transfers=2/60")
	if err != nil {
		t.Fatal(err)
	}
	off, err := ParseClientLimits("off")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		lim  ClientLimits
		path string
		want int
	}{
		{"default opens", ClientLimits{}, "/api/accounts", OpensBurst},
		{"raised opens", raised, "/api/accounts", 40},
		{"raised transfers", raised, "/api/accounts/abcdefghjkmn/transfers", 60},
		{"opens off", off, "/api/accounts", 100},
		{"transfers off", off, "/api/accounts/abcdefghjkmn/transfers", 100},
	} {
		if got := burst(c.lim, c.path); got != c.want {
			t.Errorf("%s (%v): %d requests from one address before a 429; want %d", c.name, c.lim, got, c.want)
		}
	}
}

func TestParseClientLimits(t *testing.T) {
	for in, want := range map[string]string{
		"":                                 "opens=0.5/5,transfers=10/20",
		"off":                              "off",
		"opens=20/200":                     "opens=20/200,transfers=10/20",
		"transfers=500/1000, opens=2.5/10": "opens=2.5/10,transfers=500/1000",
	} {
		got, err := ParseClientLimits(in)
		if err != nil || got.String() != want {
			t.Errorf("ParseClientLimits(%q) = %v, %v; want %s", in, got, err, want)
		}
		if again, err := ParseClientLimits(got.String()); err != nil || again != got {
			t.Errorf("%q does not read back: %v, %v", got.String(), again, err)
		}
	}
	for _, in := range []string{"on", "opens", "opens=5", "opens=0/5", "opens=-1/5", "opens=5/0", "opens=NaN/5", "opens=Inf/5",
		"opens=1/5,opens=2/5", "reads=1/5", "opens=1/5;transfers=1/5", "opens=1/2.5"} {
		if _, err := ParseClientLimits(in); err == nil || !strings.Contains(err.Error(), "RATE/BURST") {
			t.Errorf("ParseClientLimits(%q): %v; want an error saying what is valid", in, err)
		}
	}
}

// TestSlowBodyIsCutOff sends a request whose body trickles in at a byte a
// second: the server must close the connection before it is done.
func TestSlowBodyIsCutOff(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	srv.Config = hardened(srv.Config.Handler)
	srv.Start()
	defer srv.Close()
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 60
	fmt.Fprintf(c, "POST /api/accounts/abcdefghjkmn/transfers HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", n)
	sent := 0
	for ; sent < n; sent++ {
		if _, err := c.Write([]byte{'x'}); err != nil {
			break
		}
		// The server's close shows up as an answer or an error to read.
		c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := bufio.NewReader(c).ReadByte(); err == nil || !isTimeout(err) {
			break
		}
	}
	if sent >= n {
		t.Fatalf("a body sent at a byte a second was read whole (%d bytes): the server has no read timeout", n)
	}
	t.Logf("cut off after %d bytes", sent)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestFullLedgerFailsDefinitely fills a small backend quota: the member
// raises NOSPACE, the node's health says full, and a transfer is a
// definite failure (nothing applied), not an unknown one. The balances do
// not move.
func TestFullLedgerFailsDefinitely(t *testing.T) {
	ls := startClusterOf(t, 1, 71, 64, func(c *LedgerConfig) { c.QuotaBytes = 2 << 20 })
	l := ls[0]
	ctx := context.Background()
	a, b := open(t, l), open(t, l)
	var full error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for range 2000 {
				mu.Lock()
				done := full != nil
				mu.Unlock()
				if done {
					return
				}
				if _, err := l.OpenAccount(ctx); err != nil {
					mu.Lock()
					full = err
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if !errors.Is(full, ErrFull) {
		t.Fatalf("filling the quota ended with %v; want ErrFull", full)
	}
	if !l.Full() {
		t.Error("the member does not say it is full")
	}
	rec := httptest.NewRecorder()
	n := &node{cfg: NodeConfig{DC: l.self.DC, Topology: &topology.Topology{}}}
	n.ledger.Store(l)
	n.health(rec, httptest.NewRequest("GET", "/healthz", nil))
	if !strings.Contains(rec.Body.String(), `"ledger":"full`) {
		t.Errorf("health of a full member: %s", rec.Body)
	}
	before := balance(t, l, a.ID) + balance(t, l, b.ID)
	_, err := l.Commit(ctx, TransferRequest{To: b.ID, AmountFen: 5, Key: "when-full"}, a.ID, true)
	if !errors.Is(err, ErrFull) || errors.Is(err, ErrUnknownResult) {
		t.Errorf("a transfer on a full ledger: %v; want ErrFull, a definite failure", err)
	}
	if ae := toAPIError(err); ae.status != http.StatusInsufficientStorage || ae.unknown {
		t.Errorf("answered %d (unknown %v); want 507, not unknown", ae.status, ae.unknown)
	}
	if after := balance(t, l, a.ID) + balance(t, l, b.ID); after != before {
		t.Errorf("balances moved on a full ledger: %d → %d", before, after)
	}
}

// TestResetLeavesNoOldToken deletes the accounts behind the nodes' backs,
// as a drill's reset does, and puts a new account under an old id: the old
// token opens nothing, on a node that had cached the old record too.
func TestResetLeavesNoOldToken(t *testing.T) {
	ls := startCluster(t, 81, 64)
	ctx := context.Background()
	old := open(t, ls[0])
	if _, err := ls[1].Authorize(ctx, old.ID, old.Token); err != nil { // cached on dc-1 now
		t.Fatal(err)
	}
	if _, err := ls[0].local.Delete(ctx, prefixAccount, clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	// The id drawn again, by a new owner with another token.
	newTok := "new-owner-token"
	rec := fmt.Sprintf(`{"id":%q,"name":"x","home_dc":"dc-0","home_city":"city-0","token_sha256":%q}`, old.ID, tokenHash(newTok))
	if _, err := ls[0].local.Put(ctx, prefixAccount+old.ID, rec); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, errOld := ls[1].Authorize(ctx, old.ID, old.Token)
		_, errNew := ls[1].Authorize(ctx, old.ID, newTok)
		if errors.Is(errOld, ErrBadToken) && errNew == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the reset, on a node that had cached the account: old token %v, new token %v; want the old refused, the new accepted", errOld, errNew)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestOpensInGroups opens accounts from many callers at once: every one
// is created once, with its own id and balance.
func TestOpensInGroups(t *testing.T) {
	ls := startCluster(t, 91, 64)
	ctx := context.Background()
	const n = 300
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			a, err := ls[i%3].OpenAccount(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = a.ID
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, id := range ids {
		if id == "" || seen[id] {
			t.Fatalf("id %q opened twice or not at all", id)
		}
		seen[id] = true
	}
	resp, err := ls[0].local.Get(ctx, prefixBalance, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != n {
		t.Fatalf("%d balances in the ledger (%v); want %d", resp.Count, err, n)
	}
}

// TestInternalOpen is the endpoint through which a DC's node has the
// leader's DC commit the accounts it opens (createAtLeader): it answers
// only the other DCs' nodes, takes only the record such a node draws,
// for an account homed in the caller's DC, and never creates an id twice.
func TestInternalOpen(t *testing.T) {
	ls := startCluster(t, 91, 64)
	l := ls[0]
	peers := map[string]Peer{}
	for _, p := range l.cfg.Peers {
		peers[p.DC] = p
	}
	n := &node{cfg: NodeConfig{DC: l.self.DC, Topology: &topology.Topology{}}, peers: peers}
	n.ledger.Store(l)
	caller := peers["dc-1"]
	id := randomID(AccountIDLen)
	good := accountRecord{ID: id, Name: guestName(id), HomeDC: caller.DC, HomeCity: caller.City, TokenSHA256: tokenHash("the-token")}
	post := func(from netip.Addr, body string) (int, ErrorResponse) {
		t.Helper()
		req := httptest.NewRequest("POST", "/internal/open", strings.NewReader(body))
		req.RemoteAddr = netip.AddrPortFrom(from, 40000).String()
		rec := httptest.NewRecorder()
		n.routes().ServeHTTP(rec, req)
		var er ErrorResponse
		json.Unmarshal(rec.Body.Bytes(), &er)
		return rec.Code, er
	}
	js := func(r accountRecord) string { b, _ := json.Marshal(r); return string(b) }
	with := func(f func(*accountRecord)) string { r := good; f(&r); return js(r) }

	for _, c := range []struct {
		name  string
		from  netip.Addr
		body  string
		want  int
		field string
	}{
		{"from the host", netip.MustParseAddr("127.0.0.1"), js(good), http.StatusForbidden, ""},
		{"from the node itself", l.self.WAN, js(good), http.StatusForbidden, ""},
		{"an old-length id", caller.WAN, with(func(r *accountRecord) { r.ID = "abcdef"; r.Name = guestName(r.ID) }), http.StatusBadRequest, "id"},
		{"a traversal id", caller.WAN, with(func(r *accountRecord) { r.ID = "../internal/x"; r.Name = guestName(r.ID) }), http.StatusBadRequest, "id"},
		{"another name", caller.WAN, with(func(r *accountRecord) { r.Name = "root" }), http.StatusBadRequest, "name"},
		{"homed elsewhere", caller.WAN, with(func(r *accountRecord) { r.HomeDC, r.HomeCity = "dc-2", "city-2" }), http.StatusBadRequest, "home_dc"},
		{"no token hash", caller.WAN, with(func(r *accountRecord) { r.TokenSHA256 = "" }), http.StatusBadRequest, "token_sha256"},
		{"an upper-case hash", caller.WAN, with(func(r *accountRecord) { r.TokenSHA256 = strings.ToUpper(r.TokenSHA256) }), http.StatusBadRequest, "token_sha256"},
		{"an unknown field", caller.WAN, strings.TrimSuffix(js(good), "}") + `,"balance_fen":1}`, http.StatusBadRequest, "body"},
	} {
		if status, er := post(c.from, c.body); status != c.want || er.Field != c.field {
			t.Errorf("%s: %d %+v; want %d naming %q", c.name, status, er, c.want, c.field)
		}
	}
	if _, err := l.account(context.Background(), id); !errors.Is(err, ErrNoAccount) {
		t.Fatalf("after refused requests, account %s: %v; want none", id, err)
	}

	if status, er := post(caller.WAN, js(good)); status != http.StatusCreated {
		t.Fatalf("the record dc-1 drew: %d %+v; want 201", status, er)
	}
	if _, err := ls[2].Authorize(context.Background(), id, "the-token"); err != nil {
		t.Errorf("the account created for dc-1, on another member: %v", err)
	}
	if got := balance(t, ls[1], id); got != InitialBalanceFen {
		t.Errorf("its balance = %d, want %d", got, InitialBalanceFen)
	}
	again := with(func(r *accountRecord) { r.TokenSHA256 = tokenHash("another owner") })
	if status, er := post(caller.WAN, again); status != http.StatusConflict || er.Field != "id" {
		t.Errorf("the same id again: %d %+v; want 409 naming id", status, er)
	}
	if _, err := ls[2].Authorize(context.Background(), id, "another owner"); !errors.Is(err, ErrBadToken) {
		t.Errorf("the second owner's token: %v; want refused", err)
	}
}
