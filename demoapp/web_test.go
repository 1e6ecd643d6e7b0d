package demoapp

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// ---- the handler ----

func TestWebHandler(t *testing.T) {
	srv := httptest.NewServer(WebHandler())
	defer srv.Close()

	for _, tc := range []struct {
		path, contentType string
		contains          []string
	}{
		{"/", "text/html", []string{
			`src="app.js"`, `href="style.css"`,
			`data-testid="open-account"`, `data-testid="account-id"`, `data-testid="balance"`,
			`data-testid="served-by"`, `data-testid="state-banner"`, `data-testid="transfer-to"`,
			`data-testid="transfer-amount"`, `data-testid="transfer-submit"`, `data-testid="transfer-result"`,
		}},
		{"/index.html", "text/html", []string{`data-testid="balance"`}},
		{"/app.js", "text/javascript", []string{"/api/accounts", "parseAmountFen", "localStorage"}},
		{"/style.css", "text/css", []string{".banner"}},
	} {
		res, body := webGet(t, srv.URL+tc.path)
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d, want 200", tc.path, res.StatusCode)
			continue
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.contentType) {
			t.Errorf("GET %s: Content-Type %q, want %s", tc.path, ct, tc.contentType)
		}
		if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache", tc.path, cc)
		}
		for _, s := range tc.contains {
			if !strings.Contains(body, s) {
				t.Errorf("GET %s: body lacks %s", tc.path, s)
			}
		}
	}

	for _, p := range []string{"/nope", "/api/accounts", "/web/index.html", "/../web.go", "/app.js/"} {
		if res, _ := webGet(t, srv.URL+p); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", p, res.StatusCode)
		}
	}

	res, err := http.Post(srv.URL+"/", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: status %d, want 405", res.StatusCode)
	}

	// A revalidation with the ETag is answered 304.
	res, _ = webGet(t, srv.URL+"/app.js")
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/app.js", nil)
	req.Header.Set("If-None-Match", res.Header.Get("ETag"))
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotModified {
		t.Errorf("GET /app.js with If-None-Match: status %d, want 304", res.StatusCode)
	}
}

// TestWebSelfContained checks that the page loads nothing from elsewhere: the
// conference network may be offline.
func TestWebSelfContained(t *testing.T) {
	for _, name := range []string{"web/index.html", "web/app.js", "web/style.css"} {
		b, err := webFS.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), "http://www.w3.org/2000/svg", "") // an XML namespace, not a fetch
		for _, bad := range []string{"http://", "https://", "//cdn", "@import", "fonts.googleapis"} {
			if strings.Contains(s, bad) {
				t.Errorf("%s contains %q: the page must not load external resources", name, bad)
			}
		}
	}
}

func webGet(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

// ---- a fake API, following api.go, to drive the page against ----

// fakeAPI is an in-memory implementation of the three API endpoints of
// api.go, with knobs to play a failover: every answer names the DC set by
// serve, outage makes every call a 503 "switching", and unknownNext applies
// the next transfers but answers them 503 "unknown".
type fakeAPI struct {
	mu         sync.Mutex
	accounts   map[string]*fakeAPIAccount
	transfers  map[string]Transfer // by key
	opened     int
	rev        int64
	servedBy   string
	servedCity string
	state      string
	outage     bool
	unknown    int      // the next transfers to answer "unknown" after applying them
	attempts   []string // the key of every transfer request that passed validation
	rejected   int      // transfer requests refused by the outage
	unmarked   []string // transfer requests without X-Fibercut-Client: page
}

type fakeAPIAccount struct {
	Account
	token string
}

func newFakeAPI() *fakeAPI {
	return &fakeAPI{
		accounts:   map[string]*fakeAPIAccount{},
		transfers:  map[string]Transfer{},
		servedBy:   "hz-a",
		servedCity: "hangzhou",
		state:      StateServing,
	}
}

// handler serves the API and, at "/", the page, as the gateway does.
func (f *fakeAPI) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/accounts", f.open)
	mux.HandleFunc("GET /api/accounts/{id}", f.get)
	mux.HandleFunc("POST /api/accounts/{id}/transfers", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(HeaderClient) != ClientPage {
			f.mu.Lock()
			f.unmarked = append(f.unmarked, r.Method+" "+r.URL.Path)
			f.mu.Unlock()
		}
		f.transfer(w, r)
	})
	mux.Handle("/", WebHandler())
	return mux
}

func (f *fakeAPI) serve(dc, city, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.servedBy, f.servedCity, f.state = dc, city, state
}

func (f *fakeAPI) setOutage(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.outage = on
}

func (f *fakeAPI) answerUnknown(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unknown = n
}

func (f *fakeAPI) forget(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.accounts, id)
}

func (f *fakeAPI) balance(id string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a := f.accounts[id]; a != nil {
		return a.BalanceFen
	}
	return -1
}

func (f *fakeAPI) attemptKeys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.attempts)
}

func (f *fakeAPI) rejectedCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rejected
}

func (f *fakeAPI) transferCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.transfers)
}

// The handlers below hold f.mu for their whole run.

func (f *fakeAPI) writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (f *fakeAPI) fail(w http.ResponseWriter, status int, field, format string, args ...any) {
	f.writeJSON(w, status, ErrorResponse{
		Error: fmt.Sprintf(format, args...), Field: field,
		ServedBy: f.servedBy, ServedCity: f.servedCity, State: f.state,
	})
}

// down answers 503 during an outage.
func (f *fakeAPI) down(w http.ResponseWriter) bool {
	if !f.outage {
		return false
	}
	f.writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{
		Error: "demoapp: no ledger quorum in hangzhou; switching datacenter", State: StateSwitching,
	})
	return true
}

func (f *fakeAPI) view(a *fakeAPIAccount) Account {
	v := a.Account
	v.ServedBy, v.ServedCity, v.State = f.servedBy, f.servedCity, f.state
	return v
}

var fakeAPINames = []string{"Lin Hui 林慧", "Chen Bo 陈波", "Zhou Min 周敏", "Wang Lei 王磊", "Li Na 李娜"}

func (f *fakeAPI) open(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down(w) {
		return
	}
	f.opened++
	tok := make([]byte, 16)
	rand.Read(tok)
	a := &fakeAPIAccount{token: hex.EncodeToString(tok), Account: Account{
		ID:         fmt.Sprintf("8%07d", 4711+f.opened*37),
		Name:       fakeAPINames[(f.opened-1)%len(fakeAPINames)],
		HomeDC:     "hz-a",
		HomeCity:   "hangzhou",
		BalanceFen: InitialBalanceFen,
	}}
	f.accounts[a.ID] = a
	v := f.view(a)
	v.Token = a.token
	f.writeJSON(w, http.StatusCreated, v)
}

// auth answers 401, 404 or 403 unless the request carries the account's token.
func (f *fakeAPI) auth(w http.ResponseWriter, r *http.Request) *fakeAPIAccount {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		f.fail(w, http.StatusUnauthorized, "", "demoapp: missing token: send Authorization: Bearer TOKEN")
		return nil
	}
	a := f.accounts[r.PathValue("id")]
	if a == nil {
		f.fail(w, http.StatusNotFound, "", "demoapp: no account %q", r.PathValue("id"))
		return nil
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(a.token)) != 1 {
		f.fail(w, http.StatusForbidden, "", "demoapp: wrong token for account %q", a.ID)
		return nil
	}
	return a
}

func (f *fakeAPI) get(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down(w) {
		return
	}
	if a := f.auth(w, r); a != nil {
		f.writeJSON(w, http.StatusOK, f.view(a))
	}
}

func (f *fakeAPI) transfer(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.outage {
		f.rejected++
	}
	if f.down(w) {
		return
	}
	from := f.auth(w, r)
	if from == nil {
		return
	}
	var req TransferRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		f.fail(w, http.StatusBadRequest, "", "demoapp: transfer body: %v", err)
		return
	}
	switch {
	case req.To == "" || req.To == from.ID:
		f.fail(w, http.StatusBadRequest, "to", "demoapp: to must be another account's id")
		return
	case req.AmountFen <= 0:
		f.fail(w, http.StatusBadRequest, "amount_fen", "demoapp: amount_fen must be positive, got %d", req.AmountFen)
		return
	case req.Key == "":
		f.fail(w, http.StatusBadRequest, "key", "demoapp: key (the idempotency key) is required")
		return
	}
	f.attempts = append(f.attempts, req.Key)
	if done, ok := f.transfers[req.Key]; ok {
		if done.From != from.ID || done.To != req.To || done.AmountFen != req.AmountFen {
			f.fail(w, http.StatusConflict, "key", "demoapp: key %q was used for another transfer", req.Key)
			return
		}
		f.writeJSON(w, http.StatusOK, TransferResponse{Transfer: done, Replayed: true, BalanceFen: from.BalanceFen,
			ServedBy: f.servedBy, ServedCity: f.servedCity, State: f.state})
		return
	}
	to := f.accounts[req.To]
	if to == nil {
		f.fail(w, http.StatusNotFound, "to", "demoapp: no account %q", req.To)
		return
	}
	if from.BalanceFen < req.AmountFen {
		f.fail(w, http.StatusConflict, "amount_fen", "demoapp: insufficient funds")
		return
	}
	from.BalanceFen -= req.AmountFen
	to.BalanceFen += req.AmountFen
	f.rev++
	done := Transfer{Key: req.Key, From: from.ID, To: to.ID, AmountFen: req.AmountFen, CommittedBy: f.servedBy, Revision: f.rev}
	f.transfers[req.Key] = done
	if f.unknown > 0 {
		f.unknown--
		f.writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{
			Error: "demoapp: ledger timed out; the transfer may or may not be applied", Unknown: true,
			ServedBy: f.servedBy, ServedCity: f.servedCity, State: f.state,
		})
		return
	}
	f.writeJSON(w, http.StatusOK, TransferResponse{Transfer: done, BalanceFen: from.BalanceFen,
		ServedBy: f.servedBy, ServedCity: f.servedCity, State: f.state})
}

// TestWebFakeAPI checks the fake against api.go, so that the page tests
// exercise the contract the real gateway serves.
func TestWebFakeAPI(t *testing.T) {
	f := newFakeAPI()
	srv := httptest.NewServer(f.handler())
	defer srv.Close()

	a := apiOpenAccount(t, srv.URL)
	b := apiOpenAccount(t, srv.URL)
	if a.Token == "" || a.BalanceFen != InitialBalanceFen || a.ServedBy != "hz-a" || a.ID == b.ID {
		t.Fatalf("opened %+v and %+v", a, b)
	}
	call := func(method, path, token, body string) (int, ErrorResponse) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var e ErrorResponse
		json.NewDecoder(res.Body).Decode(&e)
		return res.StatusCode, e
	}
	xfer := "/api/accounts/" + a.ID + "/transfers"
	for _, tc := range []struct {
		name, method, path, token, body string
		status                          int
		field                           string
	}{
		{"no token", "GET", "/api/accounts/" + a.ID, "", "", 401, ""},
		{"wrong token", "GET", "/api/accounts/" + a.ID, b.Token, "", 403, ""},
		{"unknown account", "GET", "/api/accounts/nobody", a.Token, "", 404, ""},
		{"read", "GET", "/api/accounts/" + a.ID, a.Token, "", 200, ""},
		{"bad json", "POST", xfer, a.Token, "{", 400, ""},
		{"no recipient", "POST", xfer, a.Token, `{"amount_fen":1,"key":"k"}`, 400, "to"},
		{"zero", "POST", xfer, a.Token, `{"to":"` + b.ID + `","amount_fen":0,"key":"k"}`, 400, "amount_fen"},
		{"no key", "POST", xfer, a.Token, `{"to":"` + b.ID + `","amount_fen":1}`, 400, "key"},
		{"too much", "POST", xfer, a.Token, `{"to":"` + b.ID + `","amount_fen":100000001,"key":"k0"}`, 409, "amount_fen"},
		{"transfer", "POST", xfer, a.Token, `{"to":"` + b.ID + `","amount_fen":5,"key":"k1"}`, 200, ""},
		{"replay", "POST", xfer, a.Token, `{"to":"` + b.ID + `","amount_fen":5,"key":"k1"}`, 200, ""},
		{"key reused", "POST", xfer, a.Token, `{"to":"` + b.ID + `","amount_fen":6,"key":"k1"}`, 409, "key"},
	} {
		status, e := call(tc.method, tc.path, tc.token, tc.body)
		if status != tc.status || e.Field != tc.field {
			t.Errorf("%s: status %d field %q (%s), want %d field %q", tc.name, status, e.Field, e.Error, tc.status, tc.field)
		}
	}
	if got := f.balance(b.ID); got != InitialBalanceFen+5 {
		t.Errorf("recipient balance %d, want %d: a replay moved money", got, InitialBalanceFen+5)
	}
}

// ---- driving the page in Chromium ----

// requireChromium returns the path of a Chromium binary, or skips the test
// (fails it when FIBERCUT_REQUIRE_DOCKER=1, as CI sets) when there is none.
// On Debian: apt-get install chromium.
func requireChromium(t testing.TB) string {
	t.Helper()
	skipOrFail := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("FIBERCUT_REQUIRE_DOCKER") == "1" {
			t.Fatalf(format+" (FIBERCUT_REQUIRE_DOCKER=1)", args...)
		}
		t.Skipf(format, args...)
	}
	if testing.Short() {
		skipOrFail("chromium test skipped in -short mode")
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	skipOrFail("chromium required to test the web page (apt-get install chromium)")
	return ""
}

// pageTab drives the audience page in one headless Chromium tab on a
// 390×844 phone viewport. Every method fails the test, with the text of the
// page and its console, when its step does not happen within Step.
type pageTab struct {
	t       *testing.T
	ctx     context.Context // the tab; its deadline bounds the whole session
	BaseURL string
	// Step bounds one wait (20 s by default); a wait across a real
	// failover needs more than the gateway's RTO.
	Step time.Duration
	logs *pageLog
}

// pageLog keeps the page's console output to show when a step fails.
type pageLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *pageLog) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *pageLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// newPageTab starts Chromium (skipping the test when there is none, see
// requireChromium) and opens baseURL+"/" in a fresh profile. The browser is
// closed when the test ends or after timeout, whichever comes first.
func newPageTab(t *testing.T, baseURL string, timeout time.Duration) *pageTab {
	t.Helper()
	exe := requireChromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // tests run as root in CI containers
		chromedp.DisableGPU,
		chromedp.WindowSize(390, 844),
		chromedp.Flag("lang", "en-US"),
	)
	total, cancelTotal := context.WithTimeout(context.Background(), timeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(total, opts...)
	logs := &pageLog{}
	var done atomic.Bool
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithListener(func(ev any) {
		if done.Load() {
			return
		}
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range ev.Args {
				if a.Description != "" {
					args = append(args, a.Description)
				} else {
					args = append(args, string(a.Value))
				}
			}
			logs.add("console.%s: %s", ev.Type, strings.Join(args, " "))
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			logs.add("exception at %s:%d: %s", d.URL, d.LineNumber+1, msg)
		}
	}))
	t.Cleanup(func() {
		done.Store(true)
		cancelTab()
		cancelAlloc()
		cancelTotal()
	})
	p := &pageTab{t: t, ctx: ctx, BaseURL: strings.TrimSuffix(baseURL, "/"), Step: 20 * time.Second, logs: logs}
	// The first Do starts the browser under the total deadline.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2))); err != nil {
		t.Fatalf("start chromium %s: %v", exe, err)
	}
	p.do("open the page", chromedp.Navigate(p.BaseURL+"/"))
	p.waitJS("the page script runs", `!!window.fibercut && document.getElementById('lang').textContent !== ''`)
	return p
}

func testid(name string) chromedp.CSS { return chromedp.CSS(`[data-testid="` + name + `"]`) }

// step returns a context bounded by Step, derived from the tab.
func (p *pageTab) step() (context.Context, context.CancelFunc) {
	return context.WithTimeout(p.ctx, p.Step)
}

// fatalf fails the test with the page's text and console.
func (p *pageTab) fatalf(format string, args ...any) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 3*time.Second)
	defer cancel()
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		text = "(cannot read the page: " + err.Error() + ")"
	}
	p.t.Fatalf(format+"\n--- page text ---\n%s\n--- console ---\n%s", append(args, text, p.logs)...)
}

func (p *pageTab) do(desc string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := p.step()
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.fatalf("%s: %v", desc, err)
	}
}

// waitJS waits until the JavaScript expression is truthy.
func (p *pageTab) waitJS(desc, expr string) {
	p.t.Helper()
	ctx, cancel := p.step()
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(p.Step)))
	if err != nil {
		p.fatalf("waiting until %s (%s): %v", desc, expr, err)
	}
}

// evalString evaluates a JavaScript expression that yields a string.
func (p *pageTab) evalString(expr string) string {
	p.t.Helper()
	ctx, cancel := p.step()
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		p.fatalf("evaluate %s: %v", expr, err)
	}
	return s
}

func (p *pageTab) text(testID string) string {
	p.t.Helper()
	return p.evalString(`(document.querySelector('[data-testid="` + testID + `"]') || {}).textContent || ''`)
}

// OpenAccount taps "Get an account" and returns the new account's id.
func (p *pageTab) OpenAccount() string {
	p.t.Helper()
	p.do("tap open", chromedp.Click(testid("open-account")))
	p.waitJS("the account shows", `(() => {
		const id = document.querySelector('[data-testid="account-id"]');
		const bal = document.querySelector('[data-testid="balance"]');
		return id && id.textContent !== '' && bal.textContent.startsWith('¥') && !document.getElementById('account').hidden;
	})()`)
	return p.AccountID()
}

// AccountID is the id the page shows.
func (p *pageTab) AccountID() string { p.t.Helper(); return strings.TrimSpace(p.text("account-id")) }

// Balance is the balance the page shows, like "¥999,987.66".
func (p *pageTab) Balance() string { p.t.Helper(); return strings.TrimSpace(p.text("balance")) }

// SubmitTransfer fills the transfer form and taps Send, without waiting.
func (p *pageTab) SubmitTransfer(to, amount string) {
	p.t.Helper()
	p.do("fill and send the transfer",
		// Clear the fields (SetValue cannot set ""), and mark the result so
		// that TransferResult waits for this transfer's.
		chromedp.Evaluate[chromedp.Void](`for (const f of ['transfer-to', 'transfer-amount', 'transfer-result']) {
			const el = document.querySelector('[data-testid="' + f + '"]');
			if (f === 'transfer-result') el.dataset.kind = 'test-waiting'; else el.value = '';
		}`),
		chromedp.SendKeys(testid("transfer-to"), to),
		chromedp.SendKeys(testid("transfer-amount"), amount),
		chromedp.Click(testid("transfer-submit")),
	)
}

// TransferResult waits for the outcome of the last SubmitTransfer: kind is
// "ok", "error" or "unknown"; text is what the user reads.
func (p *pageTab) TransferResult() (kind, text string) {
	p.t.Helper()
	p.waitJS("the transfer ends", `['ok', 'error', 'unknown'].includes(document.querySelector('[data-testid="transfer-result"]').dataset.kind)`)
	return p.evalString(`document.querySelector('[data-testid="transfer-result"]').dataset.kind`), p.text("transfer-result")
}

// Transfer sends amount (yuan, like "12.34") to the account id and fails the
// test unless the page reports success.
func (p *pageTab) Transfer(to, amount string) string {
	p.t.Helper()
	p.SubmitTransfer(to, amount)
	kind, text := p.TransferResult()
	if kind != "ok" {
		p.fatalf("transfer of ¥%s to %s: %s: %s", amount, to, kind, text)
	}
	return text
}

// WaitBalance waits until the page shows the balance, like "¥999,987.66".
func (p *pageTab) WaitBalance(want string) {
	p.t.Helper()
	p.waitJS("the balance is "+want, `document.querySelector('[data-testid="balance"]').textContent.trim() === `+jsString(want))
}

// WaitBanner waits until the state banner shows state ("switching" or
// "switched"), or is hidden when state is "".
func (p *pageTab) WaitBanner(state string) {
	p.t.Helper()
	if state == "" {
		p.waitJS("the banner is hidden", `document.querySelector('[data-testid="state-banner"]').hidden`)
		return
	}
	p.waitJS("the banner shows "+state, `(() => {
		const b = document.querySelector('[data-testid="state-banner"]');
		return !b.hidden && b.dataset.state === `+jsString(state)+` && b.getBoundingClientRect().height > 0;
	})()`)
}

// WaitServedBy waits until the page says the account is served by dc in city.
func (p *pageTab) WaitServedBy(city, dc string) {
	p.t.Helper()
	p.waitJS("served by "+city+" "+dc, `(() => {
		const s = document.querySelector('[data-testid="served-by"]');
		return s.dataset.city === `+jsString(city)+` && s.dataset.dc === `+jsString(dc)+` && s.textContent.includes(`+jsString(dc)+`);
	})()`)
}

// Reload reloads the page and waits until it shows the account again.
func (p *pageTab) Reload() {
	p.t.Helper()
	p.do("reload", chromedp.Reload())
	p.waitJS("the page shows an account after reload", `!!window.fibercut && document.querySelector('[data-testid="account-id"]').textContent !== '' && document.querySelector('[data-testid="balance"]').textContent.startsWith('¥')`)
}

// Screenshot saves a PNG of the whole page.
func (p *pageTab) Screenshot(path string) {
	p.t.Helper()
	ctx, cancel := p.step()
	defer cancel()
	// The banner is sticky: scroll to the top so it sits above the header,
	// and let the transitions end.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`), chromedp.Sleep(400*time.Millisecond)); err != nil {
		p.fatalf("scroll to the top: %v", err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot: %s", path)
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// apiOpenAccount opens an account by calling the API directly.
func apiOpenAccount(t *testing.T, baseURL string) Account {
	t.Helper()
	res, err := http.Post(strings.TrimSuffix(baseURL, "/")+"/api/accounts", "application/json", nil)
	if err != nil {
		t.Fatalf("open account: %v", err)
	}
	defer res.Body.Close()
	var a Account
	if err := json.NewDecoder(res.Body).Decode(&a); err != nil || res.StatusCode/100 != 2 || a.ID == "" {
		t.Fatalf("open account: status %d, %+v, %v", res.StatusCode, a, err)
	}
	return a
}

// drivePage runs the audience's story against a server that serves the page
// at "/" and the API of api.go (the fake below, or a real gateway): it opens
// an account by tapping, opens a second one through the API as a recipient,
// sends ¥12.34 through the form, waits for the balance to read ¥999,987.66,
// and reloads to check that the account survives. It returns the tab, still
// open, and the recipient, for more steps.
//
// Against a real gateway, from a test in package demoapp:
//
//	gw := httptest.NewServer(gateway) // or the lab's gateway URL
//	p, peer := drivePage(t, gw.URL, 2*time.Minute)
//	p.Step = 60 * time.Second // a failover takes the gateway's RTO
//	// cut the fiber of hangzhou, then:
//	p.WaitBanner("switching")
//	p.WaitServedBy("shanghai", "sh-a")
//	p.Transfer(peer.ID, "1.00")
//
// timeout bounds the whole browser session.
func drivePage(t *testing.T, baseURL string, timeout time.Duration) (*pageTab, Account) {
	t.Helper()
	p := newPageTab(t, baseURL, timeout)
	id := p.OpenAccount()
	if got := p.Balance(); got != "¥1,000,000.00" {
		p.fatalf("new account %s shows %q, want ¥1,000,000.00", id, got)
	}
	peer := apiOpenAccount(t, baseURL)
	msg := p.Transfer(peer.ID, "12.34")
	if !strings.Contains(msg, "¥12.34") {
		p.fatalf("transfer result %q does not name the amount", msg)
	}
	p.WaitBalance("¥999,987.66")
	p.Reload()
	if got := p.AccountID(); got != id {
		p.fatalf("after reload the page shows account %q, want %q", got, id)
	}
	p.WaitBalance("¥999,987.66")
	return p, peer
}

// TestPageInChromium drives the page against the fake API: a transfer whose
// first answer is "unknown" (retried with the same key, money moves once), a
// failover from hangzhou to shanghai with the banner, a transfer across the
// outage, and an account that disappears.
func TestPageInChromium(t *testing.T) {
	requireChromium(t)
	f := newFakeAPI()
	srv := httptest.NewServer(f.handler())
	defer srv.Close()

	f.answerUnknown(1) // the form's first transfer is applied, but the page is told "unknown"
	p, peer := drivePage(t, srv.URL, 60*time.Second)
	id := p.AccountID()

	f.mu.Lock()
	unmarked := slices.Clone(f.unmarked)
	f.mu.Unlock()
	if len(unmarked) > 0 {
		t.Errorf("the page sent transfers without %s: %s, which the gateway's record would not tell from anyone's: %v", HeaderClient, ClientPage, unmarked)
	}
	keys := f.attemptKeys()
	if len(keys) < 2 || keys[0] != keys[len(keys)-1] {
		t.Fatalf("transfer attempts used keys %q: want at least 2 attempts with one key", keys)
	}
	if got := f.balance(peer.ID); got != InitialBalanceFen+1234 {
		t.Fatalf("recipient balance %d fen, want %d: money moved more than once", got, InitialBalanceFen+1234)
	}
	p.WaitServedBy("hangzhou", "hz-a")
	p.WaitBanner("")
	p.Screenshot(filepath.Join(os.TempDir(), "fibercut-page.png"))

	// The cut: every call fails with 503 "switching".
	f.setOutage(true)
	p.WaitBanner("switching")
	if txt := p.text("state-banner"); !strings.Contains(txt, "容灾切换中") || !strings.Contains(txt, "Switching datacenter") {
		t.Errorf("banner reads %q", txt)
	}
	// A transfer sent during the outage is retried, with one key, until
	// shanghai serves.
	before := len(f.attemptKeys())
	p.SubmitTransfer(peer.ID, "1")
	p.waitJS("the transfer is being retried", `document.querySelector('[data-testid="transfer-result"]').dataset.kind === 'pending'`)
	deadline := time.Now().Add(10 * time.Second)
	for f.rejectedCount() < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if f.rejectedCount() < 2 {
		t.Fatalf("the page sent %d transfer attempts during the outage, want a retry", f.rejectedCount())
	}
	p.Screenshot(filepath.Join(os.TempDir(), "fibercut-page-switching.png"))

	f.serve("sh-a", "shanghai", StateSwitched)
	f.setOutage(false)
	p.WaitServedBy("shanghai", "sh-a")
	if kind, text := p.TransferResult(); kind != "ok" || !strings.Contains(text, "sh-a") {
		t.Fatalf("transfer across the failover: %s: %q", kind, text)
	}
	if keys := f.attemptKeys()[before:]; len(keys) != 1 {
		t.Errorf("after the outage the page sent %d attempts (%q), want 1", len(keys), keys)
	}
	p.WaitBalance("¥999,986.66")
	p.WaitBanner("switched")
	if txt := p.text("state-banner"); !strings.Contains(txt, "上海 sh-a") || !strings.Contains(txt, "Shanghai sh-a") {
		t.Errorf("switched banner reads %q, want 上海 sh-a and Shanghai sh-a", txt)
	}
	p.waitJS("the failed-over badge shows", `!document.querySelector('[data-testid="switched-badge"]').hidden`)
	p.Screenshot(filepath.Join(os.TempDir(), "fibercut-page-switched.png"))
	if n := f.transferCount(); n != 2 {
		t.Errorf("the ledger has %d transfers, want 2", n)
	}
	if got := f.balance(id); got != InitialBalanceFen-1234-100 {
		t.Errorf("sender balance %d fen, want %d", got, InitialBalanceFen-1234-100)
	}

	// A new lab: the account is gone, the page offers a new one.
	f.forget(id)
	p.waitJS("the page offers a new account", `!document.querySelector('[data-testid="open-account"]').closest('section').hidden`)
	if s := p.evalString(`localStorage.getItem('fibercut.account') || ''`); s != "" {
		t.Errorf("the forgotten account is still stored: %s", s)
	}
	if msg := p.text("open-result"); !strings.Contains(msg, id) {
		t.Errorf("the page does not say that %s is gone: %q", id, msg)
	}
	if id2 := p.OpenAccount(); id2 == id || id2 == "" {
		t.Errorf("new account %q after %q", id2, id)
	}
}

// TestPageMoneyAndLanguage checks, in the browser, the page's money helpers
// (integer fen, never floats), its form validation and its language toggle.
func TestPageMoneyAndLanguage(t *testing.T) {
	requireChromium(t)
	f := newFakeAPI()
	srv := httptest.NewServer(f.handler())
	defer srv.Close()
	p := newPageTab(t, srv.URL, 60*time.Second)

	for in, want := range map[string]string{
		"0": "¥0.00", "5": "¥0.05", "100": "¥1.00", "123456": "¥1,234.56", "100000000": "¥1,000,000.00",
		"-1234": "-¥12.34", "9007199254740991": "¥90,071,992,547,409.91", "x": "—",
	} {
		if got := p.evalString(`fibercut.formatFen(` + jsString(in) + `)`); got != want {
			t.Errorf("formatFen(%s) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"12.34": "1234", "12": "1200", "12.3": "1230", "0.01": "1", ".5": "50", "5.": "500", " 7 ": "700",
		"1,000.50": "100050", "¥8": "800", "１２．３４": "1234", "0.1": "10", "0.29": "29", "1.005": "errAmountDecimals",
		"12.345": "errAmountDecimals", "0": "errAmountZero", "0.00": "errAmountZero", "-1": "errAmountNegative",
		"": "errAmountEmpty", "abc": "errAmountFormat", "1e3": "errAmountFormat", "12,34": "errAmountFormat",
		".": "errAmountFormat", "1234567890123": "errAmountLarge",
	} {
		got := p.evalString(`(r => r.error || String(r.fen))(fibercut.parseAmountFen(` + jsString(in) + `))`)
		if got != want {
			t.Errorf("parseAmountFen(%q) = %s, want %s", in, got, want)
		}
	}

	// The language follows the toggle and survives a reload.
	p.WaitBanner("")
	before := p.text("open-account")
	p.do("toggle the language", chromedp.Click(testid("lang-toggle")))
	p.waitJS("the language changes", `document.querySelector('[data-testid="open-account"]').textContent !== `+jsString(before))
	after := p.text("open-account")
	p.do("reload", chromedp.Reload())
	p.waitJS("the page script runs", `!!window.fibercut && document.querySelector('[data-testid="open-account"]').textContent !== ''`)
	if got := p.text("open-account"); got != after {
		t.Errorf("after reload the open button reads %q, want %q", got, after)
	}
	p.Screenshot(filepath.Join(os.TempDir(), "fibercut-page-welcome.png"))

	// The form refuses bad amounts without calling the API.
	p.OpenAccount()
	peer := apiOpenAccount(t, srv.URL)
	for _, amount := range []string{"12.345", "0", "-5"} {
		p.SubmitTransfer(peer.ID, amount)
		if kind, text := p.TransferResult(); kind != "error" {
			t.Errorf("amount %q: %s %q, want an error", amount, kind, text)
		}
	}
	if n := len(f.attemptKeys()); n != 0 {
		t.Errorf("the page sent %d transfers for bad amounts", n)
	}
	// An error from the API is shown as its message.
	p.SubmitTransfer("nobody", "1")
	if kind, text := p.TransferResult(); kind != "error" || !strings.Contains(text, `no account "nobody"`) {
		t.Errorf("unknown recipient: %s %q", kind, text)
	}
}
