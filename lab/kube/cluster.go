package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/fibercut/fibercut/lab"
)

// FieldManager is the name fibercut applies its objects under.
const FieldManager = "fibercut"

// ErrNotOurs is returned when an object fibercut would change exists but
// does not carry the lab's label: fibercut changes only what it created.
var ErrNotOurs = errors.New("exists and is not fibercut's")

// Connect returns a client of the cluster a kubeconfig names: the file
// given, else $KUBECONFIG, else ~/.kube/config, else the in-cluster
// service account.
func Connect(kubeconfig string) (kubernetes.Interface, *rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("kube: load kubeconfig: %w", err)
	}
	// client-go's default of 5 requests a second, in bursts of 10, would
	// hold a fault on five DCs (a look at the lab, then a request per DC
	// to its node's agent) for most of a second: kubectl's rate.
	cfg.QPS, cfg.Burst = 50, 300
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("kube: client for %s: %w", cfg.Host, err)
	}
	return cs, cfg, nil
}

// LocalAddr is this host's address toward the API server of cfg: where,
// on a cluster whose pods this host reaches as it reaches the API server
// (labs/kube/cluster's), the pods see this host's requests come from.
func LocalAddr(cfg *rest.Config) (netip.Addr, error) {
	u, err := url.Parse(cfg.Host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("kube: API server %q: %w", cfg.Host, err)
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	c, err := net.Dial("udp", net.JoinHostPort(u.Hostname(), port)) // sends nothing
	if err != nil {
		return netip.Addr{}, fmt.Errorf("kube: route to the API server %s: %w", cfg.Host, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}

// Cluster is one lab on a Kubernetes cluster.
type Cluster struct {
	cs   kubernetes.Interface
	name string
	ns   string
}

// NewCluster returns lab name on the cluster cs talks to.
func NewCluster(cs kubernetes.Interface, name string) *Cluster {
	if name == "" {
		name = lab.DefaultName
	}
	return &Cluster{cs: cs, name: name, ns: Namespace(name)}
}

// Name is the lab's name.
func (c *Cluster) Name() string { return c.name }

// Apply creates the lab's objects, or brings existing ones back to what o
// says, by server-side apply. It first checks that every existing object is
// the lab's and that the API server accepts every object (a dry run), so a
// refused object leaves nothing half-applied; a namespace it created for
// the dry run is removed again.
func (c *Cluster) Apply(ctx context.Context, o *Objects) error {
	if got := o.Namespace.Labels[lab.LabelLab]; got != c.name {
		return fmt.Errorf("kube: the objects are lab %q's, not %q's", got, c.name)
	}
	var all []metav1.Object
	created := false // the namespace, by this Apply
	for _, obj := range o.All() {
		exists, err := c.checkOurs(ctx, obj)
		if err != nil {
			return err
		}
		switch obj {
		case metav1.Object(o.Namespace):
			created = !exists
		case metav1.Object(o.AgentToken):
			// The agents' token is made once, with the lab: a
			// running agent read it when it started.
			if exists {
				continue
			}
		}
		all = append(all, obj)
	}
	if created {
		if err := c.apply(ctx, o.Namespace, false); err != nil {
			return err
		}
	}
	for _, obj := range all[1:] {
		if err := c.apply(ctx, obj, true); err != nil {
			if created {
				c.cs.CoreV1().Namespaces().Delete(context.WithoutCancel(ctx), c.ns, metav1.DeleteOptions{})
			}
			return err
		}
	}
	for _, obj := range all {
		if err := c.apply(ctx, obj, false); err != nil {
			return err
		}
	}
	return nil
}

// kindOf names an object's kind for messages.
func kindOf(obj metav1.Object) string {
	if t, ok := obj.(runtime.Object); ok {
		if k := t.GetObjectKind().GroupVersionKind().Kind; k != "" {
			return k
		}
	}
	return fmt.Sprintf("%T", obj)
}

// kindClient gets and applies objects of one kind in the lab's namespace
// (or, for a Namespace, the cluster's).
type kindClient struct {
	get   func(ctx context.Context, name string) (metav1.Object, error)
	patch func(ctx context.Context, name string, body []byte, opts metav1.PatchOptions) error
}

// typedClient is what client-go's typed clients of every kind have.
type typedClient[T metav1.Object] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (T, error)
}

func clientOf[T metav1.Object](t typedClient[T]) kindClient {
	return kindClient{
		get: func(ctx context.Context, name string) (metav1.Object, error) {
			return t.Get(ctx, name, metav1.GetOptions{})
		},
		patch: func(ctx context.Context, name string, body []byte, opts metav1.PatchOptions) error {
			_, err := t.Patch(ctx, name, types.ApplyPatchType, body, opts)
			return err
		},
	}
}

// client returns the client of obj's kind.
func (c *Cluster) client(obj metav1.Object) (kindClient, error) {
	switch obj.(type) {
	case *corev1.Namespace:
		return clientOf(c.cs.CoreV1().Namespaces()), nil
	case *corev1.ConfigMap:
		return clientOf(c.cs.CoreV1().ConfigMaps(c.ns)), nil
	case *corev1.Secret:
		return clientOf(c.cs.CoreV1().Secrets(c.ns)), nil
	case *corev1.Service:
		return clientOf(c.cs.CoreV1().Services(c.ns)), nil
	case *appsv1.StatefulSet:
		return clientOf(c.cs.AppsV1().StatefulSets(c.ns)), nil
	case *appsv1.Deployment:
		return clientOf(c.cs.AppsV1().Deployments(c.ns)), nil
	case *appsv1.DaemonSet:
		return clientOf(c.cs.AppsV1().DaemonSets(c.ns)), nil
	}
	return kindClient{}, fmt.Errorf("kube: no way to apply a %T", obj)
}

// checkOurs fails with ErrNotOurs if obj exists without the lab's label,
// and says whether it exists.
func (c *Cluster) checkOurs(ctx context.Context, obj metav1.Object) (bool, error) {
	kc, err := c.client(obj)
	if err != nil {
		return false, err
	}
	name := obj.GetName()
	have, err := kc.get(ctx, name)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("kube: get %s %s: %w", kindOf(obj), name, err)
	}
	if have.GetLabels()[lab.LabelLab] != c.name {
		return true, fmt.Errorf("kube: %s %s in namespace %s %w: it has no label %s=%s; remove it or choose another lab name",
			kindOf(obj), name, c.ns, ErrNotOurs, lab.LabelLab, c.name)
	}
	return true, nil
}

// apply sends obj by server-side apply, as a dry run or for real.
func (c *Cluster) apply(ctx context.Context, obj metav1.Object, dryRun bool) error {
	name := obj.GetName()
	kc, err := c.client(obj)
	if err != nil {
		return err
	}
	body, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("kube: %s %s: %w", kindOf(obj), name, err)
	}
	opts := metav1.PatchOptions{FieldManager: FieldManager, Force: new(true)}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	if err := kc.patch(ctx, name, body, opts); err != nil {
		what := "apply"
		if dryRun {
			what = "the API server refuses"
		}
		return fmt.Errorf("kube: %s %s %s/%s: %w", what, kindOf(obj), c.ns, name, err)
	}
	return nil
}

// Down deletes the lab's namespace, and with it everything in it, and
// waits until it is gone. It returns what the lab had ("StatefulSet/hz-a",
// ...), nothing if there was no lab. A namespace of that name without the
// lab's label is left alone.
func (c *Cluster) Down(ctx context.Context) ([]string, error) {
	ns, err := c.cs.CoreV1().Namespaces().Get(ctx, c.ns, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kube: get namespace %s: %w", c.ns, err)
	}
	if ns.Labels[lab.LabelLab] != c.name {
		return nil, fmt.Errorf("kube: namespace %s %w: it has no label %s=%s", c.ns, ErrNotOurs, lab.LabelLab, c.name)
	}
	had, err := c.objects(ctx)
	if err != nil {
		return nil, err
	}
	if ns.DeletionTimestamp == nil {
		err := c.cs.CoreV1().Namespaces().Delete(ctx, c.ns, metav1.DeleteOptions{
			Preconditions:     &metav1.Preconditions{UID: &ns.UID},
			PropagationPolicy: new(metav1.DeletePropagationBackground),
		})
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("kube: delete namespace %s: %w", c.ns, err)
		}
	}
	err = poll(ctx, func() (bool, error) {
		_, err := c.cs.CoreV1().Namespaces().Get(ctx, c.ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	if err != nil {
		return had, fmt.Errorf("kube: namespace %s is not gone yet (the cluster's namespace controller removes what is in it): %w", c.ns, err)
	}
	return append(had, "Namespace/"+c.ns), nil
}

// objects lists the lab's objects in its namespace, by kind and name.
func (c *Cluster) objects(ctx context.Context) ([]string, error) {
	sel := metav1.ListOptions{LabelSelector: lab.LabelLab + "=" + c.name}
	lists := []struct {
		kind string
		list func() (runtime.Object, error)
	}{
		{"StatefulSet", func() (runtime.Object, error) { return c.cs.AppsV1().StatefulSets(c.ns).List(ctx, sel) }},
		{"Deployment", func() (runtime.Object, error) { return c.cs.AppsV1().Deployments(c.ns).List(ctx, sel) }},
		{"DaemonSet", func() (runtime.Object, error) { return c.cs.AppsV1().DaemonSets(c.ns).List(ctx, sel) }},
		{"Secret", func() (runtime.Object, error) { return c.cs.CoreV1().Secrets(c.ns).List(ctx, sel) }},
		{"Service", func() (runtime.Object, error) { return c.cs.CoreV1().Services(c.ns).List(ctx, sel) }},
		{"ConfigMap", func() (runtime.Object, error) { return c.cs.CoreV1().ConfigMaps(c.ns).List(ctx, sel) }},
		{"PersistentVolumeClaim", func() (runtime.Object, error) { return c.cs.CoreV1().PersistentVolumeClaims(c.ns).List(ctx, sel) }},
	}
	var out []string
	for _, l := range lists {
		list, err := l.list()
		if err != nil {
			return nil, fmt.Errorf("kube: list the %ss of lab %s: %w", l.kind, c.name, err)
		}
		err = meta.EachListItem(list, func(o runtime.Object) error {
			a, err := meta.Accessor(o)
			if err == nil {
				out = append(out, l.kind+"/"+a.GetName())
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("kube: list the %ss of lab %s: %w", l.kind, c.name, err)
		}
	}
	slices.Sort(out)
	return out, nil
}

// DC is one DC of a lab on Kubernetes, as the cluster has it.
type DC struct {
	ID       string `json:"id"`
	City     string `json:"city"`
	Replicas int32  `json:"replicas"` // 0: powered off
	Pod      string `json:"pod,omitempty"`
	UID      string `json:"uid,omitempty"`   // the pod's
	Phase    string `json:"phase,omitempty"` // the pod's; "" when there is none
	Ready    bool   `json:"ready"`
	IP       string `json:"ip,omitempty"`
	Node     string `json:"node,omitempty"`
	// Why says why a pod that should run does not: the scheduler's or
	// the kubelet's reason, "" when it runs or there is none.
	Why string `json:"why,omitempty"`
	// Paused is set when the pod's processes are on this host and frozen
	// (a pause fault's doing, which the API server knows nothing of).
	Paused bool `json:"paused,omitempty"`
}

// Inspect returns the lab's DCs in the order of their StatefulSets' names,
// with lab.ErrNoLab if the lab has no namespace. It tells a paused DC by
// its freezer: on this host where its pod runs here ([OnHost]), else as
// the agent on its node says.
func (c *Cluster) Inspect(ctx context.Context) ([]DC, error) {
	if _, err := c.namespace(ctx); err != nil {
		return nil, err
	}
	sel := metav1.ListOptions{LabelSelector: lab.LabelLab + "=" + c.name + "," + lab.LabelRole + "=" + lab.RoleDC}
	ss, err := c.cs.AppsV1().StatefulSets(c.ns).List(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("kube: list the DCs of lab %s: %w", c.name, err)
	}
	pods, err := c.cs.CoreV1().Pods(c.ns).List(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("kube: list the pods of lab %s: %w", c.name, err)
	}
	var out []DC
	var running []*corev1.Pod
	for _, s := range ss.Items {
		d := DC{ID: s.Labels[lab.LabelDC], City: s.Labels[lab.LabelCity], Replicas: *s.Spec.Replicas}
		for i, p := range pods.Items {
			if p.Labels[lab.LabelDC] != d.ID || p.DeletionTimestamp != nil {
				continue
			}
			d.Pod, d.UID, d.Phase, d.IP, d.Node = p.Name, string(p.UID), string(p.Status.Phase), p.Status.PodIP, p.Spec.NodeName
			for _, cond := range p.Status.Conditions {
				switch {
				case cond.Type == corev1.PodReady:
					d.Ready = cond.Status == corev1.ConditionTrue
				case cond.Type == corev1.PodScheduled && cond.Status != corev1.ConditionTrue:
					d.Why = strings.TrimSpace(cond.Reason + ": " + cond.Message)
				}
			}
			for _, cs := range p.Status.ContainerStatuses {
				if w := cs.State.Waiting; w != nil && d.Why == "" {
					d.Why = strings.TrimSpace(w.Reason + ": " + w.Message)
				}
			}
			if p.Status.Phase == corev1.PodRunning {
				running = append(running, &pods.Items[i])
			}
		}
		out = append(out, d)
	}
	// Running pods may be paused. Unreadable: not known paused.
	seen := c.paused(ctx, running)
	for i, d := range out {
		out[i].Paused = seen[d.UID].Paused
	}
	slices.SortFunc(out, func(a, b DC) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// paused looks at the pods on this host, then asks the agents of the
// others' nodes.
func (c *Cluster) paused(ctx context.Context, pods []*corev1.Pod) map[string]PodHere {
	seen, err := OnHost(ctx, pods)
	if err != nil {
		seen = map[string]PodHere{}
	}
	var elsewhere []*corev1.Pod
	for _, p := range pods {
		if _, ok := seen[string(p.UID)]; !ok {
			elsewhere = append(elsewhere, p)
		}
	}
	if len(elsewhere) > 0 {
		if there, err := c.Agents().View(ctx, elsewhere); err == nil {
			maps.Copy(seen, there)
		}
	}
	return seen
}

// namespace returns the lab's namespace, with lab.ErrNoLab if there is
// none.
func (c *Cluster) namespace(ctx context.Context) (*corev1.Namespace, error) {
	ns, err := c.cs.CoreV1().Namespaces().Get(ctx, c.ns, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("kube: %w %q on this cluster (no namespace %s)", lab.ErrNoLab, c.name, c.ns)
	} else if err != nil {
		return nil, fmt.Errorf("kube: get namespace %s: %w", c.ns, err)
	}
	return ns, nil
}

// Gateway is the lab's gateway as the cluster has it.
type Gateway struct {
	Ready bool   `json:"ready"` // its Deployment has a ready pod
	Pod   string `json:"pod,omitempty"`
	IP    string `json:"ip,omitempty"` // the ready pod's address
}

// Gateway returns the state of the lab's gateway: during a rollout it is
// not ready, and its address is a ready pod's where there is one.
func (c *Cluster) Gateway(ctx context.Context) (Gateway, error) {
	d, err := c.cs.AppsV1().Deployments(c.ns).Get(ctx, lab.RoleGateway, metav1.GetOptions{})
	if err != nil {
		return Gateway{}, fmt.Errorf("kube: get the gateway of lab %s: %w", c.name, err)
	}
	// Ready once a rollout is complete: every pod is of the current
	// template, and one is ready.
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := d.Status
	g := Gateway{Ready: st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == want && st.Replicas == want && st.ReadyReplicas > 0}
	pods, err := c.cs.CoreV1().Pods(c.ns).List(ctx, metav1.ListOptions{LabelSelector: lab.LabelLab + "=" + c.name + "," + lab.LabelRole + "=" + lab.RoleGateway})
	if err != nil {
		return g, fmt.Errorf("kube: list the gateway's pods: %w", err)
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || p.Status.PodIP == "" {
			continue
		}
		ready := false
		for _, c := range p.Status.Conditions {
			ready = ready || (c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue)
		}
		if g.IP == "" || ready {
			g.Pod, g.IP = p.Name, p.Status.PodIP
		}
	}
	return g, nil
}

// Scale sets a DC's replicas (0 or 1) and returns; the StatefulSet
// controller then deletes or creates its pod.
func (c *Cluster) Scale(ctx context.Context, dc string, replicas int32) error {
	if replicas != 0 && replicas != 1 {
		return fmt.Errorf("kube: scale dc %s to %d: a DC has 0 or 1 replicas", dc, replicas)
	}
	_, err := c.cs.AppsV1().StatefulSets(c.ns).UpdateScale(ctx, dc, &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Name: dc, Namespace: c.ns},
		Spec:       autoscalingv1.ScaleSpec{Replicas: replicas},
	}, metav1.UpdateOptions{FieldManager: FieldManager})
	if err != nil {
		return fmt.Errorf("kube: scale dc %s to %d: %w", dc, replicas, err)
	}
	return nil
}

// PowerOff scales a DC to 0, kills its pod (no grace: a power loss) and
// returns once the pod is gone. Its data volume stays (the StatefulSet
// retains it when scaled).
func (c *Cluster) PowerOff(ctx context.Context, dc string) error {
	if err := c.Scale(ctx, dc, 0); err != nil {
		return err
	}
	err := c.cs.CoreV1().Pods(c.ns).Delete(ctx, dc+"-0", metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("kube: power off dc %s: kill its pod: %w", dc, err)
	}
	err = poll(ctx, func() (bool, error) {
		_, err := c.cs.CoreV1().Pods(c.ns).Get(ctx, dc+"-0", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	if err != nil {
		return fmt.Errorf("kube: power off dc %s: its pod is not gone: %w", dc, err)
	}
	return nil
}

// PowerOn scales a DC to 1 and returns once its pod runs.
func (c *Cluster) PowerOn(ctx context.Context, dc string) error {
	if err := c.Scale(ctx, dc, 1); err != nil {
		return err
	}
	err := poll(ctx, func() (bool, error) {
		p, err := c.cs.CoreV1().Pods(c.ns).Get(ctx, dc+"-0", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil && p.Status.Phase == corev1.PodRunning, err
	})
	if err != nil {
		return fmt.Errorf("kube: power on dc %s: its pod does not run: %w", dc, err)
	}
	return nil
}

// pollEvery is how often poll looks.
const pollEvery = 250 * time.Millisecond

// poll calls done until it says so, fails, or ctx ends.
func poll(ctx context.Context, done func() (bool, error)) error {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		ok, err := done()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
