package demoapp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/fibercut/fibercut/demoapp"
	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/lab/labtest"
	"github.com/fibercut/fibercut/topology"
)

// api is a tiny client of the gateway for tests.
type api struct {
	t    *testing.T
	base string
	http *http.Client
}

func newAPI(t *testing.T, l *lab.Lab) *api {
	t.Helper()
	if l.Gateway == nil {
		t.Fatal("lab has no gateway")
	}
	return &api{t: t, base: l.Gateway.URL(), http: &http.Client{Timeout: 10 * time.Second}}
}

// do sends a request and decodes the JSON answer into out; it returns the
// status and the raw body.
func (a *api) do(method, path, token string, body any, out any) (int, string) {
	a.t.Helper()
	var rd *bytes.Reader
	switch b := body.(type) {
	case nil:
		rd = bytes.NewReader(nil)
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, a.base+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if out != nil {
		json.Unmarshal(buf.Bytes(), out)
	}
	return resp.StatusCode, buf.String()
}

func (a *api) open() demoapp.Account {
	a.t.Helper()
	var acc demoapp.Account
	if status, body := a.do("POST", "/api/accounts", "", nil, &acc); status != http.StatusCreated {
		a.t.Fatalf("open account: %d %s", status, body)
	}
	return acc
}

func (a *api) balance(acc demoapp.Account) int64 {
	a.t.Helper()
	var got demoapp.Account
	if status, body := a.do("GET", "/api/accounts/"+acc.ID, acc.Token, nil, &got); status != http.StatusOK {
		a.t.Fatalf("read %s: %d %s", acc.ID, status, body)
	}
	return got.BalanceFen
}

func (a *api) transfer(from demoapp.Account, body any) (int, demoapp.TransferResponse, string) {
	a.t.Helper()
	var tr demoapp.TransferResponse
	status, raw := a.do("POST", "/api/accounts/"+from.ID+"/transfers", from.Token, body, &tr)
	return status, tr, raw
}

// Bounds on a client retrying a transfer answered "switching": they bound the
// test, they are not a promise of how soon the service recovers.
const (
	retryAttempts = 20
	retryBudget   = 20 * time.Second
	retryPause    = 150 * time.Millisecond
)

// transferRetrying sends a transfer and, while the gateway answers 503 with
// state "switching", sends it again with the same idempotency key, as the
// API asks clients to do, at most attempts times in all and within
// retryBudget. It returns the successful answer and how many retries it
// took; any other answer, or running out of attempts, is an error.
func (a *api) transferRetrying(from demoapp.Account, req demoapp.TransferRequest, attempts int) (demoapp.TransferResponse, int, error) {
	a.t.Helper()
	deadline := time.Now().Add(retryBudget)
	n := 0 // attempts made
	var last string
	for n < attempts && (n == 0 || time.Now().Before(deadline)) {
		if n > 0 {
			time.Sleep(retryPause)
		}
		n++
		status, tr, raw := a.transfer(from, req)
		raw = strings.TrimSpace(raw)
		switch {
		case status == http.StatusOK:
			if tr.Transfer.Key != req.Key || tr.Transfer.From != from.ID || tr.Transfer.To != req.To || tr.Transfer.AmountFen != req.AmountFen {
				return tr, n - 1, fmt.Errorf("transfer %s, attempt %d: 200 for another transfer: %s", req.Key, n, raw)
			}
			return tr, n - 1, nil
		case status == http.StatusServiceUnavailable && tr.State == demoapp.StateSwitching:
			a.t.Logf("transfer %s, attempt %d: 503 %s", req.Key, n, raw)
			last = raw
		default:
			return tr, n - 1, fmt.Errorf("transfer %s, attempt %d: %d %s; want 200, or 503 with state %q", req.Key, n, status, raw, demoapp.StateSwitching)
		}
	}
	return demoapp.TransferResponse{}, n - 1, fmt.Errorf("transfer %s still switching after %d attempts (bounds: %d attempts, %v); last answer 503 %s", req.Key, n, attempts, retryBudget, last)
}

// TestLabTransfers runs on a real five-member lab through the gateway:
// transfers work, every bad input is rejected with its field and changes
// nothing, and the same idempotency key twice moves money once.
func TestLabTransfers(t *testing.T) {
	cli := labtest.RequireDocker(t)
	l := labtest.Up(t, cli, topology.Default)
	a := newAPI(t, l)
	x, y := a.open(), a.open()
	if x.BalanceFen != 100_000_000 || x.State != demoapp.StateServing || x.HomeDC == "" || x.HomeDC != x.ServedBy {
		t.Fatalf("opened %+v", x)
	}
	// Users are spread over the units, skipping DCs the gateway's health
	// view has as down for the moment: a few openings land in more than
	// one DC, whatever a health probe said just then.
	homes := map[string]bool{x.HomeDC: true, y.HomeDC: true}
	for range 8 {
		homes[a.open().HomeDC] = true
	}
	if len(homes) < 2 {
		t.Errorf("ten users all homed in %v: the gateway does not spread users", homes)
	}

	status, tr, raw := a.transfer(x, demoapp.TransferRequest{To: y.ID, AmountFen: 12_34, Key: "first"})
	if status != http.StatusOK || tr.Replayed || tr.BalanceFen != 100_000_000-1234 || tr.Transfer.CommittedBy == "" {
		t.Fatalf("transfer: %d %s", status, raw)
	}
	status, tr, raw = a.transfer(x, demoapp.TransferRequest{To: y.ID, AmountFen: 12_34, Key: "first"})
	if status != http.StatusOK || !tr.Replayed {
		t.Fatalf("same key again: %d %s; want the first transfer replayed", status, raw)
	}
	if got := a.balance(y); got != 100_000_000+1234 {
		t.Fatalf("recipient balance after one transfer sent twice = %d", got)
	}

	bad := []struct {
		name   string
		token  string
		body   string
		status int
		field  string
	}{
		{"negative", x.Token, `{"to":"` + y.ID + `","amount_fen":-1,"key":"b1"}`, 400, "amount_fen"},
		{"zero", x.Token, `{"to":"` + y.ID + `","amount_fen":0,"key":"b2"}`, 400, "amount_fen"},
		{"fractional", x.Token, `{"to":"` + y.ID + `","amount_fen":0.5,"key":"b3"}`, 400, "amount_fen"},
		{"string", x.Token, `{"to":"` + y.ID + `","amount_fen":"100","key":"b4"}`, 400, "amount_fen"},
		{"overflow", x.Token, `{"to":"` + y.ID + `","amount_fen":99999999999999999999,"key":"b5"}`, 400, "amount_fen"},
		{"to oneself", x.Token, `{"to":"` + x.ID + `","amount_fen":1,"key":"b6"}`, 400, "to"},
		{"unknown recipient", x.Token, `{"to":"zzzzzzzzzzzz","amount_fen":1,"key":"b7"}`, 404, "to"},
		{"recipient not an id", x.Token, `{"to":"../x","amount_fen":1,"key":"b7b"}`, 400, "to"},
		{"insufficient funds", x.Token, `{"to":"` + y.ID + `","amount_fen":100000000000,"key":"b8"}`, 409, "amount_fen"},
		{"missing token", "", `{"to":"` + y.ID + `","amount_fen":1,"key":"b9"}`, 401, "Authorization"},
		{"someone else's token", y.Token, `{"to":"` + y.ID + `","amount_fen":1,"key":"b10"}`, 403, ""},
		{"key reused", x.Token, `{"to":"` + y.ID + `","amount_fen":999,"key":"first"}`, 409, "key"},
	}
	for _, b := range bad {
		var er demoapp.ErrorResponse
		status, raw := a.do("POST", "/api/accounts/"+x.ID+"/transfers", b.token, b.body, &er)
		if status != b.status || er.Field != b.field || er.Error == "" {
			t.Errorf("%s: %d %s; want %d naming field %q", b.name, status, raw, b.status, b.field)
		}
	}
	var er demoapp.ErrorResponse
	if status, raw := a.do("GET", "/api/accounts/zzzzzzzzzzzz", x.Token, nil, &er); status != 404 {
		t.Errorf("read unknown account: %d %s", status, raw)
	}
	// Paths that are not the public API's reach nothing behind the
	// gateway: an escaped traversal to the nodes' internal endpoint (which
	// once was followed through a redirect and committed), other ids.
	body := fmt.Sprintf(`{"from":%q,"token":%q,"transfer":{"to":%q,"amount_fen":7,"key":"sneak"},"batch":true,"to":%q,"amount_fen":7,"key":"sneak"}`, x.ID, x.Token, y.ID, y.ID)
	for _, path := range []string{"/api/accounts/..%2F..%2Finternal%2Fcommit%3F/transfers", "/api/accounts/..%2F..%2Finternal%2Fopen%3F/transfers", "/api/accounts/%2E%2E/transfers",
		"/api/accounts/" + x.ID + "%2F..%2F" + y.ID + "/transfers", "/api/accounts/NOBODY/transfers"} {
		if status, raw := a.do("POST", path, x.Token, json.RawMessage(body), nil); status/100 != 4 {
			t.Errorf("POST %s through the gateway: %d %s; want a 4xx, nothing committed", path, status, raw)
		}
	}
	if got := a.balance(x); got != 100_000_000-1234 {
		t.Errorf("payer balance after rejected transfers = %d, want %d", got, 100_000_000-1234)
	}
	if got := a.balance(y); got != 100_000_000+1234 {
		t.Errorf("recipient balance after rejected transfers = %d", got)
	}

	// The nodes' internal endpoint answers only the other DCs: from the
	// host, straight over the WAN, it refuses whatever the token.
	internal := func(token string) (int, string) {
		body := fmt.Sprintf(`{"from":%q,"token":%q,"transfer":{"to":%q,"amount_fen":1,"key":"inside"},"batch":true}`, x.ID, token, y.ID)
		resp, err := http.Post("http://"+netip.AddrPortFrom(l.DCs[0].WANIP, lab.NodePort).String()+"/internal/commit", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	for _, c := range []struct {
		name, token string
		want        int
	}{{"no token", "", http.StatusForbidden}, {"someone else's token", y.Token, http.StatusForbidden}, {"the payer's token", x.Token, http.StatusForbidden}} {
		if status, raw := internal(c.token); status != c.want {
			t.Errorf("internal commit with %s: %d %s; want %d", c.name, status, raw, c.want)
		}
	}
	if got := a.balance(x); got != 100_000_000-1234 {
		t.Errorf("payer balance after bad paths and internal commits from the host = %d, want %d", got, 100_000_000-1234)
	}
	// Nor does it create accounts for the host.
	rec := `{"id":"abcdefghjkmn","name":"游客 Guest abcdefghjkmn","home_dc":"` + l.DCs[0].ID + `","home_city":"` + l.DCs[0].City + `","token_sha256":"` + strings.Repeat("0", 64) + `"}`
	resp, err := http.Post("http://"+netip.AddrPortFrom(l.DCs[1].WANIP, lab.NodePort).String()+"/internal/open", "application/json", strings.NewReader(rec))
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("internal open from the host: %d %s; want 403", resp.StatusCode, answer)
	}
	if status, raw := a.do("GET", "/api/accounts/abcdefghjkmn", x.Token, nil, nil); status != http.StatusNotFound {
		t.Errorf("the account the host asked for: %d %s; want 404", status, raw)
	}
}

// ledgerClient connects from the host straight to the ledger members that
// are still running.
func ledgerClient(t *testing.T, l *lab.Lab, skip ...string) *clientv3.Client {
	t.Helper()
	var eps []string
	for _, d := range l.DCs {
		if !strings.Contains(strings.Join(skip, ","), d.ID) {
			eps = append(eps, "http://"+netip.AddrPortFrom(d.WANIP, demoapp.ClientPort).String())
		}
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// leaderDC names the DC whose ledger member is the leader, for the logs: it
// tells whether a kill forces an election.
func leaderDC(t *testing.T, l *lab.Lab) string {
	t.Helper()
	c := ledgerClient(t, l)
	for _, d := range l.DCs {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := c.Status(ctx, "http://"+netip.AddrPortFrom(d.WANIP, demoapp.ClientPort).String())
		cancel()
		if err == nil && st.Header.MemberId == st.Leader {
			return d.ID
		}
	}
	return "unknown"
}

// TestLabHangzhouKilled kills both hangzhou DCs and checks that users homed
// there are re-homed to another city and can transfer, and that no
// acknowledged transfer is lost and no money created.
//
// Right after the kill the ledger may be electing a leader. The gateway
// waits that out for a while; past it, it answers 503 "switching", and a
// client retrying with the same key moves money at most once. So each
// transfer after the kill may be answered "switching" and retried, but any
// other answer is a failure, and each must succeed within the retry bounds.
func TestLabHangzhouKilled(t *testing.T) {
	cli := labtest.RequireDocker(t)
	l := labtest.Up(t, cli, topology.Default)
	a := newAPI(t, l)
	var users []demoapp.Account
	for range 10 {
		users = append(users, a.open())
	}
	acked := map[string]bool{}  // from/key of every transfer answered ok
	delta := map[string]int64{} // account → balance change the acknowledged transfers make
	send := func(round, attempts int) (ok, fail, retries int, cities map[string]int) {
		cities = map[string]int{}
		for i, u := range users {
			to := users[(i+1)%len(users)]
			req := demoapp.TransferRequest{To: to.ID, AmountFen: 100, Key: fmt.Sprintf("r%d-u%d", round, i)}
			tr, n, err := a.transferRetrying(u, req, attempts)
			retries += n
			if err != nil {
				fail++
				t.Errorf("round %d: %v", round, err)
				continue
			}
			if n > 0 {
				t.Logf("round %d: transfer %s succeeded after %d retries (replayed %v)", round, req.Key, n, tr.Replayed)
			}
			ok++
			acked[u.ID+"/"+req.Key] = true
			delta[u.ID] -= req.AmountFen
			delta[to.ID] += req.AmountFen
			cities[tr.ServedCity]++
			if u.HomeCity == "hangzhou" && (tr.ServedCity == "hangzhou" || tr.State != demoapp.StateSwitched) && round > 0 {
				t.Errorf("user homed in hangzhou served by %s (%s) after hangzhou died", tr.ServedBy, tr.State)
			}
		}
		return ok, fail, retries, cities
	}
	// Before the kill the lab is healthy: every transfer succeeds at once.
	if ok, fail, _, _ := send(0, 1); fail != 0 {
		t.Fatalf("before the kill: %d ok, %d failed", ok, fail)
	}
	hzUsers := 0
	for _, u := range users {
		if u.HomeCity == "hangzhou" {
			hzUsers++
		}
	}
	if hzUsers == 0 {
		t.Fatal("no user homed in hangzhou")
	}
	ctx := context.Background()
	t.Logf("ledger leader before the kill: %s", leaderDC(t, l))
	for _, dc := range []string{"hz-a", "hz-b"} {
		d, _ := l.DC(dc)
		if err := cli.ContainerKill(ctx, d.ContainerID, "KILL"); err != nil {
			t.Fatal(err)
		}
	}
	for round := 1; round <= 3; round++ {
		ok, fail, retries, cities := send(round, retryAttempts)
		t.Logf("round %d after the kill: %d ok, %d failed, %d retries, served by cities %v", round, ok, fail, retries, cities)
		if fail != 0 || cities["hangzhou"] != 0 {
			t.Errorf("round %d after the kill: %d ok, %d failed, served by cities %v", round, ok, fail, cities)
		}
	}
	// Read the final state from the surviving members directly.
	c := ledgerClient(t, l, "hz-a", "hz-b")
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	xs, err := c.Get(cctx, "xfer/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	present := map[string]bool{}
	for _, kv := range xs.Kvs {
		present[strings.TrimPrefix(string(kv.Key), "xfer/")] = true
	}
	for k := range acked {
		if !present[k] {
			t.Errorf("acknowledged transfer %s is not in the ledger", k)
		}
	}
	if len(present) != len(acked) {
		t.Errorf("%d transfers in the ledger, %d acknowledged", len(present), len(acked))
	}
	bs, err := c.Get(cctx, "bal/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	// Each acknowledged transfer moved its money once: every balance is
	// what the acknowledged transfers make it.
	var sum int64
	for _, kv := range bs.Kvs {
		v, _ := strconv.ParseInt(string(kv.Value), 10, 64)
		sum += v
		id := strings.TrimPrefix(string(kv.Key), demoapp.BalanceKey(""))
		if want := demoapp.InitialBalanceFen + delta[id]; v != want {
			t.Errorf("balance of %s = %d, want %d from the acknowledged transfers", id, v, want)
		}
	}
	if want := int64(len(users)) * demoapp.InitialBalanceFen; sum != want || len(bs.Kvs) != len(users) {
		t.Errorf("%d balances summing to %d, want %d summing to %d", len(bs.Kvs), sum, len(users), want)
	}
}

// TestLabPeersByName runs a real five-member lab whose DCs find one another
// by name (Docker's DNS), as they do on Kubernetes: the members form one
// ledger, transfers between users homed in different DCs commit through the
// leader, and the nodes' internal endpoint, which tells peers by what
// their names resolve to, still refuses the host.
func TestLabPeersByName(t *testing.T) {
	cli := labtest.RequireDocker(t)
	l := labtest.UpWith(t, cli, topology.Default, lab.UpOptions{PeersByName: true})
	c, err := cli.ContainerInspect(context.Background(), l.DCs[0].Container)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(c.Config.Env, lab.EnvPeers+"=hz-a=hz-a.wan,hz-b=hz-b.wan,sh-a=sh-a.wan,sh-b=sh-b.wan,sz-a=sz-a.wan") {
		t.Fatalf("the nodes do not go by name: %v", c.Config.Env)
	}
	a := newAPI(t, l)
	var users []demoapp.Account
	homes := map[string]bool{}
	for range 10 {
		u := a.open()
		users = append(users, u)
		homes[u.HomeDC] = true
	}
	if len(homes) < 2 {
		t.Fatalf("ten users all homed in %v", homes)
	}
	// Each user pays the next, in a ring: every balance ends where it
	// began, and each transfer whose payer is homed away from the leader
	// is forwarded to it by name.
	for i, u := range users {
		to := users[(i+1)%len(users)]
		if _, _, err := a.transferRetrying(u, demoapp.TransferRequest{To: to.ID, AmountFen: 500, Key: fmt.Sprintf("ring-%d", i)}, 20); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range users {
		if got := a.balance(u); got != demoapp.InitialBalanceFen {
			t.Errorf("%s (homed in %s) holds %d fen after the ring, want %d", u.ID, u.HomeDC, got, demoapp.InitialBalanceFen)
		}
	}
	body := fmt.Sprintf(`{"from":%q,"token":%q,"transfer":{"to":%q,"amount_fen":1,"key":"inside"},"batch":true}`, users[0].ID, users[0].Token, users[1].ID)
	resp, err := http.Post("http://"+netip.AddrPortFrom(l.DCs[0].WANIP, lab.NodePort).String()+"/internal/commit", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("internal commit from the host: %d, want 403", resp.StatusCode)
	}
}
