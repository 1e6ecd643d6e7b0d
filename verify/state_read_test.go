package verify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// freeURL returns an http URL on 127.0.0.1 with a port that was free a
// moment ago.
func freeURL(t *testing.T) url.URL {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return url.URL{Scheme: "http", Host: l.Addr().String()}
}

// startEtcd runs a one-member etcd in this process and returns its client
// URL and a client.
func startEtcd(t *testing.T) (string, *clientv3.Client) {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Name = "dc-0"
	cfg.Dir = t.TempDir()
	cu, pu := freeURL(t), freeURL(t)
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.ListenMetricsUrls = nil
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.TickMs, cfg.ElectionMs = 10, 100
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		t.Fatalf("etcd: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("etcd not ready after 20s")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{cu.String()}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cu.String(), cli
}

func put(t *testing.T, cli *clientv3.Client, k, v string) int64 {
	t.Helper()
	resp, err := cli.Put(context.Background(), k, v)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

func TestReadFinalState(t *testing.T) {
	endpoint, cli := startEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	oldPage, oldTimeout := readPage, hashCallTimeout
	readPage = 2 // several pages per prefix
	hashCallTimeout = time.Second
	t.Cleanup(func() { readPage, hashCallTimeout = oldPage, oldTimeout })

	for _, id := range []string{"bbb", "aaa", "ccc"} {
		put(t, cli, "acct/"+id, `{"id":"`+id+`","name":"游客 Guest","home_dc":"dc-0"}`)
	}
	put(t, cli, "bal/aaa", "99999000")
	put(t, cli, "bal/bbb", "100000750")
	put(t, cli, "bal/ccc", "100000250")
	// As the demo app stores transfers: the revision is 0 in the value.
	r1 := put(t, cli, "xfer/aaa/r1-u0-1", `{"key":"r1-u0-1","from":"aaa","to":"bbb","amount_fen":1000,"committed_by":"dc-0","revision":0}`)
	r2 := put(t, cli, "xfer/bbb/r1/u1", `{"key":"r1/u1","to":"ccc","amount_fen":250,"committed_by":"dc-0"}`)
	put(t, cli, "other/key", "ignored")

	members := map[string]string{"dc-0": endpoint, "dc-9": "http://127.0.0.1:1"}
	st, err := ReadFinalState(ctx, cli, members, 100_000_000)
	if err != nil {
		t.Fatal(err)
	}
	want := FinalState{
		Revision:          r2 + 1,
		InitialBalanceFen: 100_000_000,
		Accounts:          []string{"aaa", "bbb", "ccc"},
		Balances:          map[string]int64{"aaa": 99999000, "bbb": 100000750, "ccc": 100000250},
		Transfers: map[string]StoredTransfer{
			"aaa/r1-u0-1": {From: "aaa", To: "bbb", AmountFen: 1000, Revision: r1, CommittedBy: "dc-0"},
			"bbb/r1/u1":   {From: "bbb", To: "ccc", AmountFen: 250, Revision: r2, CommittedBy: "dc-0"},
		},
	}
	members0 := st.Members
	st.Members = nil
	if !reflect.DeepEqual(st, want) {
		t.Errorf("state\n%+v\nwant\n%+v", st, want)
	}
	if len(members0) != 2 || members0[0].DC != "dc-0" || members0[1].DC != "dc-9" {
		t.Fatalf("members %+v", members0)
	}
	if m := members0[0]; m.Err != "" || m.Hash == 0 {
		t.Errorf("member dc-0: %+v", m)
	}
	t.Logf("unreachable member: %s", members0[1].Err)
	if m := members0[1]; m.Err == "" || !strings.Contains(m.Err, "127.0.0.1:1") {
		t.Errorf("unreachable member: %+v, want an error naming it", m)
	}
	direct, err := cli.HashKV(ctx, endpoint, st.Revision)
	if err != nil || direct.Hash != members0[0].Hash {
		t.Errorf("HashKV at %d = %v, %v; ReadFinalState said %d", st.Revision, direct, err, members0[0].Hash)
	}

	// A later write: a new revision and another hash.
	put(t, cli, "bal/aaa", "99998999")
	st2, err := ReadFinalState(ctx, cli, map[string]string{"dc-0": endpoint}, 100_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if st2.Revision != st.Revision+1 || st2.Balances["aaa"] != 99998999 || st2.Members[0].Hash == members0[0].Hash {
		t.Errorf("after a write: revision %d, aaa %d, hash %d", st2.Revision, st2.Balances["aaa"], st2.Members[0].Hash)
	}

	// A balance that does not parse.
	put(t, cli, "bal/ccc", "12.5")
	if _, err := ReadFinalState(ctx, cli, nil, 100_000_000); !errors.Is(err, ErrCorruptLedger) || !strings.Contains(err.Error(), "bal/ccc") {
		t.Errorf("corrupt balance: %v, want ErrCorruptLedger naming bal/ccc", err)
	}
}

func TestSaveLoadState(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	st := FinalState{
		Revision: 9, InitialBalanceFen: 100_000_000, Accounts: []string{"a", "b"},
		Balances:  map[string]int64{"a": 99_999_000, "b": 100_001_000},
		Transfers: map[string]StoredTransfer{"a/k": {From: "a", To: "b", AmountFen: 1000, Revision: 8, CommittedBy: "hz-a"}},
		Members:   []MemberHash{{DC: "hz-a", Hash: 7}, {DC: "sz-a", Err: "context deadline exceeded"}},
	}
	if err := SaveState(path, st); err != nil {
		t.Fatal(err)
	}
	got, err := LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, st) {
		t.Errorf("loaded %+v, want %+v", got, st)
	}
	// Saving again replaces the file and leaves no temporary file behind.
	st.Revision = 10
	if err := SaveState(path, st); err != nil {
		t.Fatal(err)
	}
	if got, _ := LoadState(path); got.Revision != 10 {
		t.Errorf("revision after a second save: %d", got.Revision)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d files, want 1", len(entries))
	}
	if err := SaveState(filepath.Join(dir, "no", "such", "dir.json"), st); err == nil {
		t.Error("saving into a missing directory succeeded")
	}

	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tt := range []struct{ name, path, err string }{
		{"missing", filepath.Join(dir, "nope.json"), "nope.json: no such file"},
		{"empty", write("empty.json", ""), "empty.json: empty file"},
		{"garbled", write("garbled.json", `{"revision": 3,`), "garbled.json: unexpected EOF"},
		{"not JSON", write("text.json", "revision 3\n"), "text.json: not JSON at byte 1"},
		{"a history", "testdata/history.jsonl", "history.jsonl: data after the JSON object (is it a history?)"},
		{"no initial balance", write("zero.json", `{"revision": 3}`), "zero.json: initial_balance_fen is 0"},
		{"wrong type", write("type.json", `{"revision": "3"}`), "type.json: json: cannot unmarshal"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadState(tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("LoadState: %v, want an error containing %q", err, tt.err)
			}
		})
	}
}

// TestGoldenFiles checks the saved history in testdata against a state
// that holds everything and one that lost an acknowledged transfer.
func TestGoldenFiles(t *testing.T) {
	f, err := os.Open("testdata/history.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, ops, err := ReadHistory(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		state string
		fails []string
		want  Result // counts only
	}{
		{"testdata/state-ok.json", nil, Result{Acknowledged: 2, Failed: 1, UnknownNotFound: 1}},
		{"testdata/state-lost.json", []string{CheckAckedPresent}, Result{Acknowledged: 2, Lost: 1, Failed: 1, UnknownNotFound: 1}},
	} {
		t.Run(filepath.Base(tt.state), func(t *testing.T) {
			st, err := LoadState(tt.state)
			if err != nil {
				t.Fatal(err)
			}
			res := CheckHistory(h, ops, st)
			var fails []string
			for _, c := range res.Checks {
				if !c.OK {
					fails = append(fails, c.Name)
				}
			}
			if fmt.Sprint(fails) != fmt.Sprint(tt.fails) {
				t.Errorf("failed %q, want %q (%+v)", fails, tt.fails, res.Checks)
			}
			got := res
			got.Valid, got.Checks = false, nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("counts %+v, want %+v", got, tt.want)
			}
		})
	}
}
