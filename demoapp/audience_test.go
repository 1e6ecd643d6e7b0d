package demoapp

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/fibercut/fibercut/topology"
	"github.com/fibercut/fibercut/verify"
)

// fakeNodes answers openings and transfers as a DC's node would: opening
// always works (home hz-a), a transfer's answer depends on its amount.
func fakeNodes(calls *int) (open, transfer http.HandlerFunc) {
	open = func(w http.ResponseWriter, r *http.Request) {
		*calls++
		writeJSON(w, http.StatusCreated, Account{ID: "p1", Token: "t", HomeDC: "hz-a", HomeCity: "hangzhou", BalanceFen: InitialBalanceFen, ServedBy: "hz-a"})
	}
	transfer = func(w http.ResponseWriter, r *http.Request) {
		*calls++
		var req TransferRequest
		json.NewDecoder(r.Body).Decode(&req)
		switch req.AmountFen {
		case 1: // committed
			writeJSON(w, http.StatusOK, TransferResponse{Transfer: Transfer{Key: req.Key, From: r.PathValue("id"), To: req.To, AmountFen: 1, Revision: 42}, BalanceFen: 7})
		case 2: // refused: nothing applied
			writeJSON(w, http.StatusConflict, ErrorResponse{Error: "insufficient funds"})
		case 3: // may have been applied
			writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: "timeout", Unknown: true})
		default: // no quorum: nothing applied
			writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: "no quorum"})
		}
	}
	return open, transfer
}

func TestAudienceRecord(t *testing.T) {
	topo, err := topology.Builtin(topology.Default)
	if err != nil {
		t.Fatal(err)
	}
	peers, err := ParsePeers("hz-a=10.0.0.10,hz-b=10.0.0.11,sh-a=10.0.0.12,sh-b=10.0.0.13,sz-a=10.0.0.14", topo)
	if err != nil {
		t.Fatal(err)
	}
	// The test's requests come from loopback: that is the lab's host here.
	g := newGateway(GatewayConfig{Topology: topo, Peers: peers, DropAudience: 5, Trusted: netip.MustParseAddr("127.0.0.1")})
	calls := 0
	open, transfer := fakeNodes(&calls)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/accounts", g.recorded(verify.KindOpen, open))
	mux.HandleFunc("POST /api/accounts/{id}/transfers", g.recorded(verify.KindTransfer, transfer))
	public := httptest.NewServer(mux)
	defer public.Close()
	internal := httptest.NewServer(g.recordRoutes())
	defer internal.Close()
	rc := AudienceClient{Addr: strings.TrimPrefix(internal.URL, "http://")}
	ctx := context.Background()

	post := func(path, client, body string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, public.URL+path, strings.NewReader(body))
		if client != "" {
			req.Header.Set(HeaderClient, client)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	xfer := func(client string, fen int, key string) int {
		return post("/api/accounts/p1/transfers", client, `{"to":"p2","amount_fen":`+string(rune('0'+fen))+`,"key":"`+key+`"}`)
	}
	post("/api/accounts", ClientLoad, "") // the load's: not recorded
	xfer(ClientLoad, 1, "load-1")
	post("/api/accounts", ClientPage, "")
	xfer(ClientPage, 1, "k1")
	xfer(ClientPage, 2, "k2")
	xfer("", 3, "k3") // no header: recorded as the hall's too
	xfer(ClientPage, 4, "k4")

	_, ops, err := rc.Record(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		kind, from, key string
		outcome         verify.Outcome
		rev             int64
	}
	var got []row
	for _, op := range ops {
		if op.Source != verify.SourceAudience {
			t.Errorf("op %d: source %q", op.Seq, op.Source)
		}
		got = append(got, row{op.Kind, op.From, op.Key, op.Outcome, op.Revision})
	}
	want := []row{{"open", "p1", "", verify.OK, 0}, {"transfer", "p1", "k1", verify.OK, 42}, {"transfer", "p1", "k2", verify.Fail, 0},
		{"transfer", "p1", "k3", verify.Unknown, 0}, {"transfer", "p1", "k4", verify.Fail, 0}}
	if len(got) != len(want) {
		t.Fatalf("record %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("op %d: %+v, want %+v", i+1, got[i], want[i])
		}
	}
	sum, err := rc.Summary(ctx)
	if err != nil || sum.Opened["hangzhou"] != 1 || sum.Transfers != 1 {
		t.Errorf("summary %+v, %v; want 1 account in hangzhou, 1 transfer", sum, err)
	}

	// The fifth distinct key is dropped by the test switch: answered ok,
	// never sent on; its retry is not counted again.
	before := calls
	if st := xfer(ClientPage, 1, "k5"); st != http.StatusOK || calls != before {
		t.Errorf("the dropped transfer: HTTP %d, node called %d times; want 200 and never", st, calls-before)
	}
	xfer(ClientPage, 1, "k5")
	if calls != before+1 {
		t.Errorf("a retry of the dropped key was not sent on")
	}

	// Frozen: the hall's transfers are refused, nothing is recorded; the
	// load's still pass.
	_, ops, err = rc.Freeze(ctx)
	if err != nil || len(ops) != 7 {
		t.Fatalf("freeze: %d ops, %v; want 7", len(ops), err)
	}
	if st := xfer(ClientPage, 1, "k6"); st != http.StatusServiceUnavailable {
		t.Errorf("a transfer of the hall while frozen: HTTP %d, want 503", st)
	}
	if st := xfer(ClientLoad, 1, "load-2"); st != http.StatusOK {
		t.Errorf("a transfer of the load while frozen: HTTP %d, want 200", st)
	}
	if _, ops, _ = rc.Record(ctx); len(ops) != 7 {
		t.Errorf("record after the frozen transfer: %d ops, want 7", len(ops))
	}

	// Reset: empty, open again.
	if err := rc.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if st := xfer(ClientPage, 1, "k1"); st != http.StatusOK {
		t.Errorf("after reset: HTTP %d", st)
	}
	if _, ops, _ = rc.Record(ctx); len(ops) != 1 || ops[0].Key != "k1" || ops[0].Seq != 1 {
		t.Errorf("after reset the record holds %+v; want k1 alone", ops)
	}
}

func TestParseDropAudience(t *testing.T) {
	for v, want := range map[string]int{"": 0, "3": 3} {
		if n, err := ParseDropAudience(v); err != nil || n != want {
			t.Errorf("%q: %d, %v", v, n, err)
		}
	}
	for _, v := range []string{"0", "-1", "x"} {
		if _, err := ParseDropAudience(v); err == nil || !strings.Contains(err.Error(), EnvTestDropAudience) {
			t.Errorf("%q: %v; want an error naming %s", v, err, EnvTestDropAudience)
		}
	}
}
