package drill

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/fibercut/fibercut/faults"
	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/lab/kube"
)

// Env is a place a drill runs other than a Docker lab: it brings the lab
// up and gives its inventory (with the gateway) and a fault injector.
type Env interface {
	// Up brings the lab up, healthy, and returns it with an injector
	// whose faults are recorded in store.
	Up(ctx context.Context, store *faults.Store) (*lab.Lab, *faults.Injector, error)
	// Inspect returns the lab as it is now.
	Inspect(ctx context.Context) (*lab.Lab, error)
}

// KubeEnv runs a drill on a lab of a Kubernetes cluster from this host,
// which must reach the pods' addresses and enter their network namespaces
// (labs/kube/cluster's host does both). Its faults are those
// [faults.NewKubeInjector] applies. The hall's audience record is served on
// the gateway pod's port 8081. Options.Trusted must be the address the
// gateway sees this host's requests come from ([kube.LocalAddr] on
// labs/kube/cluster): the load and the record's reader come from there and
// are not the hall.
type KubeEnv struct {
	Cluster *kube.Cluster
	// Options are the lab's objects'; Record is set by the environment.
	Options kube.Options
	// Kubeconfig is where the faults' watchdogs find the cluster; "" for
	// the default loading rules.
	Kubeconfig string
	// Via is how the faults reach the pods.
	Via faults.Via
	// ReadyTimeout bounds the wait for a healthy lab; 5 minutes when 0.
	ReadyTimeout time.Duration
}

// Up applies the lab's objects and waits until every DC's member says the
// ledger is ok and the gateway is ready.
func (e *KubeEnv) Up(ctx context.Context, store *faults.Store) (*lab.Lab, *faults.Injector, error) {
	o := e.Options
	o.Record = true
	objs, err := kube.Build(o)
	if err != nil {
		return nil, nil, err
	}
	if err := e.Cluster.Apply(ctx, objs); err != nil {
		return nil, nil, err
	}
	wait := e.ReadyTimeout
	if wait <= 0 {
		wait = 5 * time.Minute
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var l *lab.Lab
	for {
		if l, err = e.Inspect(wctx); err == nil {
			// A rollout of the gateway (its settings changed) must be
			// over: the old pod still answers for a while.
			var agents kube.AgentStatus
			if l.Gateway.State != "running" {
				err = errors.New("the gateway's rollout is not over")
			} else if e.Via == faults.ViaHost {
				err = l.WaitHealthy(wctx, 2*time.Second)
			} else if agents, err = e.Cluster.AgentStatus(wctx); err == nil && !agents.Up() {
				err = fmt.Errorf("the agents are not ready: %d of %d nodes", agents.Ready, agents.Nodes)
			} else if err == nil {
				err = l.WaitHealthy(wctx, 2*time.Second)
			}
			if err == nil {
				break
			}
		}
		select {
		case <-wctx.Done():
			return nil, nil, fmt.Errorf("drill: lab %q on kubernetes not healthy: %w", objs.Namespace.Labels[lab.LabelLab], err)
		case <-time.After(time.Second):
		}
	}
	in, err := faults.NewKubeInjector(ctx, e.Cluster, e.Kubeconfig, e.Via, store)
	if err != nil {
		return nil, nil, err
	}
	return l, in, nil
}

// Inspect returns the lab with its gateway pod as the gateway.
func (e *KubeEnv) Inspect(ctx context.Context) (*lab.Lab, error) {
	l, err := e.Cluster.Lab(ctx, faults.KubeView(e.Cluster, e.Via))
	if err != nil {
		return nil, err
	}
	gw, err := e.Cluster.Gateway(ctx)
	if err != nil {
		return nil, err
	}
	a, err := netip.ParseAddr(gw.IP)
	if err != nil {
		return l, errors.New("drill: the gateway has no pod address yet")
	}
	state := "running"
	if !gw.Ready {
		state = "starting"
	}
	l.Gateway = &lab.Gateway{Container: gw.Pod, WANIP: a, MgmtIP: a, State: state}
	return l, nil
}
