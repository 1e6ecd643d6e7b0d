package kube

import (
	"bufio"
	"bytes"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/fibercut/fibercut/demoapp"
	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/nodeapi"
	"github.com/fibercut/fibercut/topology"
)

func build(t *testing.T, opts Options) *Objects {
	t.Helper()
	o, err := Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func env(c corev1.Container, name string) (corev1.EnvVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

// TestObjectsOfTheDefaultLab checks the mapping of the default topology:
// one namespace, every object in it labelled, one StatefulSet and headless
// Service per DC in topology order, and peers by their stable names in the
// form the node reads.
func TestObjectsOfTheDefaultLab(t *testing.T) {
	topo, err := topology.Builtin(topology.Default)
	if err != nil {
		t.Fatal(err)
	}
	o := build(t, Options{Name: "demo"})
	if o.Namespace.Name != "fibercut-demo" || o.Namespace.Labels[lab.LabelLab] != "demo" {
		t.Fatalf("namespace %s labels %v", o.Namespace.Name, o.Namespace.Labels)
	}
	all := o.All()
	if want := 1 + 1 + 1 + 6 + 5 + 1 + 1; len(all) != want {
		t.Fatalf("%d objects, want %d", len(all), want)
	}
	for _, obj := range all[1:] {
		if obj.GetNamespace() != "fibercut-demo" || obj.GetLabels()[lab.LabelLab] != "demo" {
			t.Errorf("%s: namespace %q, labels %v", obj.GetName(), obj.GetNamespace(), obj.GetLabels())
		}
	}
	if len(o.DCs) != len(topo.Datacenters) {
		t.Fatalf("%d StatefulSets for %d DCs", len(o.DCs), len(topo.Datacenters))
	}
	for i, dc := range topo.Datacenters {
		ss, svc := o.DCs[i], o.Services[i]
		if ss.Name != dc.ID || svc.Name != dc.ID || ss.Spec.ServiceName != dc.ID {
			t.Fatalf("DC %d: StatefulSet %s, Service %s, serviceName %s; want %s", i, ss.Name, svc.Name, ss.Spec.ServiceName, dc.ID)
		}
		if svc.Spec.ClusterIP != corev1.ClusterIPNone || !svc.Spec.PublishNotReadyAddresses {
			t.Errorf("%s: Service clusterIP %q, publishNotReadyAddresses %v; want a headless one that publishes unready pods", dc.ID, svc.Spec.ClusterIP, svc.Spec.PublishNotReadyAddresses)
		}
		pod := ss.Spec.Template
		for k, v := range svc.Spec.Selector {
			if pod.Labels[k] != v {
				t.Errorf("%s: Service selects %s=%s, the pod has %q", dc.ID, k, v, pod.Labels[k])
			}
		}
		if *ss.Spec.Replicas != 1 {
			t.Errorf("%s: %d replicas", dc.ID, *ss.Spec.Replicas)
		}
		if p := ss.Spec.PersistentVolumeClaimRetentionPolicy; p == nil || p.WhenScaled != appsv1.RetainPersistentVolumeClaimRetentionPolicyType {
			t.Errorf("%s: a power-off (scale to 0) must keep the data volume: %+v", dc.ID, p)
		}
		if len(ss.Spec.VolumeClaimTemplates) != 1 || ss.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests.Storage().Cmp(DefaultDataSize) != 0 {
			t.Errorf("%s: volume claims %+v", dc.ID, ss.Spec.VolumeClaimTemplates)
		}
		c := pod.Spec.Containers[0]
		if c.LivenessProbe != nil {
			t.Errorf("%s: a liveness probe would restart a DC that is only cut off", dc.ID)
		}
		if c.SecurityContext == nil || *c.SecurityContext.AllowPrivilegeEscalation || len(c.SecurityContext.Capabilities.Drop) != 1 {
			t.Errorf("%s: security context %+v", dc.ID, c.SecurityContext)
		}
		if e, _ := env(c, nodeapi.EnvDC); e.Value != dc.ID {
			t.Errorf("%s: %s = %q", dc.ID, nodeapi.EnvDC, e.Value)
		}
		if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != nodeapi.DataDir {
			t.Errorf("%s: mounts %+v", dc.ID, c.VolumeMounts)
		}
		e, _ := env(c, nodeapi.EnvPeers)
		peers, err := demoapp.ParsePeers(e.Value, topo)
		if err != nil {
			t.Fatalf("%s: the node would refuse its peers: %v", dc.ID, err)
		}
		for j, p := range peers {
			want := topo.Datacenters[j].ID + "-0." + topo.Datacenters[j].ID + ".fibercut-demo.svc"
			if p.Host != want || p.WAN.IsValid() {
				t.Errorf("%s: peer %d = %+v, want host %s", dc.ID, j, p, want)
			}
		}
		if e, _ := env(c, nodeapi.EnvTopology); e.ValueFrom == nil || e.ValueFrom.ConfigMapKeyRef.Name != o.Topology.Name {
			t.Errorf("%s: topology from %+v", dc.ID, e.ValueFrom)
		}
	}
	got, err := topology.Parse("configmap", []byte(o.Topology.Data[topologyKey]))
	if err != nil || got.Name != topo.Name || len(got.Datacenters) != len(topo.Datacenters) {
		t.Fatalf("the ConfigMap's topology: %v, %v", got, err)
	}
	gw := o.Services[len(o.Services)-1]
	if gw.Name != lab.RoleGateway || gw.Spec.Type != corev1.ServiceTypeClusterIP || gw.Spec.Ports[0].Port != nodeapi.GatewayPort {
		t.Errorf("gateway Service %+v", gw.Spec)
	}
	for k, v := range gw.Spec.Selector {
		if o.Gateway.Spec.Template.Labels[k] != v {
			t.Errorf("the gateway Service selects %s=%s, its pod has %q", k, v, o.Gateway.Spec.Template.Labels[k])
		}
	}
	if o.Gateway.Spec.Template.Spec.Containers[0].Args[0] != "gateway" || o.DCs[0].Spec.Template.Spec.Containers[0].Args[0] != "node" {
		t.Error("the pods do not run `fibercut gateway` and `fibercut node`")
	}
}

// TestAgentObjects checks the agent DaemonSet and its token: the agent
// sees its node's processes and cgroups with only the capabilities it
// needs, reads the lab's own token, runs on every node, and is selected by
// no Service (the hall never reaches it); each lab has a token of its own.
func TestAgentObjects(t *testing.T) {
	o := build(t, Options{Name: "demo", Image: "registry.example/fibercut-node:v1"})
	if o.Namespace.Labels["pod-security.kubernetes.io/enforce"] != "privileged" {
		t.Errorf("namespace labels %v: the agents need a namespace that admits privileged pods", o.Namespace.Labels)
	}
	tok := o.AgentToken.StringData[AgentTokenKey]
	if o.AgentToken.Name != AgentSecret || len(tok) != 64 {
		t.Fatalf("agent Secret %s holds a token of %d characters, want %s with 64", o.AgentToken.Name, len(tok), AgentSecret)
	}
	if other := build(t, Options{Name: "demo"}); other.AgentToken.StringData[AgentTokenKey] == tok {
		t.Error("two builds share one agent token")
	}
	if given := build(t, Options{Name: "demo", AgentToken: "given-token-0123456789"}); given.AgentToken.StringData[AgentTokenKey] != "given-token-0123456789" {
		t.Error("Options.AgentToken is not the Secret's")
	}
	ds := o.Agent
	if ds.Name != RoleAgent || ds.Labels[lab.LabelLab] != "demo" {
		t.Fatalf("agent DaemonSet %s labels %v", ds.Name, ds.Labels)
	}
	pod := ds.Spec.Template.Spec
	if !pod.HostPID || pod.HostNetwork {
		t.Errorf("agent hostPID %v hostNetwork %v: want the node's processes, in a network namespace of its own", pod.HostPID, pod.HostNetwork)
	}
	if len(pod.Tolerations) != 1 || pod.Tolerations[0].Operator != corev1.TolerationOpExists {
		t.Errorf("agent tolerations %+v: want every node's taints tolerated", pod.Tolerations)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the agent needs no API credentials and must not mount them")
	}
	c := pod.Containers[0]
	if c.Image != "registry.example/fibercut-node:v1" || c.Args[0] != "agent" {
		t.Errorf("agent container %s %v", c.Image, c.Args)
	}
	sc := c.SecurityContext
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("the agent is privileged; it needs three capabilities only")
	}
	if got := sc.Capabilities.Add; !slices.Equal(got, []corev1.Capability{"NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"}) || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("agent capabilities %+v", sc.Capabilities)
	}
	if e, _ := env(c, EnvAgentToken); e.ValueFrom == nil || e.ValueFrom.SecretKeyRef.Name != AgentSecret || e.ValueFrom.SecretKeyRef.Key != AgentTokenKey {
		t.Errorf("agent token from %+v", e.ValueFrom)
	}
	if len(pod.Volumes) != 1 || pod.Volumes[0].HostPath == nil || pod.Volumes[0].HostPath.Path != "/sys/fs/cgroup" ||
		len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != AgentCgroupRoot || !slices.Contains(c.Args, AgentCgroupRoot) {
		t.Errorf("agent volumes %+v mounts %+v args %v: want the host's cgroups at %s", pod.Volumes, c.VolumeMounts, c.Args, AgentCgroupRoot)
	}
	for _, svc := range o.Services {
		if labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(ds.Spec.Template.Labels)) {
			t.Errorf("Service %s selects the agents: %v", svc.Name, svc.Spec.Selector)
		}
	}
	if c.Resources.Limits.Memory().IsZero() {
		t.Error("the agent has no memory limit")
	}
	if _, err := Build(Options{AgentToken: "short"}); err == nil || !strings.Contains(err.Error(), "want at least 16") {
		t.Errorf("Build with a 5-character agent token: %v", err)
	}
}

// TestPlacement checks how each placement pins a DC, and that DCs are
// always spread over nodes.
func TestPlacement(t *testing.T) {
	for _, tc := range []struct {
		p          Placement
		city, zone string
	}{
		{PlacementTopology, NodeLabelRegion, NodeLabelZone},
		{PlacementFibercut, "fibercut.city", "fibercut.dc"},
		{PlacementNone, "", ""},
	} {
		o := build(t, Options{Name: "demo", Placement: tc.p})
		a := o.DCs[2].Spec.Template.Spec.Affinity // sh-a
		anti := a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution
		if len(anti) != 1 || anti[0].PodAffinityTerm.TopologyKey != "kubernetes.io/hostname" ||
			anti[0].PodAffinityTerm.LabelSelector.MatchLabels[lab.LabelRole] != lab.RoleDC ||
			anti[0].PodAffinityTerm.LabelSelector.MatchLabels[lab.LabelLab] != "demo" {
			t.Errorf("%s: anti-affinity %+v", tc.p, anti)
		}
		if tc.city == "" {
			if a.NodeAffinity != nil {
				t.Errorf("%s: node affinity %+v", tc.p, a.NodeAffinity)
			}
			continue
		}
		req := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions
		if len(req) != 2 || req[0].Key != tc.city || req[0].Values[0] != "shanghai" || req[1].Key != tc.zone || req[1].Values[0] != "sh-a" {
			t.Errorf("%s: node affinity %+v", tc.p, req)
		}
	}
}

func TestBadOptions(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{Name: "Bad Name"}, "lab name"},
		{Options{PullPolicy: "Sometimes"}, "want Always, IfNotPresent or Never"},
		{Options{Placement: "moon"}, "want one of topology, fibercut, none"},
		{Options{GatewayService: "ExternalName"}, "want ClusterIP, NodePort or LoadBalancer"},
	} {
		_, err := Build(tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Build(%+v) = %v, want an error saying %q", tc.opts, err, tc.want)
		}
	}
	if _, err := ParsePlacement("moon"); err == nil || !strings.Contains(err.Error(), "topology, fibercut, none") {
		t.Errorf("ParsePlacement(moon) = %v", err)
	}
}

// TestYAMLReadsBack decodes the written stream with client-go's own scheme:
// every document is a known kind and equal to the object written.
func TestYAMLReadsBack(t *testing.T) {
	o := build(t, Options{Name: "demo", Image: "registry.example/fibercut-node:v1", StorageClass: "fast", GatewayService: corev1.ServiceTypeLoadBalancer})
	var buf bytes.Buffer
	if err := WriteYAML(&buf, o, "# header\n"); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	if !strings.HasPrefix(text, "# header\n") {
		t.Error("the header is not first")
	}
	r := utilyaml.NewYAMLReader(bufioReader(&buf))
	decode := scheme.Codecs.UniversalDeserializer().Decode
	all := o.All()
	for i := 0; ; i++ {
		doc, err := r.Read()
		if err != nil {
			if i != len(all) {
				t.Fatalf("read %d documents of %d: %v", i, len(all), err)
			}
			break
		}
		obj, _, err := decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("document %d: %v\n%s", i, err, doc)
		}
		if !equality.Semantic.DeepEqual(obj, all[i].(runtime.Object)) {
			t.Errorf("document %d (%s) reads back different", i, all[i].GetName())
		}
	}
	if !strings.Contains(text, "storageClassName: fast") || !strings.Contains(text, "image: registry.example/fibercut-node:v1") {
		t.Error("the storage class or the image is missing")
	}
}

func bufioReader(b *bytes.Buffer) *bufio.Reader { return bufio.NewReader(b) }
