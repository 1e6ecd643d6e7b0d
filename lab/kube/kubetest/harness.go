package kubetest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

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
// that nothing of it is left. It needs root.
//
// Its network names are fixed, so one cluster runs on a machine at a time.
// A test holds a machine-wide lock while its cluster is up: another test
// waits for it (up to 10 minutes). A cluster that a killed test left, its
// lock gone with its process, is taken down first. A cluster started by
// hand is left alone and the test is skipped, or fails when
// FIBERCUT_REQUIRE_DOCKER=1.
func StartHarness(t testing.TB) *Harness {
	t.Helper()
	if testing.Short() {
		labtest.SkipOrFail(t, "kubetest: harness skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		labtest.SkipOrFail(t, "kubetest: the harness needs root")
	}
	tools, err := toolsModule()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(filepath.Dir(filepath.Dir(tools)), "labs", "kube", "cluster")
	lock, err := machineMarks.lock(t)
	if err != nil {
		labtest.SkipOrFail(t, "kubetest: %v", err)
	}
	t.Cleanup(func() { lock.Close() })
	switch left := machineMarks.leftover(); {
	case left.byTest:
		t.Logf("kubetest: taking down the harness cluster a killed test left (state in %s)", left.state)
		stale := &Harness{script: script, state: left.state}
		if out, err := stale.run("down"); err != nil {
			t.Fatalf("labs/kube/cluster down, of the cluster a killed test left: %v\n%s", err, out)
		}
		if again := machineMarks.leftover(); again.found {
			t.Fatalf("kubetest: labs/kube/cluster down left the cluster of a killed test up (state in %s)", left.state)
		}
	case left.found:
		labtest.SkipOrFail(t, "kubetest: %s", left)
	}
	before := netnsList()
	h := &Harness{script: script, state: filepath.Join(t.TempDir(), "cluster")}
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
		if _, err := os.Stat(machineMarks.record); !os.IsNotExist(err) {
			t.Errorf("labs/kube/cluster down left its record %s (%v)", machineMarks.record, err)
		}
		if left, _ := filepath.Glob("/sys/fs/cgroup/*/fck-n*"); len(left) > 0 {
			t.Errorf("labs/kube/cluster down left the nodes' cgroups %v (a frozen process in them?)", left)
		}
	})
	// Marked before up, so that a test killed during it leaves a cluster
	// the next test knows it may take down.
	if err := markOwner(h.state); err != nil {
		t.Fatal(err)
	}
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

// marks are where a harness cluster shows on the machine: the script's
// record of its state directory, the fabric's network namespace, and the
// lock a test holds while its cluster is up.
type marks struct {
	record, fabric, lockFile string
	wait                     time.Duration // for another test's lock
}

var machineMarks = marks{
	record:   "/run/fibercut-kube/cluster",
	fabric:   "/run/netns/fck-fabric",
	lockFile: "/run/fibercut-kube/test.lock",
	wait:     10 * time.Minute,
}

// ownerFile, in a cluster's state directory, says that a test made it.
const ownerFile = "kubetest-owner"

func markOwner(state string) error {
	if err := os.MkdirAll(state, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(state, ownerFile), fmt.Appendf(nil, "pid %d\n", os.Getpid()), 0o644)
}

// errHeld: another test holds the lock on harness clusters.
var errHeld = errors.New("another test's harness cluster is still up")

// lock takes the machine-wide lock on harness clusters, waiting up to
// m.wait for a test that holds it. The kernel drops it when the holder
// dies, however it dies; the file is opened close-on-exec, so that none of
// the cluster's processes holds it on.
func (m marks) lock(t testing.TB) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(m.lockFile), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(m.lockFile, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(m.wait)
	for logged := false; ; logged = true {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return f, nil
		case !errors.Is(err, syscall.EWOULDBLOCK):
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", m.lockFile, err)
		case time.Now().After(deadline):
			f.Close()
			return nil, fmt.Errorf("%w after %s (it holds %s)", errHeld, m.wait, m.lockFile)
		}
		if !logged && t != nil {
			t.Logf("kubetest: waiting for another test's harness cluster (it holds %s)", m.lockFile)
		}
		time.Sleep(time.Second)
	}
}

// upCluster is a cluster found up on the machine.
type upCluster struct {
	found  bool
	state  string // the cluster's state directory, if recorded
	byTest bool   // a test made it
}

func (l upCluster) String() string {
	switch {
	case !l.found:
		return "no harness cluster is up"
	case l.byTest:
		return "a killed test left a harness cluster up (state in " + l.state + ")"
	case l.state == "":
		return "a labs/kube/cluster is up on this machine, with no record of its state; take it down by hand (FIBERCUT_KUBE_STATE=DIR labs/kube/cluster down)"
	default:
		return "a labs/kube/cluster started by hand is up on this machine (state in " + l.state + "); `labs/kube/cluster down` it first"
	}
}

// leftover looks for a cluster up on the machine. Called with the lock
// held, a cluster a test made is one a killed test left.
func (m marks) leftover() upCluster {
	var l upCluster
	if b, err := os.ReadFile(m.record); err == nil {
		l.found, l.state = true, strings.TrimSpace(string(b))
		_, err := os.Stat(filepath.Join(l.state, ownerFile))
		l.byTest = l.state != "" && err == nil
	}
	if _, err := os.Stat(m.fabric); err == nil {
		l.found = true
	}
	return l
}
