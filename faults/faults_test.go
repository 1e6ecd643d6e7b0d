package faults_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/fibercut/fibercut/faults"
	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/lab/labtest"
	"github.com/fibercut/fibercut/nodeapi"
	"github.com/fibercut/fibercut/topology"
)

// fixture is a running default lab with an injector whose records live in
// the test's temporary directory.
type fixture struct {
	t     testing.TB
	cli   client.APIClient
	lab   *lab.Lab
	in    *faults.Injector
	store *faults.Store
	base  *lab.Matrix
}

func newFixture(t testing.TB, topo string) *fixture {
	t.Helper()
	cli := labtest.RequireDocker(t)
	labtest.RequireRoot(t)
	l := labtest.Up(t, cli, topo)
	f := &fixture{t: t, cli: cli, lab: l, store: faults.NewStore(filepath.Join(t.TempDir(), l.Name+".faults.json"))}
	f.in = faults.NewInjector(cli, l, f.store)
	f.base = f.matrix(lab.MatrixOptions{})
	for _, p := range append(slices.Clone(f.base.Probes), f.base.Client...) {
		if p.Reach != lab.ReachOK {
			t.Fatalf("fresh lab: %s→%s is %s: %s", p.From, p.To, p.Reach, p.Err)
		}
	}
	return f
}

func (f *fixture) matrix(opts lab.MatrixOptions) *lab.Matrix {
	f.t.Helper()
	l, err := lab.Inspect(context.Background(), f.cli, f.lab.Name)
	if err != nil {
		f.t.Fatal(err)
	}
	m, err := l.Matrix(context.Background(), opts)
	if err != nil {
		f.t.Fatal(err)
	}
	return m
}

func (f *fixture) apply(spec faults.Spec) *faults.Record {
	f.t.Helper()
	rec, err := f.in.Apply(context.Background(), spec)
	if err != nil {
		f.t.Fatalf("apply %s: %v", spec, err)
	}
	return rec
}

// expectDiff checks that the matrix differs from the baseline in exactly
// the given pairs, written "from→to: ok → reach".
func (f *fixture) expectDiff(what string, m *lab.Matrix, want []string) {
	f.t.Helper()
	got := f.base.Diff(m)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		f.t.Errorf("%s: matrix changed in\n  %s\nwant\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func (f *fixture) healAndExpectBaseline(id string) {
	f.t.Helper()
	if err := f.in.Heal(context.Background(), id); err != nil {
		f.t.Fatalf("heal %s: %v", id, err)
	}
	f.expectDiff("after heal "+id, f.matrix(lab.MatrixOptions{}), nil)
}

func cuts(pairs ...string) []string {
	var out []string
	for _, p := range pairs {
		from, to, _ := strings.Cut(p, ">")
		out = append(out, from+"→"+to+": ok → cut")
	}
	return out
}

// allPairs lists from>to for every from in as and to in bs, from != to.
func allPairs(as, bs []string) []string {
	var out []string
	for _, a := range as {
		for _, b := range bs {
			if a != b {
				out = append(out, a+">"+b)
			}
		}
	}
	return out
}

var (
	hz  = []string{"hz-a", "hz-b"}
	out = []string{"sh-a", "sh-b", "sz-a"}
)

// TestFaultsChangeMatrixExactly applies each link fault to a real lab and
// checks that the reachability matrix changes exactly where intended and
// nowhere else, and that healing restores it.
func TestFaultsChangeMatrixExactly(t *testing.T) {
	f := newFixture(t, topology.Default)

	t.Run("cut", func(t *testing.T) {
		rec := f.apply(faults.Spec{Kind: faults.KindCut, A: "hz-a", B: "sh-b", For: time.Minute})
		f.expectDiff("cut hz-a sh-b", f.matrix(lab.MatrixOptions{}), cuts("hz-a>sh-b", "sh-b>hz-a"))
		f.healAndExpectBaseline(rec.ID)
	})

	t.Run("isolate city", func(t *testing.T) {
		rec := f.apply(faults.Spec{Kind: faults.KindIsolate, City: "hangzhou", For: time.Minute})
		want := cuts(append(allPairs(hz, out), allPairs(out, hz)...)...)
		want = append(want, cuts("client>hz-a", "client>hz-b")...)
		f.expectDiff("isolate hangzhou", f.matrix(lab.MatrixOptions{}), want)
		f.healAndExpectBaseline(rec.ID)
	})

	t.Run("isolate dc", func(t *testing.T) {
		rec := f.apply(faults.Spec{Kind: faults.KindIsolate, DC: "sz-a", For: time.Minute})
		others := []string{"hz-a", "hz-b", "sh-a", "sh-b"}
		want := cuts(append(allPairs([]string{"sz-a"}, others), allPairs(others, []string{"sz-a"})...)...)
		want = append(want, cuts("client>sz-a")...)
		f.expectDiff("isolate sz-a", f.matrix(lab.MatrixOptions{}), want)
		f.healAndExpectBaseline(rec.ID)
	})

	t.Run("partition", func(t *testing.T) {
		groups, err := faults.ParseGroups("hz-a,hz-b | sh-a,sh-b,sz-a")
		if err != nil {
			t.Fatal(err)
		}
		rec := f.apply(faults.Spec{Kind: faults.KindPartition, Groups: groups, For: time.Minute})
		f.expectDiff("partition", f.matrix(lab.MatrixOptions{}), cuts(append(allPairs(hz, out), allPairs(out, hz)...)...))
		f.healAndExpectBaseline(rec.ID)
	})

	t.Run("partition one way", func(t *testing.T) {
		groups, _ := faults.ParseGroups("sz-a | hz-a,hz-b,sh-a,sh-b")
		rec := f.apply(faults.Spec{Kind: faults.KindPartition, Groups: groups, OneWay: true, For: time.Minute})
		// sz-a's packets never reach the others: its connects fail. The
		// others' SYNs reach sz-a but its SYN-ACKs are dropped too, so
		// their connects fail as well: one-way loss breaks TCP both ways.
		// What shows one-way is the kernel state: only sz-a's own
		// outgoing set, and the others' incoming sets, are filled.
		rest := []string{"hz-a", "hz-b", "sh-a", "sh-b"}
		want := cuts(append(allPairs([]string{"sz-a"}, rest), allPairs(rest, []string{"sz-a"})...)...)
		f.expectDiff("one-way partition", f.matrix(lab.MatrixOptions{}), want)
		sets := map[string][]string{}
		for _, ch := range rec.NFT {
			sets[ch.DC] = append(sets[ch.DC], ch.Set)
		}
		if !slices.Equal(sets["sz-a"], []string{"drop_out"}) || !slices.Equal(sets["hz-a"], []string{"drop_in"}) {
			t.Errorf("one-way partition changed sets %v; want drop_out in sz-a only and drop_in in the others", sets)
		}
		f.healAndExpectBaseline(rec.ID)
	})

	t.Run("ring", func(t *testing.T) {
		rec := f.apply(faults.Spec{Kind: faults.KindPartition, Ring: true, For: time.Minute})
		var want []string
		for _, fl := range rec.Spec.Grudge(f.lab.Topology) {
			want = append(want, cuts(fl.From+">"+fl.To)...)
		}
		if len(want) != 10 {
			t.Fatalf("ring blocks %d flows, want 10", len(want))
		}
		f.expectDiff("ring", f.matrix(lab.MatrixOptions{}), want)
		f.healAndExpectBaseline(rec.ID)
	})

	t.Run("loss 100 on a link", func(t *testing.T) {
		rec := f.apply(faults.Spec{Kind: faults.KindLoss, Percent: 100, A: "sh-a", B: "sz-a", For: time.Minute})
		f.expectDiff("loss 100%", f.matrix(lab.MatrixOptions{}), cuts("sh-a>sz-a", "sz-a>sh-a"))
		f.healAndExpectBaseline(rec.ID)
	})

	t.Run("loss 50 on a dc", func(t *testing.T) {
		rec := f.apply(faults.Spec{Kind: faults.KindLoss, Percent: 50, DC: "hz-b", For: time.Minute})
		// A connect needs the SYN and the SYN-ACK through: 1/4 succeed.
		// With 40 tries, all failing has odds 0.75^40 ≈ 1e-5 and all
		// succeeding 0.25^40: every pair touching hz-b is lossy.
		m := f.matrix(lab.MatrixOptions{Tries: 40, Timeout: 100 * time.Millisecond})
		for _, p := range append(slices.Clone(m.Probes), m.Client...) {
			touches := p.From == "hz-b" || p.To == "hz-b"
			if touches && p.Reach != lab.ReachLossy {
				t.Errorf("%s→%s: %s (%d/%d), want lossy", p.From, p.To, p.Reach, p.OK, p.Tries)
			}
			if !touches && p.Reach != lab.ReachOK {
				t.Errorf("%s→%s: %s, want ok", p.From, p.To, p.Reach)
			}
		}
		f.healAndExpectBaseline(rec.ID)
	})

	t.Run("overlapping faults", func(t *testing.T) {
		// Healing one fault keeps what another fault in force also needs.
		a := f.apply(faults.Spec{Kind: faults.KindCut, A: "hz-a", B: "sh-a", For: time.Minute})
		groups, _ := faults.ParseGroups("hz-a,hz-b | sh-a,sh-b,sz-a")
		b := f.apply(faults.Spec{Kind: faults.KindPartition, Groups: groups, For: time.Minute})
		if err := f.in.Heal(context.Background(), b.ID); err != nil {
			t.Fatal(err)
		}
		f.expectDiff("cut left after healing the partition", f.matrix(lab.MatrixOptions{}), cuts("hz-a>sh-a", "sh-a>hz-a"))
		f.healAndExpectBaseline(a.ID)
	})
}

// TestBandwidthAndDelay checks the qdisc faults: tbf is put on the WAN
// interface only and removed on heal; delay fails before changing anything
// when the kernel has no netem.
func TestBandwidthAndDelay(t *testing.T) {
	f := newFixture(t, "two-city-three-dc")
	rec := f.apply(faults.Spec{Kind: faults.KindBandwidth, RateBits: 8_000_000, DC: "sh-a", For: time.Minute})
	if got := tbfRate(t, f, "sh-a"); got != 1_000_000 {
		t.Fatalf("tbf rate on sh-a's WAN = %d bytes/s, want 1000000", got)
	}
	if rec.KernelExpires() {
		t.Error("a tbf fault was recorded as expiring in the kernel")
	}
	if err := f.in.Heal(context.Background(), rec.ID); err != nil {
		t.Fatal(err)
	}
	if got := tbfRate(t, f, "sh-a"); got != 0 {
		t.Fatalf("tbf still on sh-a after heal (rate %d)", got)
	}

	_, err := f.in.Apply(context.Background(), faults.Spec{Kind: faults.KindDelay, Delay: 50 * time.Millisecond, City: "hangzhou", For: time.Minute, Engine: faults.EngineNetem})
	if netemBuilt() {
		if err != nil {
			t.Fatalf("delay on a kernel with netem: %v", err)
		}
		return
	}
	if !errors.Is(err, faults.ErrNoNetem) || !strings.Contains(err.Error(), "CONFIG_NET_SCH_NETEM") || !strings.Contains(err.Error(), "bandwidth") {
		t.Fatalf("delay by netem without netem = %v; want ErrNoNetem naming CONFIG_NET_SCH_NETEM and the faults that work", err)
	}
	for _, dc := range []string{"hz-a", "hz-b"} {
		if got := tbfRate(t, f, dc); got != 0 {
			t.Errorf("%s has a qdisc after a failed delay", dc)
		}
	}
	if recs, _ := f.in.Live(time.Now()); len(recs) != 0 {
		t.Errorf("failed delay left records %v", recs)
	}
}

func netemBuilt() bool {
	out, err := exec.Command("sh", "-c", "zcat /proc/config.gz | grep -c '^CONFIG_NET_SCH_NETEM='").Output()
	return err == nil && strings.TrimSpace(string(out)) != "0"
}

// inNetns runs fn on a thread inside the DC's network namespace.
func inNetns(t testing.TB, f *fixture, dc string, fn func()) {
	t.Helper()
	l, err := lab.Inspect(context.Background(), f.cli, f.lab.Name)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := l.DC(dc)
	ns, err := netns.GetFromPid(d.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := netns.Set(ns); err != nil {
			t.Error(err)
			return
		}
		fn()
	}()
	<-done
}

// tbfRate returns the rate of fibercut's tbf on the DC's WAN interface, or 0.
func tbfRate(t *testing.T, f *fixture, dc string) uint64 {
	t.Helper()
	var rate uint64
	l, _ := lab.Inspect(context.Background(), f.cli, f.lab.Name)
	d, _ := l.DC(dc)
	inNetns(t, f, dc, func() {
		links, err := netlink.LinkList()
		if err != nil {
			t.Error(err)
			return
		}
		for _, link := range links {
			addrs, _ := netlink.AddrList(link, netlink.FAMILY_V4)
			onWAN := slices.ContainsFunc(addrs, func(a netlink.Addr) bool { return a.IP.String() == d.WANIP.String() })
			qs, _ := netlink.QdiscList(link)
			for _, q := range qs {
				if tbf, ok := q.(*netlink.Tbf); ok {
					if !onWAN {
						t.Errorf("tbf on %s, which is not the WAN interface", link.Attrs().Name)
					}
					rate = tbf.Rate
				}
			}
		}
	})
	return rate
}

// TestDockerDNSWorksInIsolatedDC resolves a peer's name through Docker's
// embedded DNS (127.0.0.11) from inside an isolated DC.
func TestDockerDNSWorksInIsolatedDC(t *testing.T) {
	f := newFixture(t, "two-city-three-dc")
	rec := f.apply(faults.Spec{Kind: faults.KindIsolate, City: "hangzhou", For: time.Minute})
	defer f.in.Heal(context.Background(), rec.ID)
	sh, _ := f.lab.DC("sh-a")
	// The resolver queries from goroutines of its own: each of its sockets
	// is made inside hz-a's namespace.
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var (
			c   net.Conn
			err error
		)
		inNetns(t, f, "hz-a", func() {
			c, err = (&net.Dialer{}).DialContext(ctx, network, "127.0.0.11:53")
		})
		return c, err
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	addrs, err := r.LookupHost(ctx, lab.WANName("sh-a"))
	if err != nil || !slices.Equal(addrs, []string{sh.WANIP.String()}) {
		t.Fatalf("resolve %s inside isolated hz-a = %v, %v; want [%s]", lab.WANName("sh-a"), addrs, err, sh.WANIP)
	}
	// And the isolation is real: sh-a is not reachable from hz-a.
	if p, _ := f.matrix(lab.MatrixOptions{}).Get("hz-a", "sh-a"); p.Reach != lab.ReachCut {
		t.Fatalf("hz-a→sh-a is %s during isolation", p.Reach)
	}
}

// TestPowerOffAndPause checks the Docker faults and the matrix they make.
func TestPowerOffAndPause(t *testing.T) {
	f := newFixture(t, "two-city-three-dc")
	ctx := context.Background()

	rec := f.apply(faults.Spec{Kind: faults.KindPowerOff, City: "hangzhou", For: time.Minute})
	l, _ := lab.Inspect(ctx, f.cli, f.lab.Name)
	for _, dc := range hz {
		if d, _ := l.DC(dc); d.State != "exited" {
			t.Errorf("%s after power-off: %s, want exited", dc, d.State)
		}
	}
	want := []string{"hz-a→hz-b: ok → down", "hz-a→sh-a: ok → down", "hz-b→hz-a: ok → down", "hz-b→sh-a: ok → down"}
	want = append(want, cuts("sh-a>hz-a", "sh-a>hz-b", "client>hz-a", "client>hz-b")...)
	f.expectDiff("power-off hangzhou", f.matrix(lab.MatrixOptions{}), want)
	if err := f.in.Heal(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	l, _ = lab.Inspect(ctx, f.cli, f.lab.Name)
	if err := l.WaitHealthy(ctx, 30*time.Second); err != nil {
		t.Fatalf("after power-on: %v", err)
	}
	f.expectDiff("after power-on", f.matrix(lab.MatrixOptions{}), nil)

	rec = f.apply(faults.Spec{Kind: faults.KindPause, DC: "sh-a", For: time.Minute})
	l, _ = lab.Inspect(ctx, f.cli, f.lab.Name)
	d, _ := l.DC("sh-a")
	if d.State != "paused" {
		t.Fatalf("sh-a after pause: %s", d.State)
	}
	// A frozen node does not answer, though its kernel still completes
	// TCP handshakes (so the matrix only marks it down as a source).
	hctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := lab.ProbeHealth(hctx, d.MgmtIP, l.Name, "sh-a"); err == nil {
		t.Error("paused sh-a answered its health check")
	}
	f.expectDiff("pause sh-a", f.matrix(lab.MatrixOptions{}), []string{"sh-a→hz-a: ok → down", "sh-a→hz-b: ok → down"})
	f.healAndExpectBaseline(rec.ID)
}

// TestApplyRollsBackWhenOneNamespaceFails makes the second of two DCs refuse
// an isolation (a foreign set of the wrong type squats the set's name in its
// fibercut table) and checks that the first DC is rolled back.
func TestApplyRollsBackWhenOneNamespaceFails(t *testing.T) {
	f := newFixture(t, "two-city-three-dc")
	inNetns(t, f, "hz-b", func() {
		c, err := nftables.New()
		if err != nil {
			t.Error(err)
			return
		}
		tbl := c.AddTable(&nftables.Table{Name: faults.TableName, Family: nftables.TableFamilyINet})
		// f1 is the first id of the fixture's fresh state directory.
		if err := c.AddSet(&nftables.Set{Table: tbl, Name: "f1_isolated", KeyType: nftables.TypeIP6Addr}, nil); err != nil {
			t.Error(err)
			return
		}
		if err := c.Flush(); err != nil {
			t.Error(err)
		}
	})
	_, err := f.in.Apply(context.Background(), faults.Spec{Kind: faults.KindIsolate, City: "hangzhou", For: time.Minute})
	if err == nil {
		t.Fatal("isolate succeeded although hz-b could not take it")
	}
	if !strings.Contains(err.Error(), "hz-b") {
		t.Errorf("error does not name the failing DC: %v", err)
	}
	// hz-a must hold no element: its part was rolled back.
	inNetns(t, f, "hz-a", func() {
		c, err := nftables.New()
		if err != nil {
			t.Error(err)
			return
		}
		tbl := &nftables.Table{Name: faults.TableName, Family: nftables.TableFamilyINet}
		sets, err := c.GetSets(tbl)
		if err != nil {
			t.Error(err)
			return
		}
		for _, s := range sets {
			s.Table = tbl
			if elems, _ := c.GetSetElements(s); len(elems) > 0 {
				t.Errorf("hz-a set %s still holds %d elements after rollback", s.Name, len(elems))
			}
		}
	})
	f.expectDiff("after failed isolate", f.matrix(lab.MatrixOptions{}), nil)
	if recs, _ := f.in.Live(time.Now()); len(recs) != 0 {
		t.Errorf("failed apply left records %v", recs)
	}
	if _, err := f.in.HealAll(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestHealAllAfterCrash leaves every kind of fault in force "until healed",
// loses the record of them, and checks that heal --all still restores the
// lab: no rule, no qdisc, no paused or stopped DC.
func TestHealAllAfterCrash(t *testing.T) {
	f := newFixture(t, topology.Default)
	ctx := context.Background()
	f.apply(faults.Spec{Kind: faults.KindIsolate, City: "hangzhou"})
	f.apply(faults.Spec{Kind: faults.KindLoss, Percent: 100, A: "sh-a", B: "sz-a"})
	f.apply(faults.Spec{Kind: faults.KindBandwidth, RateBits: 1_000_000, DC: "sh-b"})
	f.apply(faults.Spec{Kind: faults.KindPause, DC: "sz-a"})
	f.apply(faults.Spec{Kind: faults.KindPowerOff, DC: "sh-a"})
	if err := os.Remove(f.store.Path()); err != nil { // the crash lost the records
		t.Fatal(err)
	}
	in := faults.NewInjector(f.cli, f.lab, f.store)
	rep, err := in.HealAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Resumed, []string{"sz-a"}) || !slices.Equal(rep.PoweredOn, []string{"sh-a"}) || !slices.Equal(rep.Qdiscs, []string{"sh-b"}) {
		t.Errorf("heal --all report %+v", rep)
	}
	l, _ := lab.Inspect(ctx, f.cli, f.lab.Name)
	if err := l.WaitHealthy(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	f.expectDiff("after heal --all", f.matrix(lab.MatrixOptions{}), nil)
	if got := tbfRate(t, f, "sh-b"); got != 0 {
		t.Error("tbf left on sh-b")
	}
	rep, err = in.HealAll(ctx)
	if err != nil || !rep.Empty() {
		t.Errorf("second heal --all = %+v, %v; want nothing to heal", rep, err)
	}
}

// startCLI runs the fibercut binary with the fixture's state directory
// and returns once it printed its first line, which must contain want.
func (f *fixture) startCLI(want string, args ...string) (*exec.Cmd, time.Time) {
	f.t.Helper()
	cmd := exec.Command(labtest.StaticBinary(f.t), append(args, "--name", f.lab.Name)...)
	cmd.Env = append(os.Environ(), "FIBERCUT_STATE_DIR="+filepath.Dir(f.store.Path()))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		f.t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.Contains(line, want) {
		cmd.Process.Kill()
		cmd.Wait()
		f.t.Fatalf("fibercut %v said %q, %v; want %q", args, line, err, want)
	}
	return cmd, time.Now()
}

// expectNothingInForce checks the kernel and the engine, not the records:
// no element in any fibercut set, no qdisc, every DC running, and, once
// the DCs a heal left catching up are current (30 s at most), every DC at
// its default CPU weight.
func (f *fixture) expectNothingInForce(what string) {
	f.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res := f.residue()
		weightOnly := !slices.ContainsFunc(res, func(r string) bool { return !strings.Contains(r, "CPU weight") })
		if len(res) == 0 || !weightOnly || time.Now().After(deadline) {
			if len(res) > 0 {
				f.t.Errorf("%s: still in force:\n  %s", what, strings.Join(res, "\n  "))
			}
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (f *fixture) residue() []string {
	f.t.Helper()
	l, err := lab.Inspect(context.Background(), f.cli, f.lab.Name)
	if err != nil {
		f.t.Fatal(err)
	}
	res, err := faults.NewInjector(f.cli, l, f.store).Residue(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

// waitRunning waits, for at most 30 s, until the DC runs and the lab is
// healthy.
func (f *fixture) waitRunning(dc string) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		l, err := lab.Inspect(ctx, f.cli, f.lab.Name)
		if err != nil {
			f.t.Fatal(err)
		}
		if d, _ := l.DC(dc); d.State == "running" {
			if err := l.WaitHealthy(ctx, 20*time.Second); err != nil {
				f.t.Fatal(err)
			}
			return
		}
		select {
		case <-ctx.Done():
			f.t.Fatalf("%s was not running again within 30 s; its watchdog did not end the fault", dc)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestFaultOutlivesNoKill runs the real CLI, SIGKILLs it right after it
// applied a 3 s cut, a 3 s power-off and a 3 s pause, and checks that all
// end on time anyway: the cut in the kernel, the others by their watchdogs,
// armed before the faults changed anything.
func TestFaultOutlivesNoKill(t *testing.T) {
	f := newFixture(t, topology.Default)
	kill := func(args ...string) time.Time {
		t.Helper()
		cmd, applied := f.startCLI("in force for 3s", append(args, "--for", "3s")...)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		return applied
	}
	appliedCut := kill("fault", "cut", "hz-a", "sh-a")
	kill("fault", "power-off", "--dc", "hz-b")
	kill("fault", "pause", "--dc", "sz-a")

	m := f.matrix(lab.MatrixOptions{Tries: 1})
	if p, _ := m.Get("hz-a", "sh-a"); p.Reach != lab.ReachCut {
		t.Fatalf("hz-a→sh-a right after the cut: %s", p.Reach)
	}
	l, _ := lab.Inspect(context.Background(), f.cli, f.lab.Name)
	if d, _ := l.DC("hz-b"); d.State != "exited" {
		t.Fatalf("hz-b right after power-off: %s", d.State)
	}
	if d, _ := l.DC("sz-a"); d.State != "paused" {
		t.Fatalf("sz-a right after pause: %s", d.State)
	}
	time.Sleep(time.Until(appliedCut.Add(3*time.Second + 200*time.Millisecond)))
	if p, _ := f.matrix(lab.MatrixOptions{Tries: 1}).Get("hz-a", "sh-a"); p.Reach != lab.ReachOK {
		t.Errorf("hz-a→sh-a 3.2 s after a 3 s cut whose fibercut was killed: %s", p.Reach)
	}
	f.waitRunning("sz-a")
	f.waitRunning("hz-b")
	f.expectDiff("after the faults ended", f.matrix(lab.MatrixOptions{}), nil)
	f.expectNothingInForce("after the faults ended")
	if recs, _ := f.in.Live(time.Now()); len(recs) != 0 {
		t.Errorf("records left after the watchdogs ended the faults: %+v", recs)
	}
}

// TestOverlappingCutsEndApart applies a cut until healed and a 3 s cut on
// the same link: the short one ending must not end the other, and the list
// must say what is in force.
func TestOverlappingCutsEndApart(t *testing.T) {
	f := newFixture(t, "two-city-three-dc")
	keep := f.apply(faults.Spec{Kind: faults.KindCut, A: "hz-a", B: "sh-a"})
	short := f.apply(faults.Spec{Kind: faults.KindCut, A: "hz-a", B: "sh-a", For: 3 * time.Second})
	want := cuts("hz-a>sh-a", "sh-a>hz-a")
	f.expectDiff("two cuts", f.matrix(lab.MatrixOptions{}), want)
	time.Sleep(time.Until(short.InForceAt.Add(5 * time.Second)))
	f.expectDiff("5 s after the 3 s cut began", f.matrix(lab.MatrixOptions{}), want)
	recs, err := f.in.Live(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].ID != keep.ID || !recs[0].Until.IsZero() {
		t.Errorf("fault list after the 3 s cut ended: %+v; want only %s, until healed", recs, keep.ID)
	}
	f.healAndExpectBaseline(keep.ID)
	f.expectNothingInForce("after healing the cut")
}

// TestTwoProcessesApplyAtOnce starts two fault commands on one lab at the
// same moment: the lab's lock serialises them, and both are recorded, in
// force and healed.
func TestTwoProcessesApplyAtOnce(t *testing.T) {
	f := newFixture(t, topology.Default)
	bin := labtest.StaticBinary(t)
	env := append(os.Environ(), "FIBERCUT_STATE_DIR="+filepath.Dir(f.store.Path()))
	cmds := [][]string{
		{"fault", "cut", "hz-a", "sh-a", "--for", "0", "--detach"},
		{"fault", "isolate", "dc", "sz-a", "--for", "0", "--detach"},
	}
	errs := make(chan error, len(cmds))
	for _, args := range cmds {
		go func() {
			cmd := exec.Command(bin, append(args, "--name", f.lab.Name)...)
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			if err != nil {
				err = fmt.Errorf("fibercut %v: %w\n%s", args, err, out)
			}
			errs <- err
		}()
	}
	for range cmds {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	recs, err := f.in.Live(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].ID == recs[1].ID || recs[0].Owner != nil || recs[1].Owner != nil {
		t.Fatalf("records after two concurrent applies: %+v; want two kept faults with their own ids", recs)
	}
	others := []string{"hz-a", "hz-b", "sh-a", "sh-b"}
	want := cuts(append(allPairs([]string{"sz-a"}, others), allPairs(others, []string{"sz-a"})...)...)
	want = append(want, cuts("client>sz-a", "hz-a>sh-a", "sh-a>hz-a")...)
	f.expectDiff("both faults", f.matrix(lab.MatrixOptions{}), want)
	for _, r := range recs {
		if err := f.in.Heal(context.Background(), r.ID); err != nil {
			t.Fatal(err)
		}
	}
	f.expectDiff("after healing both", f.matrix(lab.MatrixOptions{}), nil)
	f.expectNothingInForce("after healing both")
}

// TestWatchdogIgnoresTheNextLab arms a watchdog for a 2 s pause, takes the
// lab down and brings it up again under the same name (the fault file kept,
// as after a crash), pauses the new lab's DC until healed, and checks that
// the old watchdog never touches it.
func TestWatchdogIgnoresTheNextLab(t *testing.T) {
	f := newFixture(t, "two-city-three-dc")
	ctx := context.Background()
	old := f.apply(faults.Spec{Kind: faults.KindPause, DC: "sh-a", For: 2 * time.Second})
	if old.Watchdog == nil || !old.Watchdog.Alive() {
		t.Fatalf("a 2 s pause has no live watchdog: %+v", old)
	}
	if _, err := lab.Down(ctx, f.cli, f.lab.Name, lab.DownOptions{}); err != nil {
		t.Fatal(err)
	}
	tp, _ := topology.Builtin("two-city-three-dc")
	l, err := lab.Up(ctx, f.cli, lab.UpOptions{Name: f.lab.Name, Topology: tp, Binary: labtest.StaticBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	in := faults.NewInjector(f.cli, l, f.store)
	in.Detached = true
	next, err := in.Apply(ctx, faults.Spec{Kind: faults.KindPause, DC: "sh-a"})
	if err != nil {
		t.Fatal(err)
	}
	if next.ID == old.ID {
		t.Fatalf("the new lab's fault has the old one's id %s", old.ID)
	}
	deadline := time.Now().Add(20 * time.Second)
	for old.Watchdog.Alive() && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if old.Watchdog.Alive() {
		t.Fatalf("the old fault's watchdog (pid %d) still runs 20 s on", old.Watchdog.PID)
	}
	l, _ = lab.Inspect(ctx, f.cli, f.lab.Name)
	if d, _ := l.DC("sh-a"); d.State != "paused" {
		t.Errorf("the new lab's sh-a is %s: the old lab's watchdog ended the new fault", d.State)
	}
	if recs, _ := in.Live(time.Now()); len(recs) != 1 || recs[0].ID != next.ID {
		t.Errorf("the new lab lists %+v; want only %s", recs, next.ID)
	}
	if err := in.Heal(ctx, next.ID); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkIsolateCity measures isolating hangzhou on the default lab, from
// the call to the rules being in force in every affected namespace, with
// the lab's inventory known. Healing is not timed.
func BenchmarkIsolateCity(b *testing.B) {
	cli := labtest.RequireDocker(b)
	labtest.RequireRoot(b)
	l := labtest.Up(b, cli, topology.Default)
	in := faults.NewInjector(cli, l, faults.NewStore(filepath.Join(b.TempDir(), "bench.faults.json")))
	ctx := context.Background()
	spec := faults.Spec{Kind: faults.KindIsolate, City: "hangzhou", For: time.Minute}
	var inForce time.Duration
	for b.Loop() {
		rec, err := in.Apply(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		inForce += rec.InForceAt.Sub(rec.AppliedAt)
		b.StopTimer()
		if err := in.Heal(ctx, rec.ID); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(inForce.Microseconds())/float64(b.N)/1000, "ms-to-in-force/op")
}

// TestSignalHealsForegroundFault sends SIGTERM to a fault command in the
// foreground and checks that it heals the fault before it exits.
func TestSignalHealsForegroundFault(t *testing.T) {
	f := newFixture(t, "two-city-three-dc")
	cmd := exec.Command(labtest.StaticBinary(t), "fault", "isolate", "--dc", "sh-a", "--for", "5m", "--name", f.lab.Name)
	cmd.Env = append(os.Environ(), "FIBERCUT_STATE_DIR="+filepath.Dir(f.store.Path()))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	if line, err := r.ReadString('\n'); err != nil || !strings.Contains(line, "in force") {
		t.Fatalf("fibercut said %q, %v", line, err)
	}
	if p, _ := f.matrix(lab.MatrixOptions{Tries: 1}).Get("hz-a", "sh-a"); p.Reach != lab.ReachCut {
		t.Fatalf("hz-a→sh-a during isolation: %s", p.Reach)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("fibercut after SIGTERM: %v", err)
	}
	f.expectDiff("after SIGTERM", f.matrix(lab.MatrixOptions{}), nil)
	if recs, _ := f.in.Live(time.Now()); len(recs) != 0 {
		t.Errorf("records left after SIGTERM: %v", recs)
	}
}

// rtt is the median connect time from one DC to another.
func (f *fixture) rtt(from, to string) (time.Duration, lab.Probe) {
	f.t.Helper()
	m := f.matrix(lab.MatrixOptions{Tries: 5})
	p, ok := m.Get(from, to)
	if !ok {
		f.t.Fatalf("no probe %s→%s", from, to)
	}
	return p.RTT, p
}

// TestDelayByQueue delays a DC's egress without netem: through NFQUEUE
// and the fault's holder. A connection to the DC takes at least the delay
// longer (its answers wait), one between two other DCs does not, and at
// the fault's end the delay is gone without any command: the kernel's
// elements expired and the holder left. A holder killed mid-delay lets
// the link carry traffic at once, undelayed and with nothing dropped.
func TestDelayByQueue(t *testing.T) {
	f := newFixture(t, topology.Default)
	const delay = 50 * time.Millisecond
	// What counts as undelayed: a connect within the lab's bridge takes
	// well under a millisecond; half the delay leaves room for a busy
	// machine.
	const undelayed = delay / 2
	if d, _ := f.rtt("hz-a", "sz-a"); d >= undelayed {
		t.Fatalf("before the fault, hz-a→sz-a takes %s", d)
	}
	rec := f.apply(faults.Spec{Kind: faults.KindDelay, Delay: delay, DC: "sz-a", For: 5 * time.Second, Engine: faults.EngineNFQueue})
	if rec.Holder == nil || len(rec.Qdisc) != 0 || !rec.KernelExpires() {
		t.Fatalf("record %+v: want a holder, no qdisc, ended by the kernel", rec)
	}
	// A holder releases each packet up to 2 ms before it is due (by its
	// timer's measured lateness), so that on average it leaves on time.
	const early = 2 * time.Millisecond
	if d, p := f.rtt("hz-a", "sz-a"); d < delay-early || p.Reach != lab.ReachOK {
		t.Errorf("delayed: hz-a→sz-a %s (%s); want at least %s less %s, every try through", d, p.Reach, delay, early)
	}
	if d, _ := f.rtt("hz-a", "hz-b"); d >= undelayed {
		t.Errorf("hz-a→hz-b, not delayed, takes %s", d)
	}
	// What sz-a sends hz-a (the connects' replies) waits in hz-a, where it
	// arrives: held in sz-a, it would count against its sockets' small
	// queues and starve TCP (BenchmarkThroughput).
	if hza, _ := f.lab.DC("hz-a"); queued(t, hza.Pid, 0xfc00, 0x10000) == 0 {
		t.Errorf("hz-a queued nothing that delayed sz-a sent it; want the receiver to hold it")
	}
	// The end, on its own.
	deadline := rec.Until.Add(15 * time.Second)
	for rec.Holder.Alive() {
		if time.Now().After(deadline) {
			t.Fatalf("the holder of %s still runs %s after the fault's end", rec.ID, time.Since(rec.Until))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if d, p := f.rtt("hz-a", "sz-a"); d >= undelayed || p.Reach != lab.ReachOK {
		t.Errorf("after the fault's end: hz-a→sz-a %s (%s); want undelayed", d, p.Reach)
	}

	// A link: both directions, each at its sender.
	rec = f.apply(faults.Spec{Kind: faults.KindDelay, Delay: 20 * time.Millisecond, A: "hz-a", B: "sz-a", For: time.Minute, Engine: faults.EngineNFQueue})
	if d, _ := f.rtt("hz-a", "sz-a"); d < 40*time.Millisecond-2*early {
		t.Errorf("link hz-a sz-a delayed 20 ms: the round trip takes %s; want at least 40 ms less %s", d, 2*early)
	}
	for _, p := range [][2]string{{"hz-a", "hz-b"}, {"sz-a", "sh-a"}} {
		if d, _ := f.rtt(p[0], p[1]); d >= undelayed {
			t.Errorf("%s→%s, off the delayed link, takes %s", p[0], p[1], d)
		}
	}
	f.healAndExpectBaseline(rec.ID)
	if rec.Holder.Alive() {
		for i := 0; rec.Holder.Alive() && i < 100; i++ {
			time.Sleep(100 * time.Millisecond)
		}
		if rec.Holder.Alive() {
			t.Errorf("the holder of healed %s still runs after 10 s", rec.ID)
		}
	}

	// Killed mid-delay.
	rec = f.apply(faults.Spec{Kind: faults.KindDelay, Delay: delay, DC: "sz-a", For: time.Minute, Engine: faults.EngineNFQueue})
	if d, _ := f.rtt("hz-a", "sz-a"); d < delay-early {
		t.Fatalf("delayed again: hz-a→sz-a %s", d)
	}
	if err := syscall.Kill(rec.Holder.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for i := 0; rec.Holder.Alive(); i++ {
		if i > 100 {
			t.Fatal("the killed holder is still alive after 10 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if d, p := f.rtt("hz-a", "sz-a"); d >= undelayed || p.Reach != lab.ReachOK || p.OK != p.Tries {
		t.Errorf("holder killed: hz-a→sz-a %s, %d of %d tries through; want undelayed, none dropped", d, p.OK, p.Tries)
	}
	f.healAndExpectBaseline(rec.ID)
}

// TestCatchUpAtLowWeight heals a city's isolation while one of its DCs
// stays isolated by a second fault, on a real lab: both DCs are given a
// low CPU weight by the engine; the one that can catch up gets its weight
// back from the keeper once its node is current, the other keeps it (it
// cannot be current while cut off) until its own fault is healed and it
// has caught up too. Nothing is left.
func TestCatchUpAtLowWeight(t *testing.T) {
	f := newFixture(t, topology.Default)
	city := f.apply(faults.Spec{Kind: faults.KindIsolate, City: "hangzhou"})
	still := f.apply(faults.Spec{Kind: faults.KindIsolate, DC: "hz-a"})
	// A leader in hz-a steps down only after an election timeout: until
	// then its node still says its ledger is current. Wait until it knows.
	hza, _ := f.lab.DC("hz-a")
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		h, err := lab.FetchHealth(ctx, hza.MgmtIP)
		cancel()
		if err == nil && h.Ledger != nodeapi.LedgerOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hz-a's node, isolated for 15 s: ledger %q, %v; want it to say it is cut off", h.Ledger, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := f.in.Heal(context.Background(), city.ID); err != nil {
		t.Fatal(err)
	}
	// Its end out of reach: what holds hz-a low is that it cannot catch
	// up, not the catch-up's 20 s (the keeper reads the end each round).
	if err := f.store.Update(func(st *faults.State) error {
		for i := range st.CatchUps {
			st.CatchUps[i].Until = time.Now().Add(10 * time.Minute)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	shares := func(dc string) int64 {
		t.Helper()
		l, err := lab.Inspect(context.Background(), f.cli, f.lab.Name)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := l.DC(dc)
		return d.CPUShares
	}
	if w := shares("hz-a"); w != 64 {
		t.Fatalf("hz-a, healed from the city's isolation but still isolated: CPU weight %d, want 64", w)
	}
	waitShares := func(dc string, want int64) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for shares(dc) != want {
			if time.Now().After(deadline) {
				t.Fatalf("dc %s: CPU weight %d after a minute, want %d", dc, shares(dc), want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitShares("hz-b", 1024)
	if w := shares("hz-a"); w != 64 {
		t.Fatalf("hz-a, still isolated when hz-b caught up: CPU weight %d, want 64", w)
	}
	for _, dc := range []string{"sh-a", "sh-b", "sz-a"} {
		if w := shares(dc); w != 0 {
			t.Errorf("dc %s, never cut off: CPU weight %d, want the default", dc, w)
		}
	}
	f.healAndExpectBaseline(still.ID)
	waitShares("hz-a", 1024)
	f.expectNothingInForce("after both heals and the catch-up")
	// Both keepers end, holding nothing; the next heal of leftovers
	// forgets their catch-ups and has nothing to restore.
	deadline = time.Now().Add(time.Minute)
	for {
		st, err := f.store.Load()
		if err != nil {
			t.Fatal(err)
		}
		alive := slices.ContainsFunc(st.CatchUps, func(c faults.CatchUp) bool { return c.Keeper != nil && c.Keeper.Alive() })
		if !alive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("keepers still running a minute after the catch-up: %+v", st.CatchUps)
		}
		time.Sleep(100 * time.Millisecond)
	}
	rep, err := f.in.HealLeftovers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.store.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Weights) != 0 || len(st.CatchUps) != 0 {
		t.Errorf("after the keepers ended: HealLeftovers restored %v, left catch-ups %+v; want none", rep.Weights, st.CatchUps)
	}
}
