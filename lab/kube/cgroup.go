package kube

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// hostCgroupRoot is where a host mounts its cgroup hierarchies.
const hostCgroupRoot = "/sys/fs/cgroup"

// CgroupRoot is where this process finds the host's cgroup hierarchies:
// hostCgroupRoot on the host; the agent, in a container of its own, has
// them at [AgentCgroupRoot] and sets it there before it serves. The cgroup
// paths in /proc/PID/cgroup are read relative to it.
var CgroupRoot = hostCgroupRoot

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
func isPodDir(name string) bool { return len(podUIDs(name)) > 0 }

// HostPIDs finds pods' processes on this host by their cgroups, which the
// kubelet names after the pods' UIDs, in one pass over /proc, and gives
// each pod the process with the lowest PID. It sees the pods of the node it
// runs on: every pod on labs/kube/cluster, whose nodes share this host.
// Reading needs no privilege; entering what it finds needs root.
func HostPIDs(uids []string) (map[string]int, error) {
	found := map[string]int{}
	if len(uids) == 0 {
		return found, nil
	}
	want := map[string]string{} // the UID as a cgroup path may hold it → the UID
	for _, u := range uids {
		if u != "" {
			want[u] = u
			want[strings.ReplaceAll(u, "-", "_")] = u // systemd's
		}
	}
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return nil, err
	}
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		paths, err := procCgroups(pid)
		if err != nil {
			continue // a process that ended while we looked
		}
	paths:
		for _, p := range paths {
			for _, c := range podUIDs(p) {
				if u, ok := want[c]; ok {
					if best := found[u]; best == 0 || pid < best {
						found[u] = pid
					}
					break paths
				}
			}
		}
	}
	return found, nil
}

// podUIDs are the UIDs a cgroup path may name a pod directory by, as the
// path has them (with underscores under systemd): one per directory that
// looks like a pod's.
func podUIDs(path string) []string {
	var out []string
	for _, p := range strings.Split(path, "/") {
		if s, ok := strings.CutSuffix(p, ".slice"); ok {
			if i := strings.LastIndex(s, "-pod"); i >= 0 {
				out = append(out, s[i+len("-pod"):])
			} else if u, ok := strings.CutPrefix(s, "pod"); ok {
				out = append(out, u)
			}
		} else if u, ok := strings.CutPrefix(p, "pod"); ok {
			out = append(out, u)
		}
	}
	return out
}

// HostPaused reports whether the pod whose UID is uid is paused on this
// host (its freezer cgroup frozen, as a pause fault leaves it): the API
// server knows nothing of it. A pod with no process here is not.
func HostPaused(uid string) (bool, error) {
	pids, err := HostPIDs([]string{uid})
	if err != nil || pids[uid] == 0 {
		return false, err
	}
	return pausedAt(pids[uid], uid)
}

// pausedAt is HostPaused for pid, a process of the pod already found.
func pausedAt(pid int, uid string) (bool, error) {
	f, err := PodFreezer(pid, uid)
	if err != nil {
		return false, err
	}
	return f.Frozen()
}

// frozen is pausedAt with an error read as not known frozen.
func frozen(pid int, uid string) bool {
	fr, err := pausedAt(pid, uid)
	return err == nil && fr
}

// cgroupError names the pod in an error about its cgroups.
func cgroupError(what, uid string, err error) error {
	return fmt.Errorf("kube: %s of pod %s: %w", what, uid, err)
}
