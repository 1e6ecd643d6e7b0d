package kube

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/nodeapi"
	"github.com/fibercut/fibercut/topology"
)

// Node labels a DC's pod is pinned by. Kubernetes' well-known ones
// ([PlacementTopology]) fit a cluster whose regions and zones are the
// topology's cities and DCs; fibercut's own ([PlacementFibercut]) are for a
// cluster where an SRE labels nodes by hand:
//
//	kubectl label node n1 fibercut.city=hangzhou fibercut.dc=hz-a
const (
	NodeLabelRegion = "topology.kubernetes.io/region"
	NodeLabelZone   = "topology.kubernetes.io/zone"
	NodeLabelCity   = lab.LabelCity
	NodeLabelDC     = lab.LabelDC
)

// Placement says how DC pods are pinned to nodes.
type Placement string

// Placements.
const (
	// PlacementTopology requires region = city and zone = DC.
	PlacementTopology Placement = "topology"
	// PlacementFibercut requires fibercut.city = city and fibercut.dc = DC.
	PlacementFibercut Placement = "fibercut"
	// PlacementNone pins nothing: the scheduler places pods where it
	// likes, still spreading the DCs over nodes where it can.
	PlacementNone Placement = "none"
)

// Placements lists the valid placements, for error messages and flags.
var Placements = []Placement{PlacementTopology, PlacementFibercut, PlacementNone}

// DefaultImage is the node image the objects name when none is given: the
// one `labs/kube/cluster` imports into its nodes. On another cluster, push
// fibercut's node image to a registry its nodes can reach and name it.
const DefaultImage = lab.ImageRepo + ":latest"

// DefaultDataSize is the size of each DC's data volume. A member keeps up
// to about 100 MB of log (demoapp's SnapshotCatchUpEntries) and a backend
// bounded by its quota.
var DefaultDataSize = resource.MustParse("4Gi")

// Options describe the objects of one lab.
type Options struct {
	// Name is the lab's name; lab.DefaultName when empty.
	Name string
	// Topology is the lab's topology; the default one when nil.
	Topology *topology.Topology
	// Image is the node image; DefaultImage when empty.
	Image string
	// PullPolicy is the image pull policy; IfNotPresent when empty. A
	// cluster without a registry (the harness) needs Never.
	PullPolicy corev1.PullPolicy
	// Placement pins DC pods to nodes; PlacementTopology when empty.
	Placement Placement
	// StorageClass names the data volumes' class; the cluster's default
	// when empty.
	StorageClass string
	// DataSize is each DC's data volume; DefaultDataSize when zero.
	DataSize resource.Quantity
	// GatewayService is the type of the gateway's Service; ClusterIP
	// when empty. The audience reaches a NodePort or LoadBalancer one.
	GatewayService corev1.ServiceType
	// ClientLimits are the gateway's per-address rates, in the form
	// demoapp.ParseClientLimits reads; "" takes its defaults.
	ClientLimits string
	// Record has the gateway serve the hall's audience record (which a
	// drill reads and resets) on its pod's port 8081. The gateway's
	// Service does not expose it.
	Record bool
	// Trusted is the address the gateway takes for the lab's own host (a
	// drill's load and record reader): it is held to no per-address
	// limit and is not the hall. None when invalid.
	Trusted netip.Addr
	// AgentToken is the token the lab's agents answer to; a fresh one
	// ([NewAgentToken]) when empty. [Cluster.Apply] keeps the token of a
	// lab that has one.
	AgentToken string
}

// Objects are the Kubernetes objects of one lab.
type Objects struct {
	Namespace *corev1.Namespace
	// Topology holds the topology as YAML, for every pod's environment.
	Topology *corev1.ConfigMap
	// Services are the DCs' headless Services, in topology order, then
	// the gateway's.
	Services []*corev1.Service
	// DCs are the DCs' StatefulSets, in topology order.
	DCs     []*appsv1.StatefulSet
	Gateway *appsv1.Deployment
	// AgentToken holds the agents' token, and Agent runs one agent per
	// node, which applies faults there.
	AgentToken *corev1.Secret
	Agent      *appsv1.DaemonSet
}

// All returns the objects in the order they are created: the namespace
// first, then what the pods read, then the pods' owners.
func (o *Objects) All() []metav1.Object {
	out := []metav1.Object{o.Namespace, o.Topology, o.AgentToken}
	for _, s := range o.Services {
		out = append(out, s)
	}
	for _, s := range o.DCs {
		out = append(out, s)
	}
	return append(out, o.Gateway, o.Agent)
}

// Namespace is the namespace of lab name.
func Namespace(name string) string { return "fibercut-" + name }

// PeerHost is the stable name of a DC's member inside the cluster: its
// StatefulSet's only pod under its headless Service. It outlives the pod's
// address, which changes on every restart.
func PeerHost(labName, dc string) string {
	return dc + "-0." + dc + "." + Namespace(labName) + ".svc"
}

// topologyKey is the ConfigMap key holding the topology's YAML.
const topologyKey = "topology.yaml"

// Container ports.
const (
	ledgerPeerPort   = nodeapi.LedgerPeerPort
	ledgerClientPort = nodeapi.LedgerClientPort
)

// Build returns the objects of a lab. It checks the options and changes
// nothing anywhere.
func Build(opts Options) (*Objects, error) {
	if opts.Name == "" {
		opts.Name = lab.DefaultName
	}
	if err := lab.ValidateName(opts.Name); err != nil {
		return nil, err
	}
	if opts.Topology == nil {
		t, err := topology.Builtin(topology.Default)
		if err != nil {
			return nil, err
		}
		opts.Topology = t
	}
	if opts.Image == "" {
		opts.Image = DefaultImage
	}
	if opts.PullPolicy == "" {
		opts.PullPolicy = corev1.PullIfNotPresent
	}
	switch opts.PullPolicy {
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		return nil, fmt.Errorf("kube: pull policy %q: want Always, IfNotPresent or Never", opts.PullPolicy)
	}
	if opts.Placement == "" {
		opts.Placement = PlacementTopology
	}
	if !validPlacement(opts.Placement) {
		return nil, fmt.Errorf("kube: placement %q: want one of %s", opts.Placement, placementList())
	}
	if opts.DataSize.IsZero() {
		opts.DataSize = DefaultDataSize
	}
	if opts.DataSize.Sign() < 0 {
		return nil, fmt.Errorf("kube: data volume size %s: want a positive size such as 4Gi", opts.DataSize.String())
	}
	if opts.GatewayService == "" {
		opts.GatewayService = corev1.ServiceTypeClusterIP
	}
	switch opts.GatewayService {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer:
	default:
		return nil, fmt.Errorf("kube: gateway service type %q: want ClusterIP, NodePort or LoadBalancer", opts.GatewayService)
	}
	if opts.AgentToken == "" {
		opts.AgentToken = NewAgentToken()
	}
	if len(opts.AgentToken) < 16 {
		return nil, fmt.Errorf("kube: agent token of %d characters: want at least 16 (or none, for a fresh one)", len(opts.AgentToken))
	}
	topoYAML, err := opts.Topology.Marshal()
	if err != nil {
		return nil, fmt.Errorf("kube: %w", err)
	}
	b := builder{opts: opts, ns: Namespace(opts.Name)}
	o := &Objects{
		Namespace: &corev1.Namespace{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: metav1.ObjectMeta{Name: b.ns, Labels: b.labels(nil)},
		},
		Topology: &corev1.ConfigMap{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: b.meta("topology", nil),
			Data:       map[string]string{topologyKey: string(topoYAML)},
		},
	}
	// The DCs and the gateway need no privilege of their own, but the
	// agents see their node's processes and enter their namespaces: the
	// namespace admits privileged pods.
	o.Namespace.Labels["pod-security.kubernetes.io/enforce"] = "privileged"
	for _, dc := range opts.Topology.Datacenters {
		o.Services = append(o.Services, b.dcService(dc))
		o.DCs = append(o.DCs, b.dcStatefulSet(dc))
	}
	o.Services = append(o.Services, b.gatewayService())
	o.Gateway = b.gatewayDeployment()
	o.AgentToken = b.agentSecret()
	o.Agent = b.agentDaemonSet()
	return o, nil
}

func validPlacement(p Placement) bool {
	for _, q := range Placements {
		if p == q {
			return true
		}
	}
	return false
}

func placementList() string {
	s := make([]string, len(Placements))
	for i, p := range Placements {
		s[i] = string(p)
	}
	return strings.Join(s, ", ")
}

type builder struct {
	opts Options
	ns   string
}

// labels returns the lab's label plus extra.
func (b builder) labels(extra map[string]string) map[string]string {
	m := map[string]string{lab.LabelLab: b.opts.Name}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func (b builder) meta(name string, extra map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: b.ns, Labels: b.labels(extra)}
}

func dcLabels(dc topology.Datacenter) map[string]string {
	return map[string]string{lab.LabelRole: lab.RoleDC, lab.LabelDC: dc.ID, lab.LabelCity: dc.City}
}

// peers is every DC by its stable name, as FIBERCUT_PEERS reads it.
func (b builder) peers() string {
	var s []string
	for _, dc := range b.opts.Topology.Datacenters {
		s = append(s, dc.ID+"="+PeerHost(b.opts.Name, dc.ID))
	}
	return strings.Join(s, ",")
}

// env is what every pod of the lab reads.
func (b builder) env() []corev1.EnvVar {
	return []corev1.EnvVar{
		{Name: nodeapi.EnvLab, Value: b.opts.Name},
		{Name: nodeapi.EnvTopology, ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "topology"}, Key: topologyKey}}},
		{Name: nodeapi.EnvPeers, Value: b.peers()},
	}
}

func port(name string, p int32) corev1.ContainerPort {
	return corev1.ContainerPort{Name: name, ContainerPort: p, Protocol: corev1.ProtocolTCP}
}

func servicePort(name string, p int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: p, TargetPort: intstr.FromString(name), Protocol: corev1.ProtocolTCP}
}

// container is a pod's only container: `fibercut CMD` with no privilege.
// There is no liveness probe on purpose: a DC cut off from its peers is
// alive and must not be restarted by the kubelet.
func (b builder) container(cmd string, env []corev1.EnvVar, ports []corev1.ContainerPort, ready int32) corev1.Container {
	return corev1.Container{
		Name: cmd, Image: b.opts.Image, ImagePullPolicy: b.opts.PullPolicy,
		Args: []string{cmd}, Env: env, Ports: ports,
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: nodeapi.HealthPath, Port: intstr.FromInt32(ready)}},
			PeriodSeconds: 2, TimeoutSeconds: 1,
		},
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi"),
		}},
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
}

func (b builder) dcService(dc topology.Datacenter) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: b.meta(dc.ID, dcLabels(dc)),
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			// A member must be found by its peers before it is ready:
			// it is not ready until they have found it.
			PublishNotReadyAddresses: true,
			Selector:                 b.labels(map[string]string{lab.LabelDC: dc.ID}),
			Ports: []corev1.ServicePort{
				servicePort("node", nodeapi.NodePort),
				servicePort("ledger-peer", ledgerPeerPort),
				servicePort("ledger-client", ledgerClientPort),
			},
		},
	}
}

func (b builder) dcStatefulSet(dc topology.Datacenter) *appsv1.StatefulSet {
	labels := b.labels(dcLabels(dc))
	env := append([]corev1.EnvVar{
		{Name: nodeapi.EnvDC, Value: dc.ID},
		{Name: nodeapi.EnvCity, Value: dc.City},
		{Name: nodeapi.EnvDataDir, Value: nodeapi.DataDir},
	}, b.env()...)
	c := b.container("node", env, []corev1.ContainerPort{
		port("node", nodeapi.NodePort), port("ledger-peer", ledgerPeerPort), port("ledger-client", ledgerClientPort),
	}, nodeapi.NodePort)
	c.VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: nodeapi.DataDir}}
	pvc := corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Labels: labels},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: b.opts.DataSize}},
		},
	}
	if b.opts.StorageClass != "" {
		pvc.Spec.StorageClassName = ptr.To(b.opts.StorageClass)
	}
	return &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: b.meta(dc.ID, dcLabels(dc)),
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To[int32](1),
			ServiceName: dc.ID,
			Selector:    &metav1.LabelSelector{MatchLabels: b.labels(map[string]string{lab.LabelDC: dc.ID})},
			// One pod per set; Parallel only keeps a power-on from
			// waiting for a pod that is not ready.
			PodManagementPolicy: appsv1.ParallelPodManagement,
			// Power-off scales a DC to 0: its data must survive that.
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenDeleted: appsv1.DeletePersistentVolumeClaimRetentionPolicyType,
				WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers:                    []corev1.Container{c},
					TerminationGracePeriodSeconds: ptr.To[int64](5),
					EnableServiceLinks:            ptr.To(false),
					Affinity:                      b.affinity(dc),
				},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{pvc},
		},
	}
}

// affinity pins a DC to its city's and its own nodes, and keeps two of the
// lab's DCs off one node where the cluster has nodes enough.
func (b builder) affinity(dc topology.Datacenter) *corev1.Affinity {
	a := &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
		PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
			Weight: 100,
			PodAffinityTerm: corev1.PodAffinityTerm{
				LabelSelector: &metav1.LabelSelector{MatchLabels: b.labels(map[string]string{lab.LabelRole: lab.RoleDC})},
				TopologyKey:   "kubernetes.io/hostname",
			},
		}},
	}}
	var city, zone string
	switch b.opts.Placement {
	case PlacementTopology:
		city, zone = NodeLabelRegion, NodeLabelZone
	case PlacementFibercut:
		city, zone = NodeLabelCity, NodeLabelDC
	default:
		return a
	}
	a.NodeAffinity = &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
			{Key: city, Operator: corev1.NodeSelectorOpIn, Values: []string{dc.City}},
			{Key: zone, Operator: corev1.NodeSelectorOpIn, Values: []string{dc.ID}},
		}}},
	}}
	return a
}

func (b builder) gatewayService() *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: b.meta(lab.RoleGateway, map[string]string{lab.LabelRole: lab.RoleGateway}),
		Spec: corev1.ServiceSpec{
			Type:     b.opts.GatewayService,
			Selector: b.labels(map[string]string{lab.LabelRole: lab.RoleGateway}),
			Ports:    []corev1.ServicePort{servicePort("http", nodeapi.GatewayPort)},
		},
	}
}

func (b builder) gatewayDeployment() *appsv1.Deployment {
	labels := b.labels(map[string]string{lab.LabelRole: lab.RoleGateway})
	env := b.env()
	if b.opts.ClientLimits != "" {
		env = append(env, corev1.EnvVar{Name: nodeapi.EnvClientLimits, Value: b.opts.ClientLimits})
	}
	if b.opts.Trusted.IsValid() {
		env = append(env, corev1.EnvVar{Name: nodeapi.EnvGatewayTrusted, Value: b.opts.Trusted.String()})
	}
	if b.opts.Record {
		env = append(env, corev1.EnvVar{Name: nodeapi.EnvGatewayRecord, Value: "0.0.0.0:" + strconv.Itoa(nodeapi.GatewayRecordPort)})
	}
	c := b.container("gateway", env, []corev1.ContainerPort{port("http", nodeapi.GatewayPort)}, nodeapi.GatewayPort)
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: b.meta(lab.RoleGateway, map[string]string{lab.LabelRole: lab.RoleGateway}),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers:                    []corev1.Container{c},
					TerminationGracePeriodSeconds: ptr.To[int64](5),
					EnableServiceLinks:            ptr.To(false),
				},
			},
		},
	}
}

// ErrNoPlacement is wrapped by ParsePlacement.
var ErrNoPlacement = errors.New("no such placement")

// ParsePlacement reads a placement's name.
func ParsePlacement(s string) (Placement, error) {
	if p := Placement(s); validPlacement(p) {
		return p, nil
	}
	return "", fmt.Errorf("kube: %w %q: want one of %s", ErrNoPlacement, s, placementList())
}
