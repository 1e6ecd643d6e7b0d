package faults

import (
	"context"
	"errors"
	"fmt"

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

// kubeBackend runs faults on a lab of a Kubernetes cluster whose DC pods
// run on this host, entering their network namespaces through the
// processes pids finds (on labs/kube/cluster, every pod). On a cluster of
// other machines this is the job of an agent on each node, which fibercut
// does not have yet.
type kubeBackend struct {
	c    *kube.Cluster
	pids kube.PIDFinder
}

// NewKubeInjector returns an injector for a lab on Kubernetes, and the lab
// as it is now. It applies cut, isolate, partition and loss in the pods'
// network namespaces (the kernel ends them on time), a delay by NFQUEUE
// with its holder process on this host, and power-off (the DC's
// StatefulSet scaled to 0, its pod killed), pause (the pod's freezer
// cgroup frozen) and bandwidth with a watchdog that reaches the cluster
// through kubeconfig ("" for the default loading rules) to end them on
// time. Its [Injector.SetWAN] holds the baseline WAN latency from this
// host, following the pods as they restart. A heal does not lower the CPU
// weight of the DCs catching up ([ErrNotOnKubernetes] says why).
func NewKubeInjector(ctx context.Context, c *kube.Cluster, pids kube.PIDFinder, kubeconfig string, store *Store) (*Injector, error) {
	b := &kubeBackend{c: c, pids: pids}
	l, err := b.Inspect(ctx)
	if err != nil {
		return nil, err
	}
	in := NewInjectorFor(b, l, store)
	in.kube = &kubeOrders{Kubeconfig: kubeconfig}
	in.arm = func(ctx context.Context, rec Record) (*Process, error) {
		return spawnDetached(ctx, watchdogEnv, watchdogOrders{Store: store.Path(), Lab: l.Name, ID: rec.ID, Incarnation: rec.Lab, Kube: in.kube})
	}
	in.keep = nil
	return in, nil
}

func (b *kubeBackend) Inspect(ctx context.Context) (*lab.Lab, error) { return b.c.Lab(ctx, b.pids) }

func (b *kubeBackend) PowerOff(ctx context.Context, d lab.DC) error { return b.c.PowerOff(ctx, d.ID) }

func (b *kubeBackend) PowerOn(ctx context.Context, d lab.DC) error { return b.c.PowerOn(ctx, d.ID) }

// Pause freezes the DC's pod by its freezer cgroup on this host, as
// `docker pause` does a container's; the kubelet sees a running pod.
func (b *kubeBackend) Pause(ctx context.Context, d lab.DC) error {
	f, err := kube.PodFreezer(d.Pid, d.ContainerID)
	if err != nil {
		return fmt.Errorf("faults: pause dc %s: %w", d.ID, err)
	}
	if err := f.Set(ctx, true); err != nil {
		return fmt.Errorf("faults: pause dc %s: %w", d.ID, err)
	}
	return nil
}

// Resume thaws every pod of the DC frozen on this host, found by its
// processes rather than through the API server: a terminating one too
// (the inventory no longer counts it, but it cannot die frozen), and with
// the cluster unreachable. A DC that is not frozen, or gone, is left as it
// is.
func (b *kubeBackend) Resume(ctx context.Context, d lab.DC) error {
	if _, err := kube.ThawHost(ctx, b.c.Name(), d.ID); err != nil {
		return fmt.Errorf("faults: resume dc %s: %w", d.ID, err)
	}
	return nil
}

func (b *kubeBackend) Namespace(d lab.DC) (Namespace, error) { return openNS(d) }

func (b *kubeBackend) SetCPUShares(context.Context, lab.DC, int64) error {
	return fmt.Errorf("faults: CPU weight: %w", ErrNotOnKubernetes)
}
