package lab_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/lab/labtest"
	"github.com/fibercut/fibercut/topology"
)

// handMatrix is a matrix of the default topology where every probe is ok
// with a 0.05 ms RTT, except those set in odd.
func handMatrix(odd ...lab.Probe) *lab.Matrix {
	m := &lab.Matrix{Lab: "t", Cities: []string{"hangzhou", "shanghai", "shenzhen"}}
	for _, d := range [][2]string{{"hz-a", "hangzhou"}, {"hz-b", "hangzhou"}, {"sh-a", "shanghai"}, {"sh-b", "shanghai"}, {"sz-a", "shenzhen"}} {
		m.DCs = append(m.DCs, lab.MatrixDC{ID: d[0], City: d[1], State: "running"})
	}
	set := func(p lab.Probe) lab.Probe {
		for _, o := range odd {
			if o.From == p.From && o.To == p.To {
				return o
			}
		}
		return p
	}
	ok := func(from, to string) lab.Probe {
		return set(lab.Probe{From: from, To: to, Reach: lab.ReachOK, OK: 4, Tries: 4, RTT: 50 * time.Microsecond})
	}
	for _, a := range m.DCs {
		for _, b := range m.DCs {
			if a.ID != b.ID {
				m.Probes = append(m.Probes, ok(a.ID, b.ID))
			}
		}
	}
	for _, b := range m.DCs {
		m.Client = append(m.Client, ok(lab.MatrixClient, b.ID))
	}
	return m
}

func cut(from, to string) lab.Probe {
	return lab.Probe{From: from, To: to, Reach: lab.ReachCut, Tries: 4, Err: "i/o timeout"}
}

func down(from, to string) lab.Probe {
	return lab.Probe{From: from, To: to, Reach: lab.ReachDown, Err: "not running (exited)"}
}

func TestMatrixGet(t *testing.T) {
	m := handMatrix(cut("hz-a", "sz-a"), cut(lab.MatrixClient, "sh-b"))
	tests := []struct {
		from, to string
		want     lab.Reach
		found    bool
	}{
		{"hz-a", "sz-a", lab.ReachCut, true},
		{"sz-a", "hz-a", lab.ReachOK, true},
		{lab.MatrixClient, "sh-b", lab.ReachCut, true},
		{lab.MatrixClient, "sh-a", lab.ReachOK, true},
		{"hz-a", "hz-a", "", false},
		{"hz-a", "nowhere", "", false},
	}
	for _, tt := range tests {
		p, ok := m.Get(tt.from, tt.to)
		if ok != tt.found || p.Reach != tt.want {
			t.Errorf("Get(%s, %s) = %q, %v; want %q, %v", tt.from, tt.to, p.Reach, ok, tt.want, tt.found)
		}
	}
}

func TestMatrixDiff(t *testing.T) {
	lossy := lab.Probe{From: "sh-a", To: "sz-a", Reach: lab.ReachLossy, OK: 1, Tries: 4}
	fewer := handMatrix()
	fewer.Client = fewer.Client[:4]
	tests := []struct {
		name string
		a, b *lab.Matrix
		want []string
	}{
		{"same", handMatrix(), handMatrix(), nil},
		{"RTT and counts do not matter", handMatrix(), handMatrix(lab.Probe{From: "hz-a", To: "hz-b", Reach: lab.ReachOK, OK: 2, Tries: 2, RTT: time.Second}), nil},
		{"cut and lossy", handMatrix(), handMatrix(cut("hz-a", "sh-a"), lossy, cut(lab.MatrixClient, "sz-a")),
			[]string{"hz-a→sh-a: ok → cut", "sh-a→sz-a: ok → lossy", "client→sz-a: ok → cut"}},
		{"healed", handMatrix(down("sz-a", "hz-a")), handMatrix(), []string{"sz-a→hz-a: down → ok"}},
		{"missing on one side", handMatrix(), fewer, []string{"client→sz-a: ok → none"}},
		{"only on the other side", fewer, handMatrix(), []string{"client→sz-a: none → ok"}},
		{"nil", &lab.Matrix{Probes: []lab.Probe{cut("a", "b")}}, nil, []string{"a→b: cut → none"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Diff(tt.b); !slices.Equal(got, tt.want) {
				t.Errorf("Diff =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestMatrixFormat(t *testing.T) {
	lossy := lab.Probe{From: "sh-a", To: "sz-a", Reach: lab.ReachLossy, OK: 3, Tries: 4, RTT: 1500 * time.Microsecond}
	odd := []lab.Probe{cut("hz-b", "sh-a"), lossy, cut(lab.MatrixClient, "sz-a")}
	for _, to := range []string{"hz-a", "hz-b", "sh-a", "sh-b"} {
		odd = append(odd, down("sz-a", to))
	}
	tests := []struct {
		name string
		m    *lab.Matrix
		rtt  bool
		want string
	}{
		{"mixed", handMatrix(odd...), false, `
                hangzhou      shanghai      shenzhen
from \ to       hz-a   hz-b   sh-a   sh-b   sz-a
hangzhou  hz-a  -      ok     ok     ok     ok
          hz-b  ok     -      cut    ok     ok
shanghai  sh-a  ok     ok     -      ok     lossy 3/4
          sh-b  ok     ok     ok     -      ok
shenzhen  sz-a  down   down   down   down   -
client          ok     ok     ok     ok     cut
`},
		{"with RTT", handMatrix(odd...), true, `
                hangzhou              shanghai              shenzhen
from \ to       hz-a       hz-b       sh-a       sh-b       sz-a
hangzhou  hz-a  -          ok 0.05ms  ok 0.05ms  ok 0.05ms  ok 0.05ms
          hz-b  ok 0.05ms  -          cut        ok 0.05ms  ok 0.05ms
shanghai  sh-a  ok 0.05ms  ok 0.05ms  -          ok 0.05ms  lossy 3/4 1.5ms
          sh-b  ok 0.05ms  ok 0.05ms  ok 0.05ms  -          ok 0.05ms
shenzhen  sz-a  down       down       down       down       -
client          ok 0.05ms  ok 0.05ms  ok 0.05ms  ok 0.05ms  cut
`},
		{"with the topology's round trips", &lab.Matrix{
			Cities: []string{"hangzhou", "shenzhen"},
			DCs:    []lab.MatrixDC{{ID: "hz-a", City: "hangzhou"}, {ID: "sz-a", City: "shenzhen"}},
			Probes: []lab.Probe{
				{From: "hz-a", To: "sz-a", Reach: lab.ReachOK, RTT: 310 * time.Microsecond, TopologyRTT: 30 * time.Millisecond},
				{From: "sz-a", To: "hz-a", Reach: lab.ReachCut, TopologyRTT: 30 * time.Millisecond},
			},
			Client: []lab.Probe{{From: "client", To: "hz-a", Reach: lab.ReachOK, RTT: 50 * time.Microsecond}, {From: "client", To: "sz-a", Reach: lab.ReachOK}},
		}, true, `
                hangzhou   shenzhen
from \ to       hz-a       sz-a
hangzhou  hz-a  -          ok 0.31ms (30.0ms)
shenzhen  sz-a  cut        -
client          ok 0.05ms  ok
`},
		{"DCs out of city order, long city name", &lab.Matrix{
			Cities: []string{"chongqing", "a"},
			DCs:    []lab.MatrixDC{{ID: "a1", City: "a"}, {ID: "c1", City: "chongqing"}, {ID: "a2", City: "a"}},
			Probes: []lab.Probe{
				{From: "c1", To: "a1", Reach: lab.ReachOK}, {From: "c1", To: "a2", Reach: lab.ReachOK},
				{From: "a1", To: "c1", Reach: lab.ReachCut}, {From: "a1", To: "a2", Reach: lab.ReachOK},
				{From: "a2", To: "c1", Reach: lab.ReachOK}, {From: "a2", To: "a1", Reach: lab.ReachOK},
			},
			Client: []lab.Probe{{From: "client", To: "c1", Reach: lab.ReachOK}, {From: "client", To: "a1", Reach: lab.ReachOK}},
		}, false, `
               chongqing  a
from \ to      c1         a1     a2
chongqing  c1  -          ok     ok
a          a1  cut        -      ok
           a2  ok         ok     -
client         ok         ok     ?
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if err := tt.m.Format(&b, tt.rtt); err != nil {
				t.Fatal(err)
			}
			if want := strings.TrimPrefix(tt.want, "\n"); b.String() != want {
				t.Errorf("Format =\n%s\nwant\n%s", b.String(), want)
			}
		})
	}
}

// probeLab inspects the lab afresh (pids change when containers restart) and
// probes its matrix.
func probeLab(t testing.TB, cli client.APIClient, name string, opts lab.MatrixOptions) *lab.Matrix {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := lab.Inspect(ctx, cli, name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := l.Matrix(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// assertAllOK fails unless every probe of m, between DCs and from the client,
// is ok.
func assertAllOK(t *testing.T, m *lab.Matrix, when string) {
	t.Helper()
	if len(m.Probes) != len(m.DCs)*(len(m.DCs)-1) || len(m.Client) != len(m.DCs) {
		t.Fatalf("%s: %d probes and %d client probes for %d DCs", when, len(m.Probes), len(m.Client), len(m.DCs))
	}
	for _, p := range slices.Concat(m.Probes, m.Client) {
		if p.Reach != lab.ReachOK || p.OK != p.Tries || p.RTT <= 0 {
			t.Errorf("%s: %s→%s: %s (%d/%d, rtt %s, %s), want ok", when, p.From, p.To, p.Reach, p.OK, p.Tries, p.RTT, p.Err)
		}
	}
}

// assertDiff fails unless the probes whose Reach differs between base and m
// are exactly want (in any order).
func assertDiff(t *testing.T, base, m *lab.Matrix, want []string, when string) {
	t.Helper()
	got := base.Diff(m)
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		var b strings.Builder
		m.Format(&b, false)
		t.Errorf("%s: changes\n  %s\nwant\n  %s\nmatrix:\n%s", when, strings.Join(got, "\n  "), strings.Join(want, "\n  "), b.String())
	}
}

// TestMatrixPauseKill probes a fresh default lab, then pauses one DC, then
// kills it, and checks exactly which probes change each time.
//
// A paused container is still reachable: its processes are frozen, but the
// kernel of its network namespace completes TCP handshakes for the node's
// listening socket. Only the probes from it change, to down, since a DC that
// is not running is not probed. A killed container's namespace is gone, so
// nothing answers for its address: every probe to it is cut.
func TestMatrixPauseKill(t *testing.T) {
	cli := labtest.RequireDocker(t)
	labtest.RequireRoot(t)
	ctx := ctxT(t)
	l := labtest.Up(t, cli, topology.Default)
	// Generous timeouts: the test is about outcomes, not speed.
	opts := lab.MatrixOptions{Tries: 2, Timeout: time.Second}
	const victim = "sh-a"
	d, _ := l.DC(victim)
	t.Cleanup(func() { // leave nothing paused if the test fails midway
		cli.ContainerUnpause(context.Background(), d.ContainerID)
	})

	base := probeLab(t, cli, l.Name, opts)
	assertAllOK(t, base, "fresh lab")
	// Each pair carries the topology's round trip for its link.
	for _, p := range base.Probes {
		k, _ := l.Topology.Link(p.From, p.To)
		if p.TopologyRTT != 2*k.Latency || p.TopologyRTT == 0 {
			t.Errorf("%s→%s: topology round trip %s, want twice the link's %s", p.From, p.To, p.TopologyRTT, k.Latency)
		}
	}
	if m := probeLab(t, cli, l.Name, opts); len(base.Diff(m)) != 0 {
		t.Fatalf("two matrices of an untouched lab differ: %v", base.Diff(m))
	}

	var from, to []string
	for _, o := range l.DCs {
		if o.ID != victim {
			from = append(from, victim+"→"+o.ID+": ok → down")
			to = append(to, o.ID+"→"+victim+": ok → cut")
		}
	}
	to = append(to, lab.MatrixClient+"→"+victim+": ok → cut")

	if err := cli.ContainerPause(ctx, d.ContainerID); err != nil {
		t.Fatal(err)
	}
	assertDiff(t, base, probeLab(t, cli, l.Name, opts), from, "paused "+victim)
	if err := cli.ContainerUnpause(ctx, d.ContainerID); err != nil {
		t.Fatal(err)
	}
	assertAllOK(t, probeLab(t, cli, l.Name, opts), "after unpause")

	if err := cli.ContainerKill(ctx, d.ContainerID, "KILL"); err != nil {
		t.Fatal(err)
	}
	waitc, errc := cli.ContainerWait(ctx, d.ContainerID, container.WaitConditionNotRunning)
	select {
	case <-waitc:
	case err := <-errc:
		t.Fatalf("wait for %s to stop: %v", victim, err)
	}
	assertDiff(t, base, probeLab(t, cli, l.Name, opts), slices.Concat(from, to), "killed "+victim)

	if err := cli.ContainerStart(ctx, d.ContainerID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	restarted, err := lab.Inspect(ctx, cli, l.Name)
	if err != nil {
		t.Fatal(err)
	}
	if nd, _ := restarted.DC(victim); nd.Pid == d.Pid {
		t.Errorf("%s kept pid %d across a restart", victim, d.Pid)
	}
	// The node must listen again before handshakes complete.
	if err := restarted.WaitHealthy(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	assertAllOK(t, probeLab(t, cli, l.Name, opts), "after restart")
}

// BenchmarkMatrix measures one full matrix of the default lab with the
// default options: 20 probes between DCs and 5 from the client, 4 connects
// each.
func BenchmarkMatrix(b *testing.B) {
	cli := labtest.RequireDocker(b)
	labtest.RequireRoot(b)
	l := labtest.Up(b, cli, topology.Default)
	ctx := context.Background()
	for b.Loop() {
		m, err := l.Matrix(ctx, lab.MatrixOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if d := handMatrix().Diff(m); len(d) != 0 {
			b.Fatalf("matrix of a fresh lab is not all ok: %v", d)
		}
	}
}
