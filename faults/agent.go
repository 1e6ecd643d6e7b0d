package faults

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/lab/kube"
)

// The agent's API: what `fibercut agent` serves on its node for a lab on
// Kubernetes, and what [Namespace] and [Backend] send it. Each request
// names the DC's pod by UID and by lab and DC, and the agent acts only on a
// pod of its node whose processes say they are that lab's DC
// ([kube.LabPod]); nothing is kept between requests.
const (
	agentPods      = "v1/pods"
	agentNamespace = "v1/namespace"
	agentFreeze    = "v1/freeze"
	agentThaw      = "v1/thaw"
)

// Operations of v1/namespace, one per [Namespace] method.
const (
	opAddFault     = "add-fault"
	opRemoveFaults = "remove-faults"
	opFaultIDs     = "fault-ids"
	opDropTable    = "drop-table"
	opAddQdisc     = "add-qdisc"
	opRemoveQdisc  = "remove-qdisc"
)

// agentPod names the pod a request acts on.
type agentPod struct {
	Lab string `json:"lab"`
	DC  string `json:"dc"`
	UID string `json:"uid"`
}

// agentOp is one [Namespace] call, in a DC pod whose WAN address is WAN.
type agentOp struct {
	agentPod
	WAN  netip.Addr `json:"wan"`
	Op   string     `json:"op"`
	ID   string     `json:"id,omitempty"`
	Adds []agentSet `json:"adds,omitempty"`
	// TimeoutNS is how long the elements added live; 0: until removed.
	TimeoutNS int64       `json:"timeout_ns,omitempty"`
	IDs       []string    `json:"ids,omitempty"`
	Qdisc     *agentQdisc `json:"qdisc,omitempty"`
}

type agentSet struct {
	Set   string       `json:"set"`
	Addrs []netip.Addr `json:"addrs"`
}

// agentQdisc is a qdisc, and ForNS how long the agent keeps it (0: until
// removed). Durations, not times: the node's clock need not be this
// host's.
type agentQdisc struct {
	RateBits int64 `json:"rate_bits,omitempty"`
	DelayNS  int64 `json:"delay_ns,omitempty"`
	JitterNS int64 `json:"jitter_ns,omitempty"`
	ForNS    int64 `json:"for_ns,omitempty"`
}

// agentFreezeReq freezes a pod, for ForNS (0: until thawed).
type agentFreezeReq struct {
	agentPod
	ForNS int64 `json:"for_ns,omitempty"`
}

// forNS is the time left until until, as the agent's requests have it: 0
// for never, and at least 1 ns for a time already past (end it now).
func forNS(until time.Time) int64 {
	if until.IsZero() {
		return 0
	}
	return max(1, int64(time.Until(until)))
}

// Limits of what an agent reads.
const (
	agentMaxUIDs  = 256 // pods in one /v1/pods
	agentMaxAddrs = 4096
)

// check refuses a pod named badly.
func (p agentPod) check() error {
	if err := lab.ValidateName(p.Lab); err != nil {
		return err
	}
	if p.DC == "" || len(p.DC) > 63 {
		return fmt.Errorf("faults: agent: dc %q: want a DC id of 1 to 63 characters", p.DC)
	}
	if p.UID == "" || len(p.UID) > 64 {
		return fmt.Errorf("faults: agent: pod uid %q: want a pod's UID", p.UID)
	}
	return nil
}

// check refuses what no [Namespace] call sends.
func (o agentOp) check() error {
	if err := o.agentPod.check(); err != nil {
		return err
	}
	if !o.WAN.Is4() {
		return fmt.Errorf("faults: agent: dc %s: WAN address %v: want the pod's IPv4 address", o.DC, o.WAN)
	}
	ids := o.IDs
	if o.ID != "" || o.Op == opAddFault {
		ids = append([]string{o.ID}, ids...)
	}
	for _, id := range ids {
		if !validFaultID(id) {
			return fmt.Errorf("faults: agent: fault id %q: want f and a number, as fibercut names faults", id)
		}
	}
	n := 0
	for _, a := range o.Adds {
		for _, ad := range a.Addrs {
			if !ad.Is4() {
				return fmt.Errorf("faults: agent: address %v in set %s: want IPv4", ad, a.Set)
			}
		}
		n += len(a.Addrs)
	}
	if n > agentMaxAddrs {
		return fmt.Errorf("faults: agent: %d addresses in one fault: at most %d", n, agentMaxAddrs)
	}
	if o.TimeoutNS < 0 {
		return fmt.Errorf("faults: agent: timeout %d ns: want 0 (none) or more", o.TimeoutNS)
	}
	if q := o.Qdisc; q != nil && (q.RateBits < 0 || q.DelayNS < 0 || q.JitterNS < 0 || q.ForNS < 0) {
		return fmt.Errorf("faults: agent: qdisc %+v: want no negative value", *q)
	}
	return nil
}

// validFaultID tells an id of the form nextID gives: f1, f2, ...
func validFaultID(id string) bool {
	n, ok := strings.CutPrefix(id, "f")
	if !ok || n == "" || len(n) > 18 {
		return false
	}
	for _, c := range n {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// agentThawReq asks for every frozen pod of the lab's DC on the node.
type agentThawReq struct {
	Lab string `json:"lab"`
	DC  string `json:"dc"`
}

// agentBodyLimit bounds a request's body: the largest is a fault's sets,
// a few addresses each.
const agentBodyLimit = 1 << 20

// agentOpTimeout bounds what one request does on the node.
const agentOpTimeout = 10 * time.Second

// NewAgentHandler returns the agent's HTTP API, which answers only
// requests carrying token in [kube.AgentTokenHeader] (but GET /healthz,
// the kubelet's probe). It acts in the pods of this host, so it needs what
// the agent's DaemonSet grants: the host's PID namespace, NET_ADMIN and
// SYS_ADMIN, and the host's cgroups at [kube.CgroupRoot].
// Every request is logged to log (nil for none), with what it asked and
// how it ended: the record of what fibercut did on the node.
func NewAgentHandler(token string, log *slog.Logger) (http.Handler, error) {
	if len(token) < 16 {
		return nil, fmt.Errorf("faults: agent token: want at least 16 characters, have %d", len(token))
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &agentServer{token: token, log: log, deadlines: map[deadlineKey]*deadline{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.Handle("POST /"+agentPods, agentEndpoint(a, func(ctx context.Context, req kube.PodsRequest) (any, error) {
		if len(req.UIDs) > agentMaxUIDs {
			return nil, fmt.Errorf("faults: agent: %d pods asked for: at most %d", len(req.UIDs), agentMaxUIDs)
		}
		pods, err := kube.LookHere(req.UIDs)
		if err != nil {
			return nil, err
		}
		return kube.PodsReply{Pods: pods}, nil
	}))
	mux.Handle("POST /"+agentNamespace, agentEndpoint(a, func(ctx context.Context, req agentOp) (any, error) {
		if err := req.check(); err != nil {
			return nil, err
		}
		return a.namespaceOp(req)
	}))
	mux.Handle("POST /"+agentFreeze, agentEndpoint(a, func(ctx context.Context, req agentFreezeReq) (any, error) {
		if err := req.check(); err != nil {
			return nil, err
		}
		if req.ForNS < 0 {
			return nil, fmt.Errorf("faults: agent: pause for %d ns: want 0 (until thawed) or more", req.ForNS)
		}
		return kube.AgentReply{}, a.freeze(ctx, req)
	}))
	mux.Handle("POST /"+agentThaw, agentEndpoint(a, func(ctx context.Context, req agentThawReq) (any, error) {
		if err := lab.ValidateName(req.Lab); err != nil {
			return nil, err
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		dcs, err := kube.ThawHost(ctx, req.Lab, req.DC)
		if err == nil {
			a.forget(deadlineKey{lab: req.Lab, dc: req.DC, what: "pause"})
		}
		return kube.AgentReply{DCs: dcs}, err
	}))
	return mux, nil
}

type agentServer struct {
	token string
	log   *slog.Logger

	// mu is held across every change a deadline is about (a freeze, a
	// thaw, a qdisc added or removed) and its deadline's bookkeeping,
	// and by a deadline's timer while it ends the fault: neither can
	// slip between the other's steps.
	mu        sync.Mutex
	deadlines map[deadlineKey]*deadline

	refusedMu sync.Mutex
	refused   int       // requests refused since lastLog
	lastLog   time.Time // of a refusal
}

// deadlineKey names what a deadline ends: a pause or a qdisc of a DC's
// pod.
type deadlineKey struct{ lab, dc, uid, what string }

// deadline is when the agent ends a fault itself. The watchdog on the
// host that applied it ends it on time too; the agent's is for when that
// host is gone, since a pause or a qdisc, unlike an nftables element,
// does not expire in the kernel.
type deadline struct {
	at    time.Time
	timer *time.Timer
}

// endAt has end run after the time given (never when 0), by the agent's
// own clock. A deadline for the same pause or qdisc already set is moved
// only later: a fault is never ended before a later one on the same pod
// wants it over. a.mu must be held.
func (a *agentServer) endAt(k deadlineKey, after time.Duration, end func(context.Context) error) {
	if after <= 0 {
		return
	}
	at := time.Now().Add(after)
	if d, ok := a.deadlines[k]; ok {
		if !at.After(d.at) {
			return
		}
		d.timer.Stop()
	}
	d := &deadline{at: at}
	d.timer = time.AfterFunc(after, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.deadlines[k] != d {
			return // moved, or forgotten, while this timer fired
		}
		delete(a.deadlines, k)
		ctx, cancel := context.WithTimeout(context.Background(), agentOpTimeout)
		defer cancel()
		if err := end(ctx); err != nil {
			a.log.Warn("deadline passed: could not end it", "lab", k.lab, "dc", k.dc, "pod", k.uid, "fault", k.what, "error", err)
			return
		}
		a.log.Info("deadline passed: ended it", "lab", k.lab, "dc", k.dc, "pod", k.uid, "fault", k.what)
	})
	a.deadlines[k] = d
}

// forget drops the deadlines of what was ended: those of k's lab and kind,
// and of its DC and pod where k names them. a.mu must be held.
func (a *agentServer) forget(k deadlineKey) {
	for dk, d := range a.deadlines {
		if dk.lab == k.lab && dk.what == k.what && (k.dc == "" || dk.dc == k.dc) && (k.uid == "" || dk.uid == k.uid) {
			d.timer.Stop()
			delete(a.deadlines, dk)
		}
	}
}

// freeze freezes the pod req names and keeps its deadline. A freeze that
// fails is undone: nothing is left half-frozen.
func (a *agentServer) freeze(ctx context.Context, req agentFreezeReq) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, f, err := kube.LabPod(req.Lab, req.DC, req.UID)
	if err != nil {
		return err
	}
	if err := f.Set(ctx, true); err != nil {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), agentOpTimeout)
		defer cancel()
		if terr := f.Set(tctx, false); terr != nil {
			return errors.Join(err, fmt.Errorf("and thawing it again: %w", terr))
		}
		return err
	}
	a.endAt(deadlineKey{req.Lab, req.DC, req.UID, "pause"}, time.Duration(req.ForNS), func(ctx context.Context) error {
		_, err := kube.ThawHost(ctx, req.Lab, req.DC)
		return err
	})
	return nil
}

// namespaceOp runs a Namespace call, and for a qdisc keeps its deadline.
func (a *agentServer) namespaceOp(req agentOp) (kube.AgentReply, error) {
	if req.Op != opAddQdisc && req.Op != opRemoveQdisc {
		return runAgentOp(req)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	r, err := runAgentOp(req)
	if err != nil {
		return r, err
	}
	k := deadlineKey{req.Lab, req.DC, req.UID, "qdisc"}
	if req.Op == opRemoveQdisc {
		a.forget(k)
		return r, nil
	}
	remove := req
	remove.Op, remove.Qdisc = opRemoveQdisc, nil
	a.endAt(k, time.Duration(req.Qdisc.ForNS), func(context.Context) error {
		_, err := runAgentOp(remove)
		return err
	})
	return r, nil
}

// refusal logs a refused request, at most once a second with the number
// refused since: a caller without the token cannot flood the log.
func (a *agentServer) refusal(r *http.Request, why string, err error) {
	a.refusedMu.Lock()
	defer a.refusedMu.Unlock()
	a.refused++
	if time.Since(a.lastLog) < time.Second {
		return
	}
	a.log.Warn("refused", "why", why, "path", r.URL.Path, "from", r.RemoteAddr, "error", err, "refused_since_last_line", a.refused)
	a.refused, a.lastLog = 0, time.Now()
}

// agentEndpoint checks a request's token and reads its body, strictly,
// into a Req, runs do and writes its answer. A failed operation is
// answered 200 with its error in [kube.AgentReply], so that the message
// reaches the caller through the API server's proxy as it was written; a
// request the agent cannot read is answered 4xx.
func agentEndpoint[Req any](a *agentServer, do func(context.Context, Req) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get(kube.AgentTokenHeader)
		if subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) != 1 {
			a.refusal(r, "no or a wrong token", nil)
			http.Error(w, "fibercut agent: missing or wrong "+kube.AgentTokenHeader, http.StatusUnauthorized)
			return
		}
		var req Req
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, agentBodyLimit))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			code := http.StatusBadRequest
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				code = http.StatusRequestEntityTooLarge
			}
			a.refusal(r, "bad body", err)
			http.Error(w, "fibercut agent: bad request body: "+err.Error(), code)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), agentOpTimeout)
		defer cancel()
		start := time.Now()
		out, err := do(ctx, req)
		if err != nil {
			out = kube.AgentReply{Error: err.Error()}
			a.log.Warn("failed", "path", r.URL.Path, "request", logJSON(req), "took", time.Since(start), "error", err)
		} else if r.URL.Path != "/"+agentPods { // asked every few seconds
			a.log.Info("done", "path", r.URL.Path, "request", logJSON(req), "took", time.Since(start))
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	})
}

// logJSON is a request as the log has it: as JSON, an object of its own
// in a JSON log and its text in a text one.
func logJSON(v any) rawJSON {
	b, _ := json.Marshal(v)
	return b
}

type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }
func (r rawJSON) MarshalText() ([]byte, error) { return r, nil }

// runAgentOp does one Namespace call in the pod req names, on this host.
func runAgentOp(req agentOp) (kube.AgentReply, error) {
	if !req.WAN.IsValid() {
		return kube.AgentReply{}, fmt.Errorf("faults: agent: dc %s: no WAN address", req.DC)
	}
	pid, _, err := kube.LabPod(req.Lab, req.DC, req.UID)
	if err != nil {
		return kube.AgentReply{}, err
	}
	ns, err := openNS(lab.DC{ID: req.DC, State: "running", Pid: pid, WANIP: req.WAN})
	if err != nil {
		return kube.AgentReply{}, err
	}
	defer ns.Close()
	var r kube.AgentReply
	switch req.Op {
	case opAddFault:
		adds := make([]setAdd, len(req.Adds))
		for i, a := range req.Adds {
			adds[i] = setAdd(a)
		}
		err = ns.addFault(req.ID, adds, time.Duration(req.TimeoutNS))
	case opRemoveFaults:
		err = ns.removeFaults(req.IDs...)
	case opFaultIDs:
		r.IDs, err = ns.faultIDs()
	case opDropTable:
		r.Had, err = ns.dropTable()
	case opAddQdisc:
		if req.Qdisc == nil {
			return r, fmt.Errorf("faults: agent: %s with no qdisc", opAddQdisc)
		}
		err = ns.addQdisc(qdiscSpec{RateBits: req.Qdisc.RateBits, Delay: time.Duration(req.Qdisc.DelayNS), Jitter: time.Duration(req.Qdisc.JitterNS)})
	case opRemoveQdisc:
		r.Had, err = ns.removeQdisc()
	default:
		return r, fmt.Errorf("faults: agent: no operation %q: want one of %s, %s, %s, %s, %s, %s",
			req.Op, opAddFault, opRemoveFaults, opFaultIDs, opDropTable, opAddQdisc, opRemoveQdisc)
	}
	return r, err
}

// agentNS is a DC's network namespace on another node, changed through
// the agent there.
type agentNS struct {
	agents *kube.Agents
	lab    string
	dc     lab.DC
}

func (n *agentNS) do(op agentOp) (kube.AgentReply, error) {
	op.agentPod = agentPod{Lab: n.lab, DC: n.dc.ID, UID: n.dc.ContainerID}
	op.WAN = n.dc.WANIP
	var r kube.AgentReply
	if err := n.agents.Call(context.Background(), n.dc.Node, agentNamespace, op, &r); err != nil {
		return r, fmt.Errorf("faults: dc %s: %w", n.dc.ID, err)
	}
	if r.Error != "" {
		return r, fmt.Errorf("faults: dc %s, through the agent on node %s: %s", n.dc.ID, n.dc.Node, r.Error)
	}
	return r, nil
}

func (n *agentNS) addFault(id string, adds []setAdd, timeout time.Duration) error {
	sets := make([]agentSet, len(adds))
	for i, a := range adds {
		sets[i] = agentSet(a)
	}
	_, err := n.do(agentOp{Op: opAddFault, ID: id, Adds: sets, TimeoutNS: int64(timeout)})
	return err
}

func (n *agentNS) removeFaults(ids ...string) error {
	_, err := n.do(agentOp{Op: opRemoveFaults, IDs: ids})
	return err
}

func (n *agentNS) faultIDs() ([]string, error) {
	r, err := n.do(agentOp{Op: opFaultIDs})
	return r.IDs, err
}

func (n *agentNS) dropTable() (bool, error) {
	r, err := n.do(agentOp{Op: opDropTable})
	return r.Had, err
}

func (n *agentNS) addQdisc(q qdiscSpec) error {
	_, err := n.do(agentOp{Op: opAddQdisc, Qdisc: &agentQdisc{RateBits: q.RateBits, DelayNS: int64(q.Delay), JitterNS: int64(q.Jitter), ForNS: forNS(q.Until)}})
	return err
}

func (n *agentNS) removeQdisc() (bool, error) {
	r, err := n.do(agentOp{Op: opRemoveQdisc})
	return r.Had, err
}

func (n *agentNS) Close() {}
