package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/lab/kube"
	"github.com/fibercut/fibercut/lab/labtest"
	"github.com/fibercut/fibercut/nodeapi"
)

// testPod is a process standing for a DC's pod: in a test network
// namespace, in a cgroup shaped as a pod's (in the freezer hierarchy), with
// a DC node's environment.
type testPod struct {
	uid string
	pid int
	dir string // its freezer cgroup
	v2  bool
}

func newTestPod(t *testing.T, ns *testNS, labName, dc string) *testPod {
	t.Helper()
	hierarchy, v2 := filepath.Join(kube.CgroupRoot, "freezer"), false
	if _, err := os.Stat(hierarchy); err != nil {
		hierarchy, v2 = kube.CgroupRoot, true
	}
	p := &testPod{uid: "agent-test-" + strconv.Itoa(os.Getpid()) + "-" + dc, v2: v2}
	parent := filepath.Join(hierarchy, "fibercut-test-agent-"+strconv.Itoa(os.Getpid())+"-"+dc)
	p.dir = filepath.Join(parent, "pod"+p.uid)
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sleep := exec.Command("ip", "netns", "exec", ns.name, "sleep", "300")
	sleep.Env = []string{nodeapi.EnvLab + "=" + labName, nodeapi.EnvDC + "=" + dc, "PATH=" + os.Getenv("PATH")}
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	p.pid = sleep.Process.Pid
	t.Cleanup(func() {
		os.WriteFile(filepath.Join(p.dir, "freezer.state"), []byte("THAWED"), 0)
		os.WriteFile(filepath.Join(p.dir, "cgroup.freeze"), []byte("0"), 0)
		sleep.Process.Kill()
		sleep.Wait()
		os.Remove(p.dir)
		os.Remove(parent)
	})
	if err := os.WriteFile(filepath.Join(p.dir, "cgroup.procs"), []byte(strconv.Itoa(p.pid)), 0); err != nil {
		t.Fatal(err)
	}
	// ip netns exec has execed sleep once the process is in the namespace.
	want, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		got, err := os.Readlink("/proc/" + strconv.Itoa(p.pid) + "/ns/net")
		if err == nil && got != want {
			break
		}
		if i == 500 {
			t.Fatalf("the pod's process is not in its namespace: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return p
}

func (p *testPod) frozen(t *testing.T) bool {
	t.Helper()
	file, frozen := "freezer.state", "FROZEN"
	if p.v2 {
		file, frozen = "cgroup.freeze", "1"
	}
	b, err := os.ReadFile(filepath.Join(p.dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b)) == frozen
}

// tlog writes an agent's log to the test's.
type tlog struct{ t *testing.T }

func (l tlog) Write(p []byte) (int, error) { l.t.Log(strings.TrimSpace(string(p))); return len(p), nil }

// agentFixture is an agent's handler on loopback, and the lab's agents as
// fibercut reaches them, through a fake cluster whose only agent pod is
// on node n1 and which sends its requests straight to the handler; and on
// that node, a pod of lab podLab's DC hz-a in a network namespace, and the
// namespace as fibercut changes it through the agent.
type agentFixture struct {
	srv    *httptest.Server
	agents *kube.Agents
	token  string
	ns     *testNS
	pod    *testPod
	remote Namespace
}

func newAgentFixture(t *testing.T, labName, podLab string) *agentFixture {
	t.Helper()
	f := &agentFixture{token: kube.NewAgentToken(), ns: newTestNS(t, "10.99.0.2")}
	f.pod = newTestPod(t, f.ns, podLab, "hz-a")
	h, err := NewAgentHandler(f.token, slog.New(slog.NewTextHandler(tlog{t}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	agentPod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "agent-x1", Namespace: kube.Namespace(labName), UID: types.UID("agent-uid"),
			Labels: map[string]string{lab.LabelLab: labName, lab.LabelRole: kube.RoleAgent}},
		Spec:   corev1.PodSpec{NodeName: "n1"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	cs := fake.NewClientset(agentPod)
	f.agents = kube.NewAgents(cs, labName, func(ctx context.Context, pod, path, token string, body []byte) ([]byte, error) {
		if pod != "agent-x1" {
			return nil, fmt.Errorf("sent to pod %s, not the agent of node n1", pod)
		}
		return f.post(ctx, path, token, body)
	}, f.token)
	dc := lab.DC{ID: "hz-a", ContainerID: f.pod.uid, WANIP: netip.MustParseAddr("10.99.0.2"), Node: "n1", State: "running"}
	f.remote = &agentNS{agents: f.agents, lab: labName, dc: dc}
	return f
}

// post sends one request to the agent, as the pod proxy would.
func (f *agentFixture) post(ctx context.Context, path, token string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.srv.URL+"/"+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set(kube.AgentTokenHeader, token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return b, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return b, err
}

// TestAgentAppliesFaultsInItsNodesPods runs the agent's API on loopback
// against a real network namespace and a real freezer cgroup, through the
// same client fibercut's Kubernetes backend uses: a fault's sets and rules
// are written in the pod's namespace and removed again, the pod is frozen
// and thawed, and what the agent reports of its pods is what the kernel
// says.
func TestAgentAppliesFaultsInItsNodesPods(t *testing.T) {
	const labName = "agent-test"
	f := newAgentFixture(t, labName, labName)
	ns, pod, remote := f.ns, f.pod, f.remote

	adds := []setAdd{{Set: setDropIn, Addrs: addrs("10.99.0.5", "10.99.0.6")}}
	if err := remote.addFault("f1", adds, time.Minute); err != nil {
		t.Fatal(err)
	}
	// What the agent wrote is what this host writes: the same golden.
	if err := ns.conn.addFault("f2", adds, time.Minute); err != nil {
		t.Fatal(err)
	}
	ids, err := remote.faultIDs()
	if err != nil || !slices.Equal(ids, []string{"f1", "f2"}) {
		t.Fatalf("faultIDs through the agent = %v, %v; want [f1 f2]", ids, err)
	}
	local, err := ns.conn.elements()
	if err != nil {
		t.Fatal(err)
	}
	if len(local) == 0 {
		t.Fatal("no sets in the pod's namespace after an add through the agent")
	}
	if err := remote.removeFaults("f1"); err != nil {
		t.Fatal(err)
	}
	if ids, err := ns.conn.faultIDs(); err != nil || !slices.Equal(ids, []string{"f2"}) {
		t.Fatalf("after removing f1 through the agent, the namespace has %v, %v; want [f2]", ids, err)
	}
	if err := remote.addQdisc(qdiscSpec{RateBits: 8_000_000}); err != nil {
		t.Fatal(err)
	}
	if has, err := ns.conn.hasQdisc(); err != nil || !has {
		t.Fatalf("after a qdisc through the agent, hasQdisc = %v, %v", has, err)
	}
	if had, err := remote.removeQdisc(); err != nil || !had {
		t.Fatalf("removeQdisc through the agent = %v, %v; want it had one", had, err)
	}
	if had, err := remote.dropTable(); err != nil || !had {
		t.Fatalf("dropTable through the agent = %v, %v; want it had the table", had, err)
	}
	if has, err := ns.conn.hasTable(); err != nil || has {
		t.Fatalf("after dropTable through the agent, hasTable = %v, %v", has, err)
	}

	// Its pods, paused or not, as the kernel has them.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	look := func() kube.PodHere {
		t.Helper()
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: types.UID(pod.uid)}, Spec: corev1.PodSpec{NodeName: "n1"}}
		other := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "not-here"}, Spec: corev1.PodSpec{NodeName: "n1"}}
		got, err := f.agents.View(ctx, []*corev1.Pod{p, other})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := got["not-here"]; ok || len(got) != 1 {
			t.Fatalf("the agent's view = %v; want only %s", got, pod.uid)
		}
		return got[pod.uid]
	}
	if h := look(); h.Paused || h.Pid != 0 {
		t.Errorf("before a pause, the agent's view = %+v; want running, with no pid of its own", h)
	}
	var r kube.AgentReply
	if err := f.agents.Call(ctx, "n1", agentFreeze, agentPod{Lab: labName, DC: "hz-a", UID: pod.uid}, &r); err != nil || r.Error != "" {
		t.Fatalf("freeze through the agent: %v %q", err, r.Error)
	}
	if !pod.frozen(t) || !look().Paused {
		t.Fatal("the pod is not frozen after a freeze through the agent")
	}
	replies, err := f.agents.Each(ctx, agentThaw, agentThawReq{Lab: labName, DC: "hz-a"})
	if err != nil || !slices.Equal(replies["n1"].DCs, []string{"hz-a"}) {
		t.Fatalf("thaw through the agents = %v, %v; want hz-a thawed on n1", replies, err)
	}
	if pod.frozen(t) || look().Paused {
		t.Fatal("the pod is frozen after a thaw through the agent")
	}
}

// TestAgentRefuses checks what the agent will not do: act for a caller
// without the lab's token, act in a pod that is not the lab's DC (another
// lab's, or another DC's), read a body it does not know or one too large,
// or run an operation that does not exist. Each refusal says why.
func TestAgentRefuses(t *testing.T) {
	f := newAgentFixture(t, "agent-test", "other-lab")
	pod := f.pod
	ctx := context.Background()

	op := func(o agentOp) []byte {
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	valid := agentOp{agentPod: agentPod{Lab: "other-lab", DC: "hz-a", UID: pod.uid}, WAN: netip.MustParseAddr("10.99.0.2"), Op: opFaultIDs}
	if _, err := f.post(ctx, agentNamespace, f.token, op(valid)); err != nil {
		t.Fatalf("a valid request was refused: %v", err)
	}
	for _, c := range []struct {
		name, token string
		body        []byte
		want        string
	}{
		{"no token", "", op(valid), "401"},
		{"a wrong token", strings.Repeat("0", 64), op(valid), "401"},
		{"an unknown field", f.token, []byte(`{"lab":"other-lab","dc":"hz-a","uid":"x","op":"fault-ids","shell":"rm -rf /"}`), `unknown field "shell"`},
	} {
		if _, err := f.post(ctx, agentNamespace, c.token, c.body); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want an error with %q", c.name, err, c.want)
		}
	}
	for _, c := range []struct {
		name string
		op   agentOp
		want string
	}{
		{"another lab's pod", agentOp{agentPod: agentPod{Lab: "agent-test", DC: "hz-a", UID: pod.uid}, WAN: valid.WAN, Op: opFaultIDs}, "is not fibercut's"},
		{"another DC's pod", agentOp{agentPod: agentPod{Lab: "other-lab", DC: "sz-a", UID: pod.uid}, WAN: valid.WAN, Op: opFaultIDs}, "is not fibercut's"},
		{"a pod not on this node", agentOp{agentPod: agentPod{Lab: "other-lab", DC: "hz-a", UID: "no-such-pod"}, WAN: valid.WAN, Op: opFaultIDs}, "no process on this node"},
		{"no such operation", agentOp{agentPod: valid.agentPod, WAN: valid.WAN, Op: "exec"}, `no operation "exec"`},
		{"a fault id fibercut does not make", agentOp{agentPod: valid.agentPod, WAN: valid.WAN, Op: opRemoveFaults, IDs: []string{"f1_drop_in"}}, `fault id "f1_drop_in": want f and a number`},
		{"a negative timeout", agentOp{agentPod: valid.agentPod, WAN: valid.WAN, Op: opAddFault, ID: "f1", TimeoutNS: -1}, "timeout -1 ns: want 0 (none) or more"},
		{"no WAN address", agentOp{agentPod: valid.agentPod, Op: opFaultIDs}, "want the pod's IPv4 address"},
		{"an IPv6 address in a set", agentOp{agentPod: valid.agentPod, WAN: valid.WAN, Op: opAddFault, ID: "f1", Adds: []agentSet{{Set: setDropIn, Addrs: addrs("::1")}}}, "address ::1 in set drop_in: want IPv4"},
		{"a bad lab name", agentOp{agentPod: agentPod{Lab: "../x", DC: "hz-a", UID: pod.uid}, WAN: valid.WAN, Op: opFaultIDs}, "lab name"},
	} {
		b, err := f.post(ctx, agentNamespace, f.token, op(c.op))
		var r kube.AgentReply
		if err == nil {
			err = json.Unmarshal(b, &r)
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !strings.Contains(r.Error, c.want) {
			t.Errorf("%s: the agent answered %s; want an error with %q", c.name, b, c.want)
		}
	}
	// A body over the limit is refused before it is read whole.
	h, err := NewAgentHandler(f.token, nil)
	if err != nil {
		t.Fatal(err)
	}
	big := httptest.NewRequest(http.MethodPost, "/"+agentNamespace, bytes.NewReader(append([]byte(`{"ids":["`), append(bytes.Repeat([]byte("a"), agentBodyLimit), `"]}`...)...)))
	big.Header.Set(kube.AgentTokenHeader, f.token)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, big)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("a body over %d bytes: %d %s; want 413", agentBodyLimit, rec.Code, rec.Body)
	}
	if _, err := NewAgentHandler("short", nil); err == nil {
		t.Error("an agent took a 5-character token")
	}
	// The probe needs no token, and says nothing else.
	resp, err := http.Get(f.srv.URL + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz = %v, %v", resp, err)
	}
	if resp != nil {
		resp.Body.Close()
	}
}

// TestAgentEndsFaultsAtTheirDeadline: a pause and a qdisc applied through
// an agent with an end are ended by the agent itself when nobody heals
// them (the watchdog's host gone).
func TestAgentEndsFaultsAtTheirDeadline(t *testing.T) {
	const labName = "agent-test"
	f := newAgentFixture(t, labName, labName)
	var r kube.AgentReply
	req := agentFreezeReq{agentPod: agentPod{Lab: labName, DC: "hz-a", UID: f.pod.uid}, ForNS: forNS(time.Now().Add(300 * time.Millisecond))}
	if err := f.agents.Call(context.Background(), "n1", agentFreeze, req, &r); err != nil || r.Error != "" {
		t.Fatalf("freeze through the agent: %v %q", err, r.Error)
	}
	labtest.Eventually(t, 30*time.Second, "the pause thawed by the agent at its deadline", func() bool { return !f.pod.frozen(t) })
	if err := f.remote.addQdisc(qdiscSpec{RateBits: 8_000_000, Until: time.Now().Add(300 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	labtest.Eventually(t, 30*time.Second, "the qdisc removed by the agent at its deadline", func() bool {
		has, err := f.ns.conn.hasQdisc()
		return err == nil && !has
	})
}

// TestAgentDeadlinesMoveOnlyLater checks the agent's bookkeeping of
// deadlines, with none due during the test: a later fault on the same pod
// moves its end later, an earlier one leaves it, a heal forgets it (and
// only its own pod's and kind's), and a time already past ends a fault at
// once.
func TestAgentDeadlinesMoveOnlyLater(t *testing.T) {
	a := &agentServer{log: slog.New(slog.DiscardHandler), deadlines: map[deadlineKey]*deadline{}}
	ended := make(chan deadlineKey, 4)
	end := func(k deadlineKey) func(context.Context) error {
		return func(context.Context) error { ended <- k; return nil }
	}
	k := deadlineKey{"lab", "hz-a", "uid-1", "pause"}
	other := deadlineKey{"lab", "hz-b", "uid-2", "pause"}
	qdisc := deadlineKey{"lab", "hz-a", "uid-1", "qdisc"}
	a.mu.Lock()
	a.endAt(k, time.Hour, end(k))
	first := a.deadlines[k].at
	a.endAt(k, time.Minute, end(k))
	if got := a.deadlines[k].at; !got.Equal(first) {
		t.Errorf("an earlier end moved the deadline from %v to %v", first, got)
	}
	a.endAt(k, 2*time.Hour, end(k))
	if got := a.deadlines[k].at; !got.After(first) {
		t.Errorf("a later end left the deadline at %v", got)
	}
	a.endAt(other, time.Hour, end(other))
	a.endAt(qdisc, time.Hour, end(qdisc))
	a.endAt(deadlineKey{"lab", "sz-a", "uid-3", "pause"}, 0, end(k))
	a.forget(deadlineKey{lab: "lab", dc: "hz-a", what: "pause"})
	_, kept := a.deadlines[k]
	_, keptOther := a.deadlines[other]
	_, keptQdisc := a.deadlines[qdisc]
	if kept || !keptOther || !keptQdisc || len(a.deadlines) != 2 {
		t.Errorf("after a heal of hz-a's pause: deadlines %v; want hz-b's pause and hz-a's qdisc only", a.deadlines)
	}
	a.forget(deadlineKey{lab: "lab", what: "pause"})
	a.forget(deadlineKey{lab: "lab", what: "qdisc"})
	if len(a.deadlines) != 0 {
		t.Errorf("after a heal of the whole lab: deadlines %v", a.deadlines)
	}
	now := deadlineKey{"lab", "sh-a", "uid-4", "pause"}
	a.endAt(now, time.Duration(forNS(time.Now().Add(-time.Second))), end(now))
	a.mu.Unlock()
	select {
	case got := <-ended:
		if got != now {
			t.Errorf("ended %v, want %v", got, now)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a fault whose end was past was not ended")
	}
	select {
	case got := <-ended:
		t.Errorf("ended %v, which was moved or forgotten", got)
	default:
	}
}
