package faults

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/lab/kube"
)

// ErrNotOnKubernetes is returned for what faults do not do on a
// Kubernetes lab: set CPU weights (a catch-up's). The kubelet puts each
// pod's cgroup under its node's own, so a pod's cpu.shares weighs it only
// against the pods of its node, and each DC has a node of its own when
// there are enough (anti-affinity): a DC catching up there takes no cycles
// from the serving ones, and a lower weight would change nothing. (On
// labs/kube/cluster the five nodes share this host's cores, but each has
// its own cgroup root, which is the harness's, not fibercut's.)
var ErrNotOnKubernetes = errors.New("not on kubernetes")

// Via says how faults reach the pods of a lab on Kubernetes.
type Via string

// Ways to reach pods.
const (
	// ViaAgent goes through the lab's agent on each pod's node (the
	// DaemonSet `lab up` creates), by the API server's pod proxy: it works
	// on any cluster. The delay holder and the baseline WAN latency still
	// need the DC's process on this host.
	ViaAgent Via = "agent"
	// ViaHost enters the pods' namespaces and cgroups from this host, so
	// it reaches only pods whose processes run here (labs/kube/cluster's,
	// whose nodes share this host), and needs no API server to thaw.
	ViaHost Via = "host"
)

// Vias lists the valid ways, for flags and messages.
var Vias = []Via{ViaAgent, ViaHost}

// ParseVia reads a way's name.
func ParseVia(s string) (Via, error) {
	for _, v := range Vias {
		if string(v) == s {
			return v, nil
		}
	}
	return "", fmt.Errorf("faults: reach pods via %q: want %s or %s", s, ViaAgent, ViaHost)
}

// kubeBackend runs faults on a lab of a Kubernetes cluster, in its pods'
// network namespaces and cgroups, through the agents on their nodes or
// from this host (via).
type kubeBackend struct {
	c      *kube.Cluster
	via    Via
	agents *kube.Agents // ViaAgent's
}

// newKubeBackend returns the backend of c's lab; "" is ViaAgent.
func newKubeBackend(c *kube.Cluster, via Via) *kubeBackend {
	if via == "" {
		via = ViaAgent
	}
	b := &kubeBackend{c: c, via: via}
	if via == ViaAgent {
		b.agents = c.Agents()
	}
	return b
}

// NewKubeInjector returns an injector for a lab on Kubernetes, and the lab
// as it is now. It applies cut, isolate, partition and loss in the pods'
// network namespaces (the kernel ends them on time), a delay by NFQUEUE
// with its holder process on this host, and power-off (the DC's
// StatefulSet scaled to 0, its pod killed), pause (the pod's freezer
// cgroup frozen) and bandwidth with a watchdog that reaches the cluster
// through kubeconfig ("" for the default loading rules) to end them on
// time. via says how it reaches the pods. Its [Injector.SetWAN] holds the
// baseline WAN latency from this host, following the pods as they
// restart. A heal does not lower the CPU weight of the DCs catching up
// ([ErrNotOnKubernetes] says why).
func NewKubeInjector(ctx context.Context, c *kube.Cluster, kubeconfig string, via Via, store *Store) (*Injector, error) {
	if _, err := ParseVia(string(via)); err != nil {
		return nil, err
	}
	b := newKubeBackend(c, via)
	l, err := b.Inspect(ctx)
	if err != nil {
		return nil, err
	}
	in := NewInjectorFor(b, l, store)
	in.kube = &kubeOrders{Kubeconfig: kubeconfig, Via: via}
	in.arm = func(ctx context.Context, rec Record) (*Process, error) {
		return spawnDetached(ctx, watchdogEnv, watchdogOrders{Store: store.Path(), Lab: l.Name, ID: rec.ID, Incarnation: rec.Lab, Kube: in.kube})
	}
	in.keep = nil
	return in, nil
}

func (b *kubeBackend) Inspect(ctx context.Context) (*lab.Lab, error) { return b.c.Lab(ctx, b.view()) }

func (b *kubeBackend) view() kube.PodView {
	if b.via == ViaHost {
		return kube.OnHost
	}
	return b.look
}

// KubeView is the view of a lab's pods that its injector with via has:
// [kube.OnHost], or the agents'.
func KubeView(c *kube.Cluster, via Via) kube.PodView { return newKubeBackend(c, via).view() }

// look is ViaAgent's view: the agents say which pods they reach and which
// are paused, and a process of a pod on this host, where there is one,
// lets the delay holder and the WAN latency work from here.
func (b *kubeBackend) look(ctx context.Context, pods []*corev1.Pod) (map[string]kube.PodHere, error) {
	found, err := b.agents.View(ctx, pods)
	if found == nil {
		return nil, err
	}
	if here, err := kube.OnHost(ctx, pods); err == nil {
		for uid, h := range here {
			if f, ok := found[uid]; ok {
				f.Pid = h.Pid
				found[uid] = f
			}
		}
	}
	return found, err
}

func (b *kubeBackend) PowerOff(ctx context.Context, d lab.DC) error { return b.c.PowerOff(ctx, d.ID) }

func (b *kubeBackend) PowerOn(ctx context.Context, d lab.DC) error { return b.c.PowerOn(ctx, d.ID) }

// Pause freezes the DC's pod by its freezer cgroup, as `docker pause`
// does a container's; the kubelet sees a running pod. Through an agent,
// the agent also thaws it at until, should this host's watchdog be gone.
func (b *kubeBackend) Pause(ctx context.Context, d lab.DC, until time.Time) error {
	if b.via == ViaAgent {
		var r kube.AgentReply
		err := b.agents.Call(ctx, d.Node, agentFreeze, agentFreezeReq{agentPod: agentPod{Lab: b.c.Name(), DC: d.ID, UID: d.ContainerID}, ForNS: forNS(until)}, &r)
		if err == nil && r.Error != "" {
			err = errors.New(r.Error)
		}
		if err != nil {
			return fmt.Errorf("faults: pause dc %s through the agent on node %s: %w", d.ID, d.Node, err)
		}
		return nil
	}
	f, err := kube.PodFreezer(d.Pid, d.ContainerID)
	if err != nil {
		return fmt.Errorf("faults: pause dc %s: %w", d.ID, err)
	}
	if err := f.Set(ctx, true); err != nil {
		return fmt.Errorf("faults: pause dc %s: %w", d.ID, err)
	}
	return nil
}

// Resume thaws every pod of the DC that is frozen, found by its processes
// rather than through the API server's pod list: a terminating one too
// (the inventory no longer counts it, but it cannot die frozen). ViaAgent
// asks every node's agent; ViaHost looks on this host, and works with the
// cluster unreachable. A DC that is not frozen, or gone, is left as it is.
func (b *kubeBackend) Resume(ctx context.Context, d lab.DC) error {
	if b.via == ViaAgent {
		replies, err := b.agents.Each(ctx, agentThaw, agentThawReq{Lab: b.c.Name(), DC: d.ID})
		var errs []error
		for node, r := range replies {
			if r.Error != "" {
				errs = append(errs, fmt.Errorf("node %s: %s", node, r.Error))
			}
		}
		if err := errors.Join(append(errs, err)...); err != nil {
			return fmt.Errorf("faults: resume dc %s through the agents: %w", d.ID, err)
		}
		return nil
	}
	if _, err := kube.ThawHost(ctx, b.c.Name(), d.ID); err != nil {
		return fmt.Errorf("faults: resume dc %s: %w", d.ID, err)
	}
	return nil
}

func (b *kubeBackend) Namespace(d lab.DC) (Namespace, error) {
	if b.via == ViaAgent {
		if d.State != "running" || d.Node == "" {
			return nil, fmt.Errorf("faults: dc %s is not running (state %s)", d.ID, d.State)
		}
		return &agentNS{agents: b.agents, lab: b.c.Name(), dc: d}, nil
	}
	return openNS(d)
}

func (b *kubeBackend) SetCPUShares(context.Context, lab.DC, int64) error {
	return fmt.Errorf("faults: CPU weight: %w", ErrNotOnKubernetes)
}

// ThawKube thaws every paused DC of the lab, on this host and through
// every ready agent of it, and returns the DCs thawed: a paused pod cannot
// die, so a lab must be thawed before it is removed.
func ThawKube(ctx context.Context, c *kube.Cluster) ([]string, error) {
	thawed, err := kube.ThawHost(ctx, c.Name(), "")
	if err != nil {
		return thawed, err
	}
	replies, err := c.Agents().Each(ctx, agentThaw, agentThawReq{Lab: c.Name()})
	errs := []error{err}
	for node, r := range replies {
		thawed = append(thawed, r.DCs...)
		if r.Error != "" {
			errs = append(errs, fmt.Errorf("node %s: %s", node, r.Error))
		}
	}
	slices.Sort(thawed)
	return slices.Compact(thawed), errors.Join(errs...)
}
