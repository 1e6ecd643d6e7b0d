package kube_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fibercut/fibercut/demoapp"
	"github.com/fibercut/fibercut/faults"
	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/lab/kube"
	"github.com/fibercut/fibercut/lab/kube/kubetest"
	"github.com/fibercut/fibercut/lab/labtest"
	"github.com/fibercut/fibercut/nodeapi"
)

// health asks a DC's node at ip for its health, for at most two seconds.
func health(ip string) (nodeapi.Health, error) {
	var h nodeapi.Health
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + ip + ":7100" + nodeapi.HealthPath)
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	return h, json.NewDecoder(resp.Body).Decode(&h)
}

// gatewayAPI talks to the lab's gateway pod.
type gatewayAPI struct {
	t    *testing.T
	base string
	c    http.Client
}

func (g *gatewayAPI) do(method, path, token string, body, out any) int {
	g.t.Helper()
	var rd bytes.Buffer
	if body != nil {
		json.NewEncoder(&rd).Encode(body)
	}
	req, _ := http.NewRequest(method, g.base+path, &rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := g.c.Do(req)
	if err != nil {
		g.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// transfer sends a transfer, again with the same key while the gateway
// answers 503 (the ledger electing, a DC being re-homed), at most 120 times (30 s).
func (g *gatewayAPI) transfer(from demoapp.Account, to string, fen int64, key string) {
	g.t.Helper()
	for range 120 {
		st := g.do("POST", "/api/accounts/"+from.ID+"/transfers", from.Token, demoapp.TransferRequest{To: to, AmountFen: fen, Key: key}, nil)
		if st == http.StatusOK {
			return
		}
		if st != http.StatusServiceUnavailable {
			g.t.Fatalf("transfer %s: %d", key, st)
		}
		time.Sleep(250 * time.Millisecond)
	}
	g.t.Fatalf("transfer %s: still 503 after 120 tries", key)
}

func (g *gatewayAPI) balance(a demoapp.Account) int64 {
	g.t.Helper()
	var got demoapp.Account
	if st := g.do("GET", "/api/accounts/"+a.ID, a.Token, nil, &got); st != http.StatusOK {
		g.t.Fatalf("read %s: %d", a.ID, st)
	}
	return got.BalanceFen
}

// waitLedger waits until every running DC's member says the ledger is ok,
// with one leader, and returns the DCs.
func waitLedger(t *testing.T, c *kube.Cluster, h *kubetest.Harness, running int) []kube.DC {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var last string
	for time.Now().Before(deadline) {
		dcs, err := c.Inspect(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		leaders, ok := map[string]bool{}, 0
		for _, d := range dcs {
			if d.IP == "" || d.Phase != string(corev1.PodRunning) {
				continue
			}
			if hl, err := health(d.IP); err == nil && hl.Ledger == nodeapi.LedgerOK {
				ok++
				leaders[hl.Leader] = true
			}
		}
		if ok == running && len(leaders) == 1 {
			return dcs
		}
		last = fmt.Sprintf("%d of %d members ok, leaders %v", ok, running, leaders)
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("the ledger is not healthy after 2 minutes: %s\n%s", last, h.Logs())
	return nil
}

// TestLabOnHarness runs a lab on a real Kubernetes: five kubelet nodes in
// three regions (labs/kube/cluster). Each DC runs on its own node, in its
// city's region and its own zone; the five members form one ledger by
// their names; money moves through the gateway; a DC powered off (scaled
// to 0) leaves the other four committing, and powered on again it rejoins
// by name, whatever its pod's new address; Down leaves nothing.
func TestLabOnHarness(t *testing.T) {
	h := kubetest.StartHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	o, err := kube.Build(kube.Options{Name: "kh", PullPolicy: corev1.PullNever, StorageClass: kubetest.StorageClass, ClientLimits: "off"})
	if err != nil {
		t.Fatal(err)
	}
	c := kube.NewCluster(h.Client, "kh")
	if err := c.Apply(ctx, o); err != nil {
		t.Fatal(err)
	}
	dcs := waitLedger(t, c, h, 5)
	nodes := map[string]bool{}
	for _, d := range dcs {
		n, err := h.Client.CoreV1().Nodes().Get(ctx, d.Node, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("dc %s on node %q: %v", d.ID, d.Node, err)
		}
		if n.Labels[kube.NodeLabelRegion] != d.City || n.Labels[kube.NodeLabelZone] != d.ID {
			t.Errorf("dc %s (city %s) runs on node %s of region %q, zone %q", d.ID, d.City, d.Node, n.Labels[kube.NodeLabelRegion], n.Labels[kube.NodeLabelZone])
		}
		nodes[d.Node] = true
	}
	if len(nodes) != 5 {
		t.Errorf("five DCs on %d nodes", len(nodes))
	}

	var gw kube.Gateway
	labtest.Eventually(t, 2*time.Minute, "the gateway ready", func() bool { gw, _ = c.Gateway(ctx); return gw.Ready && gw.IP != "" })
	api := &gatewayAPI{t: t, base: "http://" + gw.IP + ":8080", c: http.Client{Timeout: 10 * time.Second}}
	var users []demoapp.Account
	for range 6 {
		var a demoapp.Account
		if st := api.do("POST", "/api/accounts", "", nil, &a); st != http.StatusCreated {
			t.Fatalf("open an account: %d", st)
		}
		users = append(users, a)
	}
	ring := func(round string) {
		for i, u := range users {
			api.transfer(u, users[(i+1)%len(users)].ID, 100, fmt.Sprintf("%s-%d", round, i))
		}
		for _, u := range users {
			if got := api.balance(u); got != demoapp.InitialBalanceFen {
				t.Errorf("after ring %s, %s (homed in %s) holds %d fen, want %d", round, u.ID, u.HomeDC, got, demoapp.InitialBalanceFen)
			}
		}
	}
	ring("all")

	// Isolating hangzhou cuts exactly the links between it and the other
	// cities, as probed from inside each pod's network namespace, and the
	// three other DCs keep committing; the heal restores them.
	store := faults.NewStore(filepath.Join(t.TempDir(), "faults.json"))
	in, err := faults.NewKubeInjector(ctx, c, h.Kubeconfig, faults.ViaHost, store)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := faults.ParseSpec("isolate city hangzhou")
	if err != nil {
		t.Fatal(err)
	}
	spec.For = 2 * time.Minute
	rec, err := in.Apply(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	matrix(t, ctx, c, func(from, to string) lab.Reach {
		if (from[:2] == "hz") != (to[:2] == "hz") {
			return lab.ReachCut
		}
		return lab.ReachOK
	})
	waitLedger(t, c, h, 3)
	ring("hangzhou-isolated")
	if err := in.Heal(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	matrix(t, ctx, c, func(string, string) lab.Reach { return lab.ReachOK })
	waitLedger(t, c, h, 5)
	// A delay by NFQUEUE: its holder, on this host, enters sz-a's pod
	// namespace. A connect to sz-a takes at least the delay (less the
	// 2 ms a holder may release a packet early); the heal ends the holder.
	const delay = 50 * time.Millisecond
	spec, err = faults.ParseSpec("delay 50ms dc sz-a")
	if err != nil {
		t.Fatal(err)
	}
	spec.For, spec.Engine = time.Minute, faults.EngineNFQueue
	drec, err := in.Apply(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if drec.Holder == nil {
		t.Fatalf("delay record %+v has no holder", drec)
	}
	l, err := c.Lab(ctx, kube.OnHost)
	if err != nil {
		t.Fatal(err)
	}
	m, err := l.Matrix(ctx, lab.MatrixOptions{Tries: 5})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := m.Get("hz-a", "sz-a")
	t.Logf("hz-a → sz-a with sz-a delayed by %s: %s", delay, p.RTT)
	if p.Reach != lab.ReachOK || p.RTT < delay-2*time.Millisecond {
		t.Errorf("hz-a → sz-a with sz-a delayed: %s in %s, want through in at least %s", p.Reach, p.RTT, delay)
	}
	if err := in.Heal(ctx, drec.ID); err != nil {
		t.Fatal(err)
	}
	labtest.Eventually(t, time.Minute, "the delay's holder gone after the heal", func() bool { return !drec.Holder.Alive() })

	// A pause freezes the pod's cgroup: the inventory says paused, four
	// members commit without it, and the heal thaws it.
	spec, err = faults.ParseSpec("pause dc sz-a")
	if err != nil {
		t.Fatal(err)
	}
	spec.For = 10 * time.Minute // healed below, long before
	prec, err := in.Apply(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	state := func(dc string) string {
		t.Helper()
		l, err := c.Lab(ctx, kube.OnHost)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := l.DC(dc)
		return d.State
	}
	if got := state("sz-a"); got != "paused" {
		t.Errorf("sz-a is %q after a pause, want paused", got)
	}
	waitLedger(t, c, h, 4)
	if err := in.Heal(ctx, prec.ID); err != nil {
		t.Fatal(err)
	}
	if got := state("sz-a"); got != "running" {
		t.Errorf("sz-a is %q after the pause healed, want running", got)
	}
	waitLedger(t, c, h, 5)

	// The baseline WAN latency, held from this host as on Docker: a
	// connect to Shenzhen takes at least 1.5 × its 15 ms one way (a
	// holder may release a packet a quarter early), one within Hangzhou
	// 1.5 × 1 ms. Lower bounds only: a busy machine only adds.
	w, err := in.SetWAN(ctx, "on")
	if err != nil {
		t.Fatal(err)
	}
	if !w.Held() {
		t.Fatalf("the baseline %+v has no live holder", w)
	}
	slow := func(from, to string, min time.Duration) (bool, string) {
		l, err := c.Lab(ctx, kube.OnHost)
		if err != nil {
			return false, err.Error()
		}
		m, err := l.Matrix(ctx, lab.MatrixOptions{Tries: 5})
		if err != nil {
			return false, err.Error()
		}
		p, _ := m.Get(from, to)
		return p.Reach == lab.ReachOK && p.RTT >= min, fmt.Sprintf("%s → %s: %s in %s, want through in at least %s", from, to, p.Reach, p.RTT, min)
	}
	wan := func(what string) {
		t.Helper()
		for _, link := range []struct {
			from, to string
			min      time.Duration
		}{{"hz-a", "sz-a", 22500 * time.Microsecond}, {"sz-a", "hz-a", 22500 * time.Microsecond}, {"hz-a", "hz-b", 1500 * time.Microsecond}} {
			// The holder arms a new pod within a second or so.
			ok, why := slow(link.from, link.to, link.min)
			for deadline := time.Now().Add(30 * time.Second); !ok && time.Now().Before(deadline); ok, why = slow(link.from, link.to, link.min) {
				time.Sleep(time.Second)
			}
			if !ok {
				t.Errorf("%s: %s", what, why)
			}
			t.Logf("%s: %s", what, why)
		}
	}
	wan("the WAN latency on")

	before := dcs[0] // hz-a
	if err := c.PowerOff(ctx, before.ID); err != nil {
		t.Fatal(err)
	}
	waitLedger(t, c, h, 4)
	ring("without-" + before.ID)
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer pcancel()
	if err := c.PowerOn(pctx, before.ID); err != nil {
		t.Fatal(err)
	}
	dcs = waitLedger(t, c, h, 5)
	t.Logf("%s: pod address %s before the power-off, %s after", before.ID, before.IP, dcs[0].IP)
	if before.IP == dcs[0].IP {
		t.Log("the new pod has the old address: this run does not exercise the WAN holder's arming for a new address")
	}
	ring("again")
	// The holder follows the pods: hz-a's new pod is delayed, and so are
	// its packets at its peers, whatever its new address.
	wan("hz-a powered on again")
	l, err = c.Lab(ctx, kube.OnHost)
	if err != nil {
		t.Fatal(err)
	}
	if had, err := faults.StopWAN(ctx, store, l); err != nil || !had {
		t.Errorf("StopWAN = %v, %v; want the baseline stopped", had, err)
	}
	if w.Holder.Alive() {
		t.Errorf("the WAN holder, process %d, outlived StopWAN", w.Holder.PID)
	}

	removed, err := c.Down(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) < 19 {
		t.Errorf("Down removed %v", removed)
	}
}

// matrix probes every pair of DCs from inside the senders' pod network
// namespaces and checks each against want.
func matrix(t *testing.T, ctx context.Context, c *kube.Cluster, want func(from, to string) lab.Reach) {
	t.Helper()
	l, err := c.Lab(ctx, kube.OnHost)
	if err != nil {
		t.Fatal(err)
	}
	m, err := l.Matrix(ctx, lab.MatrixOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Probes {
		if w := want(p.From, p.To); p.Reach != w {
			t.Errorf("%s → %s: %s, want %s (%s)", p.From, p.To, p.Reach, w, p.Err)
		}
	}
}
