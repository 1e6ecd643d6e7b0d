package kube

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fibercut/fibercut/lab/labtest"
	"github.com/fibercut/fibercut/nodeapi"
)

func TestPodDir(t *testing.T) {
	const uid = "6a1f-2b"
	for _, c := range []struct {
		path, want string
		ok         bool
	}{
		{"/fck-n3/kubepods/besteffort/pod6a1f-2b/0f9e", "/fck-n3/kubepods/besteffort/pod6a1f-2b", true},
		{"/kubepods/pod6a1f-2b", "/kubepods/pod6a1f-2b", true},
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod6a1f_2b.slice/cri-containerd-0f9e.scope",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod6a1f_2b.slice", true},
		{"/kubepods.slice/kubepods-pod6a1f_2b.slice/cri-containerd-0f9e.scope", "/kubepods.slice/kubepods-pod6a1f_2b.slice", true}, // guaranteed
		{"/kubepods/besteffort/pod6a1f-2bc/0f9e", "", false},                                                                       // another pod whose UID starts alike
		{"/kubepods.slice/kubepods-pod6a1f_2bc.slice", "", false},
		{"/docker/0f9e", "", false},
	} {
		got, ok := podDir(c.path, uid)
		if got != c.want || ok != c.ok {
			t.Errorf("podDir(%q) = %q, %v; want %q, %v", c.path, got, ok, c.want, c.ok)
		}
	}
}

func TestPodUIDs(t *testing.T) {
	for path, want := range map[string][]string{
		"/fck-n3/kubepods/besteffort/pod6a1f-2b/0f9e": {"6a1f-2b"},
		"/kubepods/pod6a1f-2b":                        {"6a1f-2b"},
		"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod6a1f_2b.slice/cri-0f9e": {"6a1f_2b"},
		"/kubepods.slice/kubepods-pod6a1f_2b.slice":                                               {"6a1f_2b"},
		"/podman.slice/kubepods/pod6a1f-2b":                                                       {"man", "6a1f-2b"}, // a lookalike above the pod
		"/kubepods.slice/kubepods-burstable.slice":                                                nil,
		"/docker/0f9e": nil,
		"/":            nil,
	} {
		if got := podUIDs(path); !slices.Equal(got, want) {
			t.Errorf("podUIDs(%q) = %q, want %q", path, got, want)
		}
	}
}

// TestProcCgroups reads this process's cgroups: every hierarchy it is in
// is named, and every path is absolute.
func TestProcCgroups(t *testing.T) {
	paths, err := procCgroups(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("procCgroups found no cgroup of this process")
	}
	for c, p := range paths {
		if !strings.HasPrefix(p, "/") {
			t.Errorf("cgroup of controller %q: %q, want an absolute path", c, p)
		}
	}
	if _, err := procCgroups(-1); err == nil {
		t.Error("procCgroups(-1) found cgroups of no process")
	}
}

// TestFreezerFreezesAndThaws puts a real process in a cgroup shaped as a
// pod's (its own, removed after) and freezes and thaws it through the
// kernel's freezer, as a pause on Kubernetes does a DC's pod.
func TestFreezerFreezesAndThaws(t *testing.T) {
	if os.Geteuid() != 0 {
		labtest.SkipOrFail(t, "the freezer test needs root")
	}
	hierarchy, procs := filepath.Join(CgroupRoot, "freezer"), "cgroup.procs"
	if _, err := os.Stat(hierarchy); err != nil {
		hierarchy = CgroupRoot // cgroup v2
		if _, err := os.Stat(filepath.Join(hierarchy, "cgroup.controllers")); err != nil {
			labtest.SkipOrFail(t, "no cgroup freezer on this host: %v", err)
		}
	}
	const uid = "f1bc-0000-test"
	parent := filepath.Join(hierarchy, "fibercut-test-"+strconv.Itoa(os.Getpid()))
	dir := filepath.Join(parent, "pod"+uid)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	const labName = "fibercut-test-freezer"
	sleep := exec.Command("sleep", "300")
	sleep.Env = []string{nodeapi.EnvLab + "=" + labName, nodeapi.EnvDC + "=xx-a"}
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Thawed first: a frozen process takes its SIGKILL only once it
		// runs again.
		os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("THAWED"), 0)
		os.WriteFile(filepath.Join(dir, "cgroup.freeze"), []byte("0"), 0)
		sleep.Process.Kill()
		sleep.Wait()
		os.Remove(dir)
		os.Remove(parent)
	})
	if err := os.WriteFile(filepath.Join(dir, procs), []byte(strconv.Itoa(sleep.Process.Pid)), 0); err != nil {
		t.Fatal(err)
	}
	f, err := PodFreezer(sleep.Process.Pid, uid)
	if err != nil {
		t.Fatal(err)
	}
	if f.Dir() != dir {
		t.Fatalf("PodFreezer found %s, want %s", f.Dir(), dir)
	}
	if _, err := PodFreezer(sleep.Process.Pid, "another-pod"); err == nil {
		t.Error("PodFreezer took the process for another pod's")
	}
	// The pod's processes are found on the host by its cgroup.
	if pids, err := HostPIDs([]string{uid, "another-pod"}); err != nil || pids[uid] != sleep.Process.Pid || len(pids) != 1 {
		t.Errorf("HostPIDs(%s, another-pod) = %v, %v; want only %s: %d, the process in the pod's cgroup", uid, pids, err, uid, sleep.Process.Pid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, want := range []bool{true, false, true, false} {
		if err := f.Set(ctx, want); err != nil {
			t.Fatal(err)
		}
		got, err := f.Frozen()
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("after Set(%v), Frozen() = %v", want, got)
		}
		if paused, err := HostPaused(uid); err != nil || paused != want {
			t.Fatalf("after Set(%v), HostPaused = %v, %v", want, paused, err)
		}
		// Frozen or thawed, the process lives on.
		if err := sleep.Process.Signal(syscall.Signal(0)); err != nil {
			t.Fatalf("the process died while frozen=%v: %v", want, err)
		}
	}

	// ThawHost finds the pod by its node's environment, with no API
	// server, and thaws only the lab's and the DC's asked for.
	if err := f.Set(ctx, true); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ lab, dc string }{{labName, "xx-b"}, {"another-lab", ""}, {"another-lab", "xx-a"}} {
		if got, err := ThawHost(ctx, c.lab, c.dc); err != nil || len(got) != 0 {
			t.Errorf("ThawHost(%q, %q) = %v, %v; want nothing thawed", c.lab, c.dc, got, err)
		}
	}
	if fr, _ := f.Frozen(); !fr {
		t.Fatal("a ThawHost for another lab or DC thawed the pod")
	}
	if got, err := ThawHost(ctx, labName, "xx-a"); err != nil || !slices.Equal(got, []string{"xx-a"}) {
		t.Errorf("ThawHost(lab, xx-a) = %v, %v; want [xx-a]", got, err)
	}
	if fr, _ := f.Frozen(); fr {
		t.Error("ThawHost left the pod frozen")
	}
	if got, err := ThawHost(ctx, labName, ""); err != nil || len(got) != 0 {
		t.Errorf("ThawHost of a thawed lab = %v, %v; want nothing", got, err)
	}
}

// BenchmarkHostPIDs is one look for a lab's five pods on this host: one
// pass over /proc, whatever the number of pods (the WAN holder on
// Kubernetes looks every second).
func BenchmarkHostPIDs(b *testing.B) {
	uids := []string{"6a1f-0001", "6a1f-0002", "6a1f-0003", "6a1f-0004", "6a1f-0005"}
	for b.Loop() {
		if _, err := HostPIDs(uids); err != nil {
			b.Fatal(err)
		}
	}
}
