package kube

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/fibercut/fibercut/lab"
)

// The agent: `fibercut agent`, one per node (a DaemonSet in the lab's
// namespace), applies faults to the DC pods of its node from inside their
// network namespaces and freezes and thaws their cgroups. It is reached
// only through the API server's pod proxy, so the caller needs the right
// to proxy to the lab's pods, and it answers only requests that carry the
// lab's agent token (the Secret [AgentSecret]), which the hall's audience
// never sees: the gateway's Service does not select it.
const (
	// RoleAgent is the agents' fibercut.role.
	RoleAgent = "agent"
	// AgentPort is the agent's port on its pod's address.
	AgentPort = 7950
	// AgentSecret names the Secret that holds the agents' token.
	AgentSecret = "agent-token"
	// AgentTokenKey is the token's key in it.
	AgentTokenKey = "token"
	// AgentTokenHeader carries the token on each request. (The API
	// server's proxy takes the Authorization header for itself.)
	AgentTokenHeader = "X-Fibercut-Agent-Token"
	// EnvAgentToken is where the agent's container reads its token.
	EnvAgentToken = "FIBERCUT_AGENT_TOKEN"
	// AgentCgroupRoot is where the agent's container has the host's
	// cgroup hierarchies ([CgroupRoot]).
	AgentCgroupRoot = "/host/sys/fs/cgroup"
)

// NewAgentToken returns a fresh random token for a lab's agents.
func NewAgentToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (b builder) agentSecret() *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: b.meta(AgentSecret, map[string]string{lab.LabelRole: RoleAgent}),
		Type:       corev1.SecretTypeOpaque,
		StringData: map[string]string{AgentTokenKey: b.opts.AgentToken},
	}
}

// agentDaemonSet runs `fibercut agent` on every node. It sees the node's
// processes (hostPID), enters their network namespaces (SYS_ADMIN,
// SYS_PTRACE) and changes nftables and qdiscs there (NET_ADMIN), and
// writes the pods' freezer cgroups through the host's hierarchy, mounted
// at AgentCgroupRoot. Its own network namespace is a pod's: it never
// changes the node's.
func (b builder) agentDaemonSet() *appsv1.DaemonSet {
	labels := b.labels(map[string]string{lab.LabelRole: RoleAgent})
	c := corev1.Container{
		Name: "agent", Image: b.opts.Image, ImagePullPolicy: b.opts.PullPolicy,
		Args: []string{"agent", "--listen", ":" + strconv.Itoa(AgentPort), "--cgroup-root", AgentCgroupRoot},
		Env: []corev1.EnvVar{{Name: EnvAgentToken, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: AgentSecret}, Key: AgentTokenKey}}}},
		Ports: []corev1.ContainerPort{port("agent", AgentPort)},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(AgentPort)}},
			PeriodSeconds: 2, TimeoutSeconds: 1,
		},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("20m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
		},
		SecurityContext: &corev1.SecurityContext{
			Capabilities: &corev1.Capabilities{
				Drop: []corev1.Capability{"ALL"},
				Add:  []corev1.Capability{"NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"},
			},
			// setns(2) and the netlink calls it makes are not in the
			// runtime's default seccomp profile for every runtime.
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined},
		},
		VolumeMounts: []corev1.VolumeMount{{Name: "cgroup", MountPath: AgentCgroupRoot}},
	}
	return &appsv1.DaemonSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"},
		ObjectMeta: b.meta(RoleAgent, map[string]string{lab.LabelRole: RoleAgent}),
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers:                    []corev1.Container{c},
					HostPID:                       true,
					TerminationGracePeriodSeconds: ptr.To[int64](2),
					EnableServiceLinks:            ptr.To(false),
					AutomountServiceAccountToken:  ptr.To(false),
					// A DC may be placed on any node: so is an agent.
					Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
					Volumes: []corev1.Volume{{Name: "cgroup", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
						Path: hostCgroupRoot, Type: ptr.To(corev1.HostPathDirectory)}}}},
				},
			},
		},
	}
}

// PodHere is what fibercut can reach of a running pod: Pid is a process
// of it on this host (0 when it is reached through its node's agent), and
// Paused says its freezer cgroup is frozen (a pause fault's doing, which
// the API server knows nothing of).
type PodHere struct {
	Pid    int  `json:"pid,omitempty"`
	Paused bool `json:"paused,omitempty"`
}

// A PodView finds, of the running pods given, those fibercut can change
// faults in, by UID. A pod it cannot reach is not in the map. It may
// return what it found with an error about what it could not look at.
type PodView func(ctx context.Context, pods []*corev1.Pod) (map[string]PodHere, error)

// OnHost is the PodView of this host: the pods whose processes are here
// ([HostPIDs]), each paused or not by its freezer here.
func OnHost(_ context.Context, pods []*corev1.Pod) (map[string]PodHere, error) {
	uids := make([]string, len(pods))
	for i, p := range pods {
		uids[i] = string(p.UID)
	}
	return LookHere(uids)
}

// LookHere is [OnHost] by UIDs: what an agent answers for its node.
func LookHere(uids []string) (map[string]PodHere, error) {
	pids, err := HostPIDs(uids)
	if err != nil {
		return nil, err
	}
	out := map[string]PodHere{}
	for uid, pid := range pids {
		out[uid] = PodHere{Pid: pid, Paused: frozen(pid, uid)}
	}
	return out, nil
}

// Wire types of the agent's /v1/pods.
type (
	// PodsRequest asks an agent which pods of its node it reaches.
	PodsRequest struct {
		UIDs []string `json:"uids"`
	}
	// PodsReply answers it: PodHere per pod found, its Pid the agent's;
	// or why it could not look.
	PodsReply struct {
		Pods  map[string]PodHere `json:"pods"`
		Error string             `json:"error,omitempty"`
	}
)

// AgentReply is the body of every agent answer but /v1/pods': Error says
// why an operation failed ("" when it did not), and the rest is the
// operation's result.
type AgentReply struct {
	Error string   `json:"error,omitempty"`
	IDs   []string `json:"ids,omitempty"`
	Had   bool     `json:"had,omitempty"`
	DCs   []string `json:"dcs,omitempty"`
}

// ErrNoAgent is returned when a node has no ready agent of the lab.
var ErrNoAgent = errors.New("no ready fibercut agent")

// AgentCaller sends one request to the agent pod named and returns the
// body of its answer. [Agents] sends them through the API server's pod
// proxy; tests send them straight to a server.
type AgentCaller func(ctx context.Context, pod, path string, token string, body []byte) ([]byte, error)

// Agents reaches the agents of one lab.
type Agents struct {
	cs   kubernetes.Interface
	name string
	ns   string
	call AgentCaller

	mu    sync.Mutex
	token string
}

// agentTimeout bounds one request to an agent.
const agentTimeout = 15 * time.Second

// Agents returns the agents of the lab, reached through the API server.
func (c *Cluster) Agents() *Agents {
	a := &Agents{cs: c.cs, name: c.name, ns: c.ns}
	a.call = a.proxy
	return a
}

// NewAgents returns the agents of lab name on the cluster cs talks to,
// reached by call, with the token given ("" to read it from the lab's
// Secret).
func NewAgents(cs kubernetes.Interface, name string, call AgentCaller, token string) *Agents {
	return &Agents{cs: cs, name: name, ns: Namespace(name), call: call, token: token}
}

// proxy is the AgentCaller through the API server's pod proxy.
func (a *Agents) proxy(ctx context.Context, pod, path, token string, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, agentTimeout)
	defer cancel()
	return a.cs.CoreV1().RESTClient().Post().
		Namespace(a.ns).Resource("pods").Name(pod+":"+strconv.Itoa(AgentPort)).
		SubResource("proxy").Suffix(path).
		SetHeader(AgentTokenHeader, token).SetHeader("Content-Type", "application/json").
		Body(body).DoRaw(ctx)
}

// tokenOf reads the agents' token from the lab's Secret, once.
func (a *Agents) tokenOf(ctx context.Context) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token != "" {
		return a.token, nil
	}
	s, err := a.cs.CoreV1().Secrets(a.ns).Get(ctx, AgentSecret, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("kube: the agents' token of lab %s (Secret %s/%s): %w", a.name, a.ns, AgentSecret, err)
	}
	t := string(s.Data[AgentTokenKey])
	if t == "" {
		t = s.StringData[AgentTokenKey]
	}
	if t == "" {
		return "", fmt.Errorf("kube: Secret %s/%s has no %q", a.ns, AgentSecret, AgentTokenKey)
	}
	a.token = t
	return t, nil
}

// pods returns the lab's ready agent pods by node.
func (a *Agents) pods(ctx context.Context) (map[string]string, error) {
	list, err := a.cs.CoreV1().Pods(a.ns).List(ctx, metav1.ListOptions{LabelSelector: lab.LabelLab + "=" + a.name + "," + lab.LabelRole + "=" + RoleAgent})
	if err != nil {
		return nil, fmt.Errorf("kube: list the agents of lab %s: %w", a.name, err)
	}
	out := map[string]string{}
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || p.Spec.NodeName == "" {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				out[p.Spec.NodeName] = p.Name
			}
		}
	}
	return out, nil
}

// Call sends in to path on the agent of node and decodes its answer into
// out.
func (a *Agents) Call(ctx context.Context, node, path string, in, out any) error {
	pods, err := a.pods(ctx)
	if err != nil {
		return err
	}
	pod, ok := pods[node]
	if !ok {
		return fmt.Errorf("kube: %w of lab %s on node %q (DaemonSet %s/%s)", ErrNoAgent, a.name, node, a.ns, RoleAgent)
	}
	return a.callPod(ctx, pod, path, in, out)
}

func (a *Agents) callPod(ctx context.Context, pod, path string, in, out any) error {
	token, err := a.tokenOf(ctx)
	if err != nil {
		return err
	}
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	raw, err := a.call(ctx, pod, path, token, body)
	if err != nil {
		return fmt.Errorf("kube: agent %s %s: %w", pod, path, err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("kube: agent %s %s: bad answer %.200q: %w", pod, path, raw, err)
	}
	return nil
}

// Each sends in to path on every ready agent of the lab and returns their
// answers by node, with an error if a node that should have an agent has
// no ready one: what was sent did not reach it.
func (a *Agents) Each(ctx context.Context, path string, in any) (map[string]AgentReply, error) {
	pods, err := a.pods(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]AgentReply{}
	var errs []error
	if st, err := a.status(ctx); err != nil {
		errs = append(errs, err)
	} else if len(pods) < st.Nodes {
		errs = append(errs, fmt.Errorf("kube: %w on %d of the %d nodes of lab %s's DaemonSet %s/%s: they did not get it", ErrNoAgent, st.Nodes-len(pods), st.Nodes, a.name, a.ns, RoleAgent))
	}
	for node, pod := range pods {
		var r AgentReply
		if err := a.callPod(ctx, pod, path, in, &r); err != nil {
			errs = append(errs, err)
			continue
		}
		out[node] = r
	}
	return out, errors.Join(errs...)
}

// View is the PodView through the agents: each node's agent says which of
// the pods given it reaches, and whether they are paused. Pods on a node
// with no ready agent are not reached.
func (a *Agents) View(ctx context.Context, pods []*corev1.Pod) (map[string]PodHere, error) {
	byNode := map[string][]string{}
	for _, p := range pods {
		byNode[p.Spec.NodeName] = append(byNode[p.Spec.NodeName], string(p.UID))
	}
	agents, err := a.pods(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]PodHere{}
	var errs []error
	for node, uids := range byNode {
		pod, ok := agents[node]
		if !ok {
			continue
		}
		var r PodsReply
		err := a.callPod(ctx, pod, "v1/pods", PodsRequest{UIDs: uids}, &r)
		if err == nil && r.Error != "" {
			err = fmt.Errorf("kube: agent %s on node %s: %s", pod, node, r.Error)
		}
		if err != nil {
			errs = append(errs, err) // that node's pods are out of reach
			continue
		}
		for uid, h := range r.Pods {
			out[uid] = PodHere{Paused: h.Paused} // its pid is the agent's
		}
	}
	return out, errors.Join(errs...)
}

// AgentStatus is the state of a lab's agent DaemonSet.
type AgentStatus struct {
	Nodes int `json:"nodes"` // nodes that should run an agent
	Ready int `json:"ready"` // of them, those whose current agent is ready
	// Missing is set when the lab has no agent DaemonSet (one made
	// before fibercut had agents): `lab up` again adds it.
	Missing bool `json:"missing,omitempty"`
}

// Up says every agent is of the current template and ready.
func (s AgentStatus) Up() bool { return s.Nodes > 0 && s.Ready == s.Nodes }

// AgentStatus returns the state of the lab's agents.
func (c *Cluster) AgentStatus(ctx context.Context) (AgentStatus, error) {
	return c.Agents().status(ctx)
}

func (a *Agents) status(ctx context.Context) (AgentStatus, error) {
	d, err := a.cs.AppsV1().DaemonSets(a.ns).Get(ctx, RoleAgent, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return AgentStatus{Missing: true}, nil
	}
	if err != nil {
		return AgentStatus{}, fmt.Errorf("kube: get the agents of lab %s: %w", a.name, err)
	}
	st := d.Status
	s := AgentStatus{Nodes: int(st.DesiredNumberScheduled)}
	if st.ObservedGeneration >= d.Generation {
		s.Ready = int(min(st.NumberReady, st.UpdatedNumberScheduled))
	}
	return s, nil
}
