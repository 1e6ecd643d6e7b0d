package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fibercut/fibercut/demoapp"
	"github.com/fibercut/fibercut/lab/labtest"
	"github.com/fibercut/fibercut/verify"
)

// runLoadCmd runs "load ARGS..." (not yet registered on the root) and
// returns stdout, stderr and the error.
func runLoadCmd(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := newLoadCmd()
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(t.Context())
	return stdout.String(), stderr.String(), err
}

// loadGateway answers opens and transfers with ok, keeping nothing but a
// revision counter.
func loadGateway(t *testing.T) *httptest.Server {
	var mu sync.Mutex
	var n int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/accounts", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		n++
		id := fmt.Sprintf("a%d", n)
		mu.Unlock()
		json.NewEncoder(w).Encode(demoapp.Account{ID: id, Token: "t" + id, HomeDC: "hz-a", BalanceFen: demoapp.InitialBalanceFen})
	})
	mux.HandleFunc("POST /api/accounts/{id}/transfers", func(w http.ResponseWriter, r *http.Request) {
		var req demoapp.TransferRequest
		json.NewDecoder(r.Body).Decode(&req)
		mu.Lock()
		n++
		rev := n
		mu.Unlock()
		json.NewEncoder(w).Encode(demoapp.TransferResponse{
			Transfer: demoapp.Transfer{Key: req.Key, From: r.PathValue("id"), To: req.To, AmountFen: req.AmountFen, Revision: rev},
			ServedBy: "hz-a", State: demoapp.StateServing,
		})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestLoadCmd(t *testing.T) {
	srv := loadGateway(t)
	hist := filepath.Join(t.TempDir(), "h.jsonl")
	out, _, err := runLoadCmd(t, "--url", srv.URL, "--users", "4", "--rate", "100", "--for", "300ms",
		"--history", hist, "--seed", "7", "--name", "drill")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"history    " + hist + ": ", "stopped    duration", "accounts   4 opened", "seed       7\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	f, err := os.Open(hist)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, ops, err := verify.ReadHistory(f)
	if err != nil {
		t.Fatal(err)
	}
	if h.Lab != "drill" || h.Target != srv.URL || h.Users != 4 || h.Rate != 100 || len(ops) < 4+10 {
		t.Errorf("header %+v, %d ops", h, len(ops))
	}
}

func TestLoadCmdErrors(t *testing.T) {
	dir := t.TempDir()
	hist := filepath.Join(dir, "h.jsonl")
	for _, c := range []struct {
		args []string
		err  string
	}{
		{[]string{"--url", "http://127.0.0.1:1", "--users", "1", "--history", hist}, "need at least 2"},
		{[]string{"--url", "10.0.0.1:8080", "--history", hist}, "want http://host:port"},
		{[]string{"--url", "http://127.0.0.1:1", "--rate", "0", "--history", hist}, "positive number of transfers"},
	} {
		if _, _, err := runLoadCmd(t, c.args...); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("load %v: %v; want an error containing %q", c.args, err, c.err)
		}
	}
	if _, err := os.Stat(hist); !os.IsNotExist(err) {
		t.Errorf("a rejected command created the history: %v", err)
	}
}

// TestLoadFindsTheLabsGateway checks that without --url the load command
// looks up the lab's gateway, and says so when the lab does not exist.
func TestLoadFindsTheLabsGateway(t *testing.T) {
	labtest.RequireDocker(t)
	hist := filepath.Join(t.TempDir(), "h.jsonl")
	root := newRootCmd(io.Discard, io.Discard)
	root.SetArgs([]string{"load", "--name", "tnosuchlab", "--history", hist})
	err := root.ExecuteContext(context.Background())
	if err == nil || !strings.Contains(err.Error(), `no such lab "tnosuchlab"`) || !strings.Contains(err.Error(), "lab up") {
		t.Fatalf("load without --url for a lab that does not exist = %v; want it to say so and how to start it", err)
	}
	if _, serr := os.Stat(hist); serr == nil {
		t.Error("the history file was created although the load could not start")
	}
}
