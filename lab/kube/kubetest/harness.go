package kubetest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fibercut/fibercut/lab/labtest"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Harness is a whole cluster from labs/kube/cluster: the control plane and
// five kubelet nodes, labelled with the default topology's regions and
// zones, with the StorageClass fibercut-local.
type Harness struct {
	Kubeconfig string
	Client     kubernetes.Interface
	script     string
	state      string
}

// StorageClass is the harness's class of local volumes, one per node.
const StorageClass = "fibercut-local"

// StartHarness brings up labs/kube/cluster for the test, with its state in
// a temporary directory, and takes it down when the test ends, checking
// that nothing of it is left. It needs root; a cluster already up on the
// machine (its network names are fixed) is left alone and the test is
// skipped, or fails when FIBERCUT_REQUIRE_DOCKER=1.
func StartHarness(t testing.TB) *Harness {
	t.Helper()
	if testing.Short() {
		labtest.SkipOrFail(t, "kubetest: harness skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		labtest.SkipOrFail(t, "kubetest: the harness needs root")
	}
	if _, err := os.Stat("/run/netns/fck-fabric"); err == nil {
		labtest.SkipOrFail(t, "kubetest: a labs/kube/cluster is up on this machine already; `labs/kube/cluster down` it first")
	}
	tools, err := toolsModule()
	if err != nil {
		t.Fatal(err)
	}
	before := netnsList()
	h := &Harness{
		script: filepath.Join(filepath.Dir(filepath.Dir(tools)), "labs", "kube", "cluster"),
		state:  filepath.Join(t.TempDir(), "cluster"),
	}
	t.Cleanup(func() {
		if out, err := h.run("down"); err != nil {
			t.Errorf("labs/kube/cluster down: %v\n%s", err, out)
		}
		for _, n := range netnsList() {
			if !slices.Contains(before, n) {
				t.Errorf("labs/kube/cluster down left the network namespace %s", n)
			}
		}
		if b, _ := exec.Command("pgrep", "-af", h.state).Output(); len(b) > 0 {
			t.Errorf("labs/kube/cluster down left processes:\n%s", b)
		}
		if _, err := os.Stat(h.state); !os.IsNotExist(err) {
			t.Errorf("labs/kube/cluster down left %s (%v)", h.state, err)
		}
		if left, _ := filepath.Glob("/sys/fs/cgroup/*/fck-n*"); len(left) > 0 {
			t.Errorf("labs/kube/cluster down left the nodes' cgroups %v (a frozen process in them?)", left)
		}
	})
	if out, err := h.run("up"); err != nil {
		t.Fatalf("labs/kube/cluster up: %v\n%s\n%s", err, out, h.logs())
	}
	h.Kubeconfig = filepath.Join(h.state, "kubeconfig")
	cfg, err := clientcmd.BuildConfigFromFlags("", h.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if h.Client, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *Harness) run(verb string) ([]byte, error) {
	cmd := exec.Command(h.script, verb)
	cmd.Env = append(os.Environ(), "FIBERCUT_KUBE_STATE="+h.state)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// netnsList names the network namespaces in /run/netns.
func netnsList() []string {
	es, _ := os.ReadDir("/run/netns")
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// logs returns the end of each harness process's log, for a failure.
func (h *Harness) logs() string {
	var b strings.Builder
	files, _ := filepath.Glob(filepath.Join(h.state, "log", "*.log"))
	for _, f := range files {
		b.WriteString("== " + filepath.Base(f) + "\n" + tail(f, 1500) + "\n")
	}
	return b.String()
}

// Logs is logs, for tests that fail on the cluster.
func (h *Harness) Logs() string { return h.logs() }
