package kube

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// cgroupRoot is where this host mounts its cgroup hierarchies.
const cgroupRoot = "/sys/fs/cgroup"

// procCgroups reads /proc/PID/cgroup: the cgroup of the process in each
// cgroup v1 controller's hierarchy, by controller, and in cgroup v2's
// unified one under "".
func procCgroups(pid int) (map[string]string, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	paths := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "ID:controllers:path"; cgroup v2's line is "0::path".
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			paths[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			paths[c] = parts[2]
		}
	}
	return paths, sc.Err()
}

// podDir cuts a cgroup path after the pod's own directory: "pod<UID>" with
// the cgroupfs driver, "…-pod<UID with underscores>.slice" with systemd's.
func podDir(path, uid string) (string, bool) {
	fs, sd := "pod"+uid, "pod"+strings.ReplaceAll(uid, "-", "_")+".slice"
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if p == fs || p == sd || strings.HasSuffix(p, "-"+sd) {
			return strings.Join(parts[:i+1], "/"), true
		}
	}
	return "", false
}

// isPodDir tells a pod's cgroup directory by its name, under the cgroupfs
// driver ("pod<UID>") and systemd's ("…-pod<UID>.slice").
func isPodDir(name string) bool {
	return strings.HasPrefix(name, "pod") || (strings.Contains(name, "-pod") && strings.HasSuffix(name, ".slice"))
}

// PIDFinder finds a process of a running pod on this host, whose
// /proc/PID/ns/net is the pod's network namespace; 0 when the pod has none
// here.
type PIDFinder func(pod *corev1.Pod) (int, error)

// HostPIDs finds a pod's processes on this host by their cgroup, which the
// kubelet names after the pod's UID, and returns the oldest (the lowest
// PID). It reads /proc, so it sees the pods of the node it runs on: every
// pod on labs/kube/cluster, whose nodes share this host. Reading needs no
// privilege; entering what it finds needs root.
func HostPIDs(pod *corev1.Pod) (int, error) { return hostPID(string(pod.UID)) }

func hostPID(uid string) (int, error) {
	if uid == "" {
		return 0, nil
	}
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return 0, err
	}
	best := 0
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || (best != 0 && pid >= best) {
			continue
		}
		paths, err := procCgroups(pid)
		if err != nil {
			continue // a process that ended while we looked
		}
		for _, p := range paths {
			if _, ok := podDir(p, uid); ok {
				best = pid
				break
			}
		}
	}
	return best, nil
}

// HostPaused reports whether the pod whose UID is uid is paused on this
// host (its freezer cgroup frozen, as a pause fault leaves it): the API
// server knows nothing of it. A pod with no process here is not.
func HostPaused(uid string) (bool, error) {
	pid, err := hostPID(uid)
	if err != nil || pid == 0 {
		return false, err
	}
	f, err := PodFreezer(pid, uid)
	if err != nil {
		return false, err
	}
	return f.Frozen()
}

// cgroupError names the pod in an error about its cgroups.
func cgroupError(what, uid string, err error) error {
	return fmt.Errorf("kube: %s of pod %s: %w", what, uid, err)
}
