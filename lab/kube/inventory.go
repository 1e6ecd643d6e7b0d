package kube

import (
	"context"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/topology"
)

// Lab returns the lab as the faults and the reachability matrix work on it:
// its topology (from its ConfigMap), and per DC its pod's address as the
// WAN address, its state ("running", "paused" when view finds its freezer
// cgroup frozen, "exited", or lab.StateMissing when it has no pod) and the
// process view finds of it on this host (0 when it is reached through its
// node's agent). A running pod that view does not reach is "exited": there
// is no namespace to change. With no view, every running pod is "running".
// The WAN network's ID is the namespace's UID: it tells one incarnation of
// the lab from the next. A pod has one interface, so there is no
// management network: a DC's management address is its pod's too.
func (c *Cluster) Lab(ctx context.Context, view PodView) (*lab.Lab, error) {
	ns, err := c.namespace(ctx)
	if err != nil {
		return nil, err
	}
	cm, err := c.cs.CoreV1().ConfigMaps(c.ns).Get(ctx, "topology", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("kube: the topology of lab %s: %w", c.name, err)
	}
	topo, err := topology.Parse("ConfigMap "+c.ns+"/topology", []byte(cm.Data[topologyKey]))
	if err != nil {
		return nil, fmt.Errorf("kube: %w", err)
	}
	pods, err := c.cs.CoreV1().Pods(c.ns).List(ctx, metav1.ListOptions{LabelSelector: lab.LabelLab + "=" + c.name + "," + lab.LabelRole + "=" + lab.RoleDC})
	if err != nil {
		return nil, fmt.Errorf("kube: list the pods of lab %s: %w", c.name, err)
	}
	// One look for every running pod.
	var found map[string]PodHere
	if view != nil {
		var running []*corev1.Pod
		for i, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				running = append(running, &pods.Items[i])
			}
		}
		// What a view could not look at is out of reach, but the
		// rest of the lab is not.
		if found, err = view(ctx, running); err != nil && found == nil {
			return nil, fmt.Errorf("kube: find the pods of lab %s: %w", c.name, err)
		}
	}
	l := &lab.Lab{Name: c.name, Topology: topo, WAN: lab.Network{ID: string(ns.UID), Name: c.ns}}
	for _, dc := range topo.Datacenters {
		d := lab.DC{ID: dc.ID, City: dc.City, Container: dc.ID + "-0", State: lab.StateMissing}
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.Labels[lab.LabelDC] != dc.ID || p.DeletionTimestamp != nil {
				continue
			}
			d.ContainerID = string(p.UID)
			d.State = "exited"
			if a, err := netip.ParseAddr(p.Status.PodIP); err == nil {
				// One interface: health is asked where the peers talk.
				d.WANIP, d.MgmtIP = a, a
			}
			if p.Status.Phase != corev1.PodRunning || !d.WANIP.IsValid() {
				continue
			}
			here, ok := found[string(p.UID)]
			if !ok && view != nil {
				continue // out of reach: no namespace to change
			}
			d.Pid, d.Node, d.State = here.Pid, p.Spec.NodeName, "running"
			if here.Paused {
				d.State = "paused"
			}
		}
		l.DCs = append(l.DCs, d)
	}
	return l, nil
}
