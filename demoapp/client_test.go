package demoapp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(HeaderClient) != ClientPage {
			writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: "no client header"})
			return
		}
		switch {
		case r.URL.Path == "/api/accounts":
			writeJSON(w, http.StatusCreated, Account{ID: "a1", Token: "tok"})
		case r.Header.Get("Authorization") != "Bearer tok":
			writeJSON(w, http.StatusUnauthorized, ErrorResponse{Error: "missing token"})
		default:
			writeJSON(w, http.StatusConflict, ErrorResponse{Error: "insufficient funds"})
		}
	}))
	defer srv.Close()
	c := Client{Base: srv.URL, As: ClientPage}
	ctx := context.Background()
	a, st, err := c.Open(ctx)
	if err != nil || st != http.StatusCreated || a.ID != "a1" {
		t.Fatalf("open: %+v, %d, %v", a, st, err)
	}
	_, st, err = c.Transfer(ctx, a, TransferRequest{To: "b", AmountFen: 1, Key: "k"})
	if st != http.StatusConflict || err == nil || !strings.Contains(err.Error(), "insufficient funds") {
		t.Errorf("transfer: %d, %v; want 409 naming insufficient funds", st, err)
	}
	if _, st, err = (Client{Base: srv.URL}).Open(ctx); st != http.StatusBadRequest || err == nil {
		t.Errorf("without As: %d, %v; want the server's 400", st, err)
	}
}
