package kube_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/lab/kube"
	"github.com/fibercut/fibercut/lab/kube/kubetest"
	"github.com/fibercut/fibercut/lab/labtest"
)

func podOf(cs kubernetes.Interface, ns, dc string) (*corev1.Pod, bool) {
	p, err := cs.CoreV1().Pods(ns).Get(context.Background(), dc+"-0", metav1.GetOptions{})
	return p, err == nil && p.DeletionTimestamp == nil
}

// TestLabOnARealAPIServer applies a lab to a real kube-apiserver with a
// real controller manager (no kubelet): the API server accepts every
// object, the StatefulSet controller makes each DC's pod and data volume,
// a power-off removes the pod and keeps the volume, and Down removes
// everything the lab made and nothing else.
func TestLabOnARealAPIServer(t *testing.T) {
	cp := kubetest.Start(t)
	cs := cp.Client
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	o, err := kube.Build(kube.Options{Name: "kt", PullPolicy: corev1.PullNever})
	if err != nil {
		t.Fatal(err)
	}
	c := kube.NewCluster(cs, "kt")
	if err := c.Apply(ctx, o); err != nil {
		t.Fatal(err)
	}
	ns := kube.Namespace("kt")
	ss0, err := cs.AppsV1().StatefulSets(ns).Get(ctx, "hz-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Applying again changes nothing, not even the agents' token, which
	// a second build makes afresh: running agents read it when they
	// started.
	again, err := kube.Build(kube.Options{Name: "kt", PullPolicy: corev1.PullNever})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(ctx, again); err != nil {
		t.Fatalf("second apply: %v", err)
	}
	ss1, _ := cs.AppsV1().StatefulSets(ns).Get(ctx, "hz-a", metav1.GetOptions{})
	if ss1.Generation != ss0.Generation {
		t.Errorf("a second apply moved hz-a from generation %d to %d", ss0.Generation, ss1.Generation)
	}
	sec, err := cs.CoreV1().Secrets(ns).Get(ctx, kube.AgentSecret, metav1.GetOptions{})
	if err != nil || string(sec.Data[kube.AgentTokenKey]) != o.AgentToken.StringData[kube.AgentTokenKey] {
		t.Errorf("after a second apply, the agents' token is %q (%v); want the first one's", sec.Data[kube.AgentTokenKey], err)
	}
	if ds, err := cs.AppsV1().DaemonSets(ns).Get(ctx, kube.RoleAgent, metav1.GetOptions{}); err != nil || !ds.Spec.Template.Spec.HostPID {
		t.Errorf("the agent DaemonSet: %v", err)
	}

	dcs, err := c.Inspect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range dcs {
		ids = append(ids, d.ID)
		if d.Replicas != 1 {
			t.Errorf("dc %s has %d replicas", d.ID, d.Replicas)
		}
	}
	if want := []string{"hz-a", "hz-b", "sh-a", "sh-b", "sz-a"}; !slices.Equal(ids, want) {
		t.Fatalf("Inspect: DCs %v, want %v", ids, want)
	}
	// The StatefulSet controller makes each DC's pod, as the template
	// says, and its data volume.
	for _, dc := range ids {
		labtest.Eventually(t, time.Minute, "pod "+dc+"-0 made", func() bool { _, ok := podOf(cs, ns, dc); return ok })
		p, _ := podOf(cs, ns, dc)
		if p.Labels[lab.LabelLab] != "kt" || p.Labels[lab.LabelDC] != dc || p.Spec.Affinity.NodeAffinity == nil {
			t.Errorf("pod %s: labels %v, affinity %+v", p.Name, p.Labels, p.Spec.Affinity)
		}
		if _, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-"+dc+"-0", metav1.GetOptions{}); err != nil {
			t.Errorf("dc %s: data volume: %v", dc, err)
		}
	}
	// The headless Service's name for hz-a-0 is the one its peers use.
	if e, _ := cs.CoreV1().Services(ns).Get(ctx, "hz-a", metav1.GetOptions{}); e == nil || e.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("Service hz-a: %+v", e)
	}

	// Power-off: the pod goes, the volume stays; power-on brings it back.
	if err := c.PowerOff(ctx, "hz-a"); err != nil {
		t.Fatal(err)
	}
	if _, ok := podOf(cs, ns, "hz-a"); ok {
		t.Error("hz-a-0 still there after the power-off")
	}
	if _, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-hz-a-0", metav1.GetOptions{}); err != nil {
		t.Errorf("the power-off lost hz-a's data volume: %v", err)
	}
	if dcs, _ := c.Inspect(ctx); dcs[0].Replicas != 0 || dcs[0].Pod != "" {
		t.Errorf("Inspect after the power-off: %+v", dcs[0])
	}
	if err := c.Scale(ctx, "hz-a", 1); err != nil {
		t.Fatal(err)
	}
	labtest.Eventually(t, time.Minute, "hz-a-0 made again", func() bool { _, ok := podOf(cs, ns, "hz-a"); return ok })
	if err := c.Scale(ctx, "hz-a", 2); err == nil {
		t.Error("a DC scaled to 2 replicas")
	}

	// Someone else's namespace of a lab's name is neither taken over nor
	// removed.
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kube.Namespace("other")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	other := kube.NewCluster(cs, "other")
	oo, _ := kube.Build(kube.Options{Name: "other"})
	if err := other.Apply(ctx, oo); !errors.Is(err, kube.ErrNotOurs) {
		t.Errorf("Apply into an unlabelled namespace = %v, want ErrNotOurs", err)
	}
	if cms, _ := cs.CoreV1().ConfigMaps(kube.Namespace("other")).List(ctx, metav1.ListOptions{LabelSelector: lab.LabelLab}); len(cms.Items) != 0 {
		t.Errorf("a refused Apply left %d ConfigMaps", len(cms.Items))
	}
	if _, err := other.Down(ctx); !errors.Is(err, kube.ErrNotOurs) {
		t.Errorf("Down of an unlabelled namespace = %v, want ErrNotOurs", err)
	}

	// An object the API server refuses leaves nothing behind.
	bad, _ := kube.Build(kube.Options{Name: "bad", StorageClass: "Not_A_Class"})
	err = kube.NewCluster(cs, "bad").Apply(ctx, bad)
	if err == nil || !strings.Contains(err.Error(), "refuses StatefulSet") {
		t.Errorf("Apply with a bad storage class = %v, want the API server's refusal", err)
	}
	labtest.Eventually(t, time.Minute, "namespace fibercut-bad gone", func() bool {
		_, err := cs.CoreV1().Namespaces().Get(ctx, kube.Namespace("bad"), metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})

	// Down removes what the lab made, and only that.
	removed, err := c.Down(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"StatefulSet/hz-a", "Service/gateway", "Deployment/gateway", "ConfigMap/topology", "PersistentVolumeClaim/data-sz-a-0", "DaemonSet/agent", "Secret/agent-token", "Namespace/fibercut-kt"} {
		if !slices.Contains(removed, want) {
			t.Errorf("Down removed %v, not %s", removed, want)
		}
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace %s after Down: %v", ns, err)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, kube.Namespace("other"), metav1.GetOptions{}); err != nil {
		t.Errorf("someone else's namespace after Down: %v", err)
	}
	if _, err := c.Inspect(ctx); !errors.Is(err, lab.ErrNoLab) {
		t.Errorf("Inspect after Down = %v, want ErrNoLab", err)
	}
	if again, err := c.Down(ctx); err != nil || len(again) != 0 {
		t.Errorf("a second Down = %v, %v; want nothing to do", again, err)
	}
}
