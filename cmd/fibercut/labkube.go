package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/rest"

	"github.com/fibercut/fibercut/faults"
	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/lab/kube"
	"github.com/fibercut/fibercut/topology"
)

// Lab backends.
const (
	backendDocker     = "docker"
	backendKubernetes = "kubernetes"
)

// backendFlags choose where a lab runs.
type backendFlags struct {
	backend, kubeconfig, via string
}

func (b *backendFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&b.backend, "backend", backendDocker, "where the lab runs: docker (this host's engine) or kubernetes (the cluster --kubeconfig names)")
	cmd.Flags().StringVar(&b.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster, with --backend kubernetes (default: $KUBECONFIG, ~/.kube/config)")
	cmd.Flags().StringVar(&b.via, "via", string(faults.ViaAgent), "how faults reach the pods, with --backend kubernetes: agent (the lab's agent on each node, through the API server) or host (from this host, into pods whose processes run here, as on labs/kube/cluster)")
}

// reach returns the way --via names.
func (b *backendFlags) reach() (faults.Via, error) { return faults.ParseVia(b.via) }

// kubernetes reports whether the Kubernetes backend is chosen, and checks
// the flags: an unknown backend, or flags of the other one.
func (b *backendFlags) kubernetes(cmd *cobra.Command, dockerOnly ...string) (bool, error) {
	switch b.backend {
	case backendDocker:
		for _, f := range []string{"kubeconfig", "via"} {
			if cmd.Flags().Changed(f) {
				return false, fmt.Errorf("--%s is for --backend kubernetes", f)
			}
		}
		return false, nil
	case backendKubernetes:
		if _, err := b.reach(); err != nil {
			return false, err
		}
		for _, f := range dockerOnly {
			if cmd.Flags().Changed(f) {
				return false, fmt.Errorf("--%s is for the docker backend, not kubernetes", f)
			}
		}
		return true, nil
	}
	return false, fmt.Errorf("--backend %q: want docker or kubernetes", b.backend)
}

// connect returns the named lab on the cluster.
func (b *backendFlags) connect(name string) (*kube.Cluster, error) {
	c, _, err := b.connectConfig(name)
	return c, err
}

// connectConfig is connect that also returns the client's configuration.
func (b *backendFlags) connectConfig(name string) (*kube.Cluster, *rest.Config, error) {
	cs, cfg, err := kube.Connect(b.kubeconfig)
	if err != nil {
		return nil, nil, err
	}
	return kube.NewCluster(cs, name), cfg, nil
}

// kubeStore is where the faults of lab name on Kubernetes are recorded:
// apart from a Docker lab's of the same name.
func kubeStore(name string) (*faults.Store, error) { return faults.OpenStore("kube-" + name) }

// kubeFlags are what the objects of a lab on Kubernetes are made of.
type kubeFlags struct {
	image, pull, placement, class, size, gwService string
	clientLimits                                   string // lab up's --client-limits
}

// kubeFlagNames are kubeFlags' flags, which the docker backend refuses.
var kubeFlagNames = []string{"image", "pull-policy", "placement", "storage-class", "data-size", "gateway-service"}

func (k *kubeFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&k.image, "image", kube.DefaultImage, "node image the pods run (kubernetes)")
	cmd.Flags().StringVar(&k.pull, "pull-policy", string(corev1.PullIfNotPresent), "image pull policy: Always, IfNotPresent or Never (kubernetes)")
	cmd.Flags().StringVar(&k.placement, "placement", string(kube.PlacementTopology), "how DCs are pinned to nodes: topology, fibercut or none (kubernetes)")
	cmd.Flags().StringVar(&k.class, "storage-class", "", "storage class of the data volumes (kubernetes; default: the cluster's default)")
	cmd.Flags().StringVar(&k.size, "data-size", kube.DefaultDataSize.String(), "size of each DC's data volume (kubernetes)")
	cmd.Flags().StringVar(&k.gwService, "gateway-service", string(corev1.ServiceTypeClusterIP), "type of the gateway's Service: ClusterIP, NodePort or LoadBalancer (kubernetes)")
}

// refuseOn fails if any of the flags was given: they are the other
// backend's.
func refuseOn(cmd *cobra.Command, backend string, flags []string) error {
	for _, f := range flags {
		if cmd.Flags().Changed(f) {
			return fmt.Errorf("--%s is for --backend kubernetes, not %s", f, backend)
		}
	}
	return nil
}

func (k *kubeFlags) objects(name string, t *topology.Topology) (*kube.Objects, kube.Options, error) {
	opts := kube.Options{Name: name, Topology: t, Image: k.image, PullPolicy: corev1.PullPolicy(k.pull),
		StorageClass: k.class, GatewayService: corev1.ServiceType(k.gwService), ClientLimits: k.clientLimits}
	var err error
	if opts.Placement, err = kube.ParsePlacement(k.placement); err != nil {
		return nil, opts, fmt.Errorf("--placement: %w", err)
	}
	if opts.DataSize, err = resource.ParseQuantity(k.size); err != nil {
		return nil, opts, fmt.Errorf("--data-size %q: want a size such as 4Gi", k.size)
	}
	o, err := kube.Build(opts)
	return o, opts, err
}

// labUpKube applies the lab's objects and waits up to timeout (not at all
// when 0) for every DC's pod and the gateway to be ready.
func labUpKube(ctx context.Context, out io.Writer, c *kube.Cluster, o *kube.Objects, timeout time.Duration) error {
	if err := c.Apply(ctx, o); err != nil {
		return err
	}
	name := o.Namespace.Labels[lab.LabelLab]
	fmt.Fprintf(out, "lab %q: applied %d objects in namespace %s\n", name, len(o.All()), o.Namespace.Name)
	if timeout == 0 {
		dcs, err := c.Inspect(ctx)
		if err != nil {
			return err
		}
		printKubeTable(out, dcs)
		fmt.Fprintln(out, "not waiting for the pods (--ready-timeout 0); `fibercut lab status --backend kubernetes` shows them")
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var dcs []kube.DC
	var gw kube.Gateway
	var agents kube.AgentStatus
	for {
		var err error
		if dcs, err = c.Inspect(wctx); err == nil {
			if gw, err = c.Gateway(wctx); err == nil {
				agents, err = c.AgentStatus(wctx)
			}
		}
		if err == nil && kubeReady(dcs) && gw.Ready && agents.Up() {
			fmt.Fprintf(out, "lab %q is up: %d datacenters\n", name, len(dcs))
			printKubeTable(out, dcs)
			fmt.Fprintf(out, "gateway: pod %s at %s\n", gw.Pod, gw.IP)
			fmt.Fprintln(out, agentLine(agents))
			return nil
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			printKubeTable(out, dcs)
			return fmt.Errorf("lab %q: not ready after %s: %s", name, timeout, notReady(dcs, gw.Ready, agents))
		case <-time.After(time.Second):
		}
	}
}

func kubeReady(dcs []kube.DC) bool {
	for _, d := range dcs {
		if !d.Ready || d.Paused {
			return false
		}
	}
	return len(dcs) > 0
}

// notReady names what is not ready, and why where the cluster says.
func notReady(dcs []kube.DC, gateway bool, agents kube.AgentStatus) string {
	var s []string
	for _, d := range dcs {
		switch {
		case d.Paused:
			s = append(s, d.ID+" (paused)")
		case !d.Ready:
			s = append(s, d.ID+" ("+cmpOr(d.Why, cmpOr(d.Phase, "no pod"))+")")
		}
	}
	if !gateway {
		s = append(s, "gateway")
	}
	if !agents.Up() {
		s = append(s, fmt.Sprintf("agents (%d of %d nodes ready)", agents.Ready, agents.Nodes))
	}
	return strings.Join(s, ", ")
}

// agentLine says how many of the lab's agents are ready.
func agentLine(s kube.AgentStatus) string {
	if s.Missing {
		return "agents: none (the lab was made before fibercut had them: `fibercut lab up --backend kubernetes` again adds them)"
	}
	return fmt.Sprintf("agents: %d of %d nodes ready (they apply faults there)", s.Ready, s.Nodes)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func printKubeTable(out io.Writer, dcs []kube.DC) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DC\tCITY\tREPLICAS\tPOD\tPHASE\tREADY\tNODE\tIP\tWHY")
	for _, d := range dcs {
		why := d.Why
		if d.Paused {
			why = "paused by a fault: its cgroup is frozen on this host"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%v\t%s\t%s\t%s\n", d.ID, d.City, d.Replicas,
			cmpOr(d.Pod, "-"), cmpOr(d.Phase, "-"), d.Ready, cmpOr(d.Node, "-"), cmpOr(d.IP, "-"), why)
	}
	tw.Flush()
}

// labStatusKube shows the lab's DCs; not healthy (exit 1) when one is not
// ready.
func labStatusKube(ctx context.Context, out io.Writer, c *kube.Cluster, name string) error {
	dcs, err := c.Inspect(ctx)
	if err != nil {
		return err
	}
	gw, err := c.Gateway(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "lab %q  namespace %s\n", name, kube.Namespace(name))
	printKubeTable(out, dcs)
	fmt.Fprintf(out, "gateway: ready %v, pod %s at %s\n", gw.Ready, cmpOr(gw.Pod, "-"), cmpOr(gw.IP, "-"))
	agents, err := c.AgentStatus(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, agentLine(agents))
	fmt.Fprintln(out, kubeWANLine(ctx, c, name))
	if !kubeReady(dcs) || !gw.Ready || !agents.Up() {
		return &exitError{code: 1, err: fmt.Errorf("lab %q: not healthy: %s", name, notReady(dcs, gw.Ready, agents))}
	}
	return nil
}

// kubeWANLine says whether the lab has the baseline WAN latency, which a
// drill run from this host puts on (its holder runs here).
func kubeWANLine(ctx context.Context, c *kube.Cluster, name string) string {
	var w *faults.WAN
	l, err := c.Lab(ctx, nil)
	if err == nil {
		var store *faults.Store
		if store, err = kubeStore(name); err == nil {
			w, err = faults.LoadWAN(store, l)
		}
	}
	switch {
	case err != nil:
		return fmt.Sprintf("WAN latency: unknown (%v)", err)
	case w.Held():
		return wanLine(w, l)
	case w != nil:
		return "WAN latency: OFF: its holder is gone, so the links run undelayed; the next `fibercut drill run --backend kubernetes` from this host starts it again"
	}
	return "WAN latency: off here (a `fibercut drill run --backend kubernetes` from this host puts the topology's latencies on)"
}

func labDownKube(ctx context.Context, out io.Writer, c *kube.Cluster, name string) error {
	// A pod paused by a fault cannot die until it is thawed: thaw what
	// this host or an agent froze, or the namespace would never be gone.
	thawed, err := faults.ThawKube(ctx, c)
	if err != nil {
		return fmt.Errorf("lab %q: thaw its paused DCs before removing it: %w", name, err)
	}
	if len(thawed) > 0 {
		fmt.Fprintf(out, "lab %q: thawed %s, paused by a fault\n", name, strings.Join(thawed, ", "))
	}
	// The WAN holder first, as on Docker; it would also end by itself
	// once the lab is gone.
	store, serr := kubeStore(name)
	if serr == nil {
		if _, err := faults.StopWAN(ctx, store, nil); err != nil {
			fmt.Fprintf(out, "lab %q: %v (its holder ends by itself once the lab is gone)\n", name, err)
		}
	}
	removed, err := c.Down(ctx)
	if err == nil && serr == nil {
		// The faults went with the pods; so do their records.
		err = store.Remove()
	}
	if len(removed) == 0 && err == nil {
		fmt.Fprintf(out, "lab %q: nothing to remove\n", name)
		return nil
	}
	fmt.Fprintf(out, "lab %q: removed %s\n", name, strings.Join(removed, ", "))
	return err
}
