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
	WAN       netip.Addr  `json:"wan"`
	Op        string      `json:"op"`
	ID        string      `json:"id,omitempty"`
	Adds      []agentSet  `json:"adds,omitempty"`
	TimeoutMS int64       `json:"timeout_ms,omitempty"`
	IDs       []string    `json:"ids,omitempty"`
	Qdisc     *agentQdisc `json:"qdisc,omitempty"`
}

type agentSet struct {
	Set   string       `json:"set"`
	Addrs []netip.Addr `json:"addrs"`
}

type agentQdisc struct {
	RateBits int64     `json:"rate_bits,omitempty"`
	DelayNS  int64     `json:"delay_ns,omitempty"`
	JitterNS int64     `json:"jitter_ns,omitempty"`
	Until    time.Time `json:"until,omitzero"`
}

// agentFreezeReq freezes a pod, until a time if it is not zero.
type agentFreezeReq struct {
	agentPod
	Until time.Time `json:"until,omitzero"`
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
		pods, err := kube.LookHere(req.UIDs)
		return kube.PodsReply{Pods: pods}, err
	}))
	mux.Handle("POST /"+agentNamespace, agentEndpoint(a, func(ctx context.Context, req agentOp) (any, error) {
		return a.namespaceOp(req)
	}))
	mux.Handle("POST /"+agentFreeze, agentEndpoint(a, func(ctx context.Context, req agentFreezeReq) (any, error) {
		_, f, err := kube.LabPod(req.Lab, req.DC, req.UID)
		if err != nil {
			return nil, err
		}
		if err := f.Set(ctx, true); err != nil {
			return nil, err
		}
		a.endAt(deadlineKey{req.Lab, req.DC, "pause"}, req.Until, func(ctx context.Context) error {
			_, err := kube.ThawHost(ctx, req.Lab, req.DC)
			return err
		})
		return kube.AgentReply{}, nil
	}))
	mux.Handle("POST /"+agentThaw, agentEndpoint(a, func(ctx context.Context, req agentThawReq) (any, error) {
		if err := lab.ValidateName(req.Lab); err != nil {
			return nil, err
		}
		dcs, err := kube.ThawHost(ctx, req.Lab, req.DC)
		if err == nil {
			a.forget(req.Lab, req.DC, "pause")
		}
		return kube.AgentReply{DCs: dcs}, err
	}))
	return mux, nil
}

type agentServer struct {
	token string
	log   *slog.Logger

	mu        sync.Mutex
	deadlines map[deadlineKey]*deadline
}

// deadlineKey names what a deadline ends: a pause or a qdisc of a DC.
type deadlineKey struct{ lab, dc, what string }

// deadline is when the agent ends a fault itself. The watchdog on the
// host that applied it ends it on time too; the agent's is for when that
// host is gone, since a pause or a qdisc, unlike an nftables element,
// does not expire in the kernel.
type deadline struct {
	at    time.Time
	timer *time.Timer
}

// endAt has end run at the time given (nothing when zero). A deadline for
// the same pause or qdisc already set is moved only later: a fault is
// never ended before a later one on the same DC wants it over.
func (a *agentServer) endAt(k deadlineKey, at time.Time, end func(context.Context) error) {
	if at.IsZero() {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if d, ok := a.deadlines[k]; ok {
		if !at.After(d.at) {
			return
		}
		d.timer.Stop()
	}
	d := &deadline{at: at}
	d.timer = time.AfterFunc(time.Until(at), func() {
		a.mu.Lock()
		if a.deadlines[k] != d {
			a.mu.Unlock()
			return
		}
		delete(a.deadlines, k)
		a.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), agentOpTimeout)
		defer cancel()
		if err := end(ctx); err != nil {
			a.log.Warn("deadline passed: could not end it", "lab", k.lab, "dc", k.dc, "fault", k.what, "error", err)
			return
		}
		a.log.Info("deadline passed: ended it", "lab", k.lab, "dc", k.dc, "fault", k.what)
	})
	a.deadlines[k] = d
}

// forget drops a deadline: what it would end was ended.
func (a *agentServer) forget(labName, dc, what string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, d := range a.deadlines {
		if k.lab == labName && (dc == "" || k.dc == dc) && k.what == what {
			d.timer.Stop()
			delete(a.deadlines, k)
		}
	}
}

// namespaceOp runs a Namespace call and keeps the qdisc's deadline.
func (a *agentServer) namespaceOp(req agentOp) (kube.AgentReply, error) {
	r, err := runAgentOp(req)
	if err != nil {
		return r, err
	}
	switch req.Op {
	case opAddQdisc:
		remove := req
		remove.Op, remove.Qdisc = opRemoveQdisc, nil
		a.endAt(deadlineKey{req.Lab, req.DC, "qdisc"}, req.Qdisc.Until, func(context.Context) error {
			_, err := runAgentOp(remove)
			return err
		})
	case opRemoveQdisc:
		a.forget(req.Lab, req.DC, "qdisc")
	}
	return r, nil
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
			a.log.Warn("refused: no or a wrong token", "path", r.URL.Path, "from", r.RemoteAddr)
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
			a.log.Warn("refused: bad body", "path", r.URL.Path, "from", r.RemoteAddr, "error", err)
			http.Error(w, "fibercut agent: bad request body: "+err.Error(), code)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), agentOpTimeout)
		defer cancel()
		start := time.Now()
		out, err := do(ctx, req)
		if err != nil {
			out = kube.AgentReply{Error: err.Error()}
			a.log.Warn("failed", "path", r.URL.Path, "request", fmt.Sprintf("%+v", req), "took", time.Since(start), "error", err)
		} else if r.URL.Path != "/"+agentPods { // asked every few seconds
			a.log.Info("done", "path", r.URL.Path, "request", fmt.Sprintf("%+v", req), "took", time.Since(start))
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	})
}

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
		err = ns.addFault(req.ID, adds, time.Duration(req.TimeoutMS)*time.Millisecond)
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
	_, err := n.do(agentOp{Op: opAddFault, ID: id, Adds: sets, TimeoutMS: timeout.Milliseconds()})
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
	_, err := n.do(agentOp{Op: opAddQdisc, Qdisc: &agentQdisc{RateBits: q.RateBits, DelayNS: int64(q.Delay), JitterNS: int64(q.Jitter), Until: q.Until}})
	return err
}

func (n *agentNS) removeQdisc() (bool, error) {
	r, err := n.do(agentOp{Op: opRemoveQdisc})
	return r.Had, err
}

func (n *agentNS) Close() {}
