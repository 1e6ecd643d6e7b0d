package kube

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fibercut/fibercut/nodeapi"
)

// Freezer is a pod's freezer cgroup on this host: freezing it stops every
// process of the pod (its sandbox and its containers) where it stands, as
// `docker pause` does a container's. Reading it needs nothing; changing it
// needs root.
type Freezer struct {
	dir string // the pod's cgroup directory in the freezer hierarchy
	v2  bool   // cgroup v2: cgroup.freeze, not freezer.state
}

// PodFreezer returns the freezer of the pod whose UID is uid, found from
// pid, one of its processes on this host (as [HostPIDs] finds). It works
// with cgroup v1's freezer controller and with cgroup v2, under the
// cgroupfs and systemd drivers.
func PodFreezer(pid int, uid string) (Freezer, error) {
	if pid <= 0 || uid == "" {
		return Freezer{}, fmt.Errorf("kube: freezer: no process of pod %q on this host", uid)
	}
	paths, err := procCgroups(pid)
	if err != nil {
		return Freezer{}, cgroupError("freezer", uid, err)
	}
	f := Freezer{dir: filepath.Join(CgroupRoot, "freezer")}
	path, ok := paths["freezer"]
	if !ok {
		if path, ok = paths[""]; !ok {
			return Freezer{}, cgroupError("freezer", uid, fmt.Errorf("process %d is in no freezer cgroup (neither cgroup v1's freezer controller nor cgroup v2)", pid))
		}
		f = Freezer{dir: CgroupRoot, v2: true}
	}
	if strings.Contains(path, "/..") {
		// cgroup v2 with a cgroup namespace of this process's own (an
		// agent's container, by the runtime's default): the path is
		// relative to it, not to the hierarchy's root.
		return Freezer{}, fmt.Errorf("kube: freezer: process %d is in cgroup %s, outside this process's cgroup namespace: run where the host's cgroup paths are seen (a host cgroup namespace, or cgroup v1)", pid, path)
	}
	pod, ok := podDir(path, uid)
	if !ok {
		return Freezer{}, fmt.Errorf("kube: freezer: process %d is in cgroup %s, not in pod %s's", pid, path, uid)
	}
	f.dir = filepath.Join(f.dir, pod)
	if _, err := os.Stat(filepath.Join(f.dir, f.file())); err != nil {
		return Freezer{}, cgroupError("freezer", uid, err)
	}
	return f, nil
}

// file is the freezer's control file.
func (f Freezer) file() string {
	if f.v2 {
		return "cgroup.freeze"
	}
	return "freezer.state"
}

// state is what the control file says when the pod is frozen or thawed.
func (f Freezer) state(frozen bool) string {
	switch {
	case f.v2 && frozen:
		return "1"
	case f.v2:
		return "0"
	case frozen:
		return "FROZEN"
	}
	return "THAWED"
}

// Dir is the pod's cgroup directory.
func (f Freezer) Dir() string { return f.dir }

// Frozen tells whether the pod is frozen, or being frozen.
func (f Freezer) Frozen() (bool, error) {
	s, err := f.read()
	if err != nil {
		return false, err
	}
	return s != f.state(false), nil
}

func (f Freezer) read() (string, error) {
	b, err := os.ReadFile(filepath.Join(f.dir, f.file()))
	if err != nil {
		return "", fmt.Errorf("kube: freezer: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Set freezes (frozen) or thaws the pod, and waits until the kernel says
// it is done: every process stopped, or every one free to run again.
func (f Freezer) Set(ctx context.Context, frozen bool) error {
	name, value := f.file(), f.state(frozen)
	what := map[bool]string{true: "freeze", false: "thaw"}[frozen]
	if err := os.WriteFile(filepath.Join(f.dir, name), []byte(value), 0); err != nil {
		return fmt.Errorf("kube: %s pod cgroup %s: %w", what, f.dir, err)
	}
	for {
		s, err := f.read()
		if err != nil {
			return err
		}
		if s == value && (!f.v2 || !frozen || f.v2Frozen()) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kube: %s pod cgroup %s: still %s: %w", what, f.dir, s, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
		// cgroup v1 stays FREEZING while a process resists; writing
		// FROZEN again retries it.
		if frozen && !f.v2 {
			if err := os.WriteFile(filepath.Join(f.dir, name), []byte(value), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("kube: %s pod cgroup %s: %w", what, f.dir, err)
			}
		}
	}
}

// v2Frozen reads cgroup v2's cgroup.events: "frozen 1" once every process
// has stopped (cgroup.freeze only says what was asked).
func (f Freezer) v2Frozen() bool {
	b, err := os.ReadFile(filepath.Join(f.dir, "cgroup.events"))
	return err == nil && strings.Contains(string(b), "frozen 1")
}

// ThawHost thaws every pod frozen on this host whose processes are the
// node of lab's DC dc (every DC when dc is ""), as their environment says
// ([nodeapi.EnvLab], [nodeapi.EnvDC]). It needs no API server: a pause
// ends even when the cluster is unreachable or the pod is being deleted
// (a frozen pod cannot die, so a lab deleted with one would never be
// gone). It returns the DCs it thawed.
func ThawHost(ctx context.Context, labName, dc string) ([]string, error) {
	hierarchy, v2 := filepath.Join(CgroupRoot, "freezer"), false
	if _, err := os.Stat(hierarchy); err != nil {
		hierarchy, v2 = CgroupRoot, true
	}
	var thawed []string
	var errs []error
	err := filepath.WalkDir(hierarchy, func(path string, e fs.DirEntry, err error) error {
		if err != nil || !e.IsDir() || !isPodDir(e.Name()) {
			return nil // a cgroup that went while we walked, or not a pod's
		}
		f := Freezer{dir: path, v2: v2}
		if frozen, err := f.Frozen(); err != nil || !frozen {
			return fs.SkipDir
		}
		id, ok := nodeOf(path, labName)
		if !ok || (dc != "" && id != dc) {
			return fs.SkipDir
		}
		if err := f.Set(ctx, false); err != nil {
			errs = append(errs, fmt.Errorf("kube: thaw dc %s: %w", id, err))
		} else {
			thawed = append(thawed, id)
		}
		return fs.SkipDir
	})
	slices.Sort(thawed)
	return slices.Compact(thawed), errors.Join(append(errs, err)...)
}

// nodeOf returns the DC whose node of lab runs in the cgroup tree at dir,
// by the environment of its processes.
func nodeOf(dir, labName string) (string, bool) {
	var dc string
	filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || dc != "" || e.IsDir() || e.Name() != "cgroup.procs" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		for _, f := range strings.Fields(string(b)) {
			env, err := os.ReadFile("/proc/" + f + "/environ")
			if err != nil {
				continue
			}
			vars := strings.Split(string(env), "\x00")
			if slices.Contains(vars, nodeapi.EnvLab+"="+labName) {
				for _, v := range vars {
					if id, ok := strings.CutPrefix(v, nodeapi.EnvDC+"="); ok {
						dc = id
						return fs.SkipAll
					}
				}
			}
		}
		return nil
	})
	return dc, dc != ""
}

// LabPod finds, on this host, a process of the pod whose UID is uid and
// checks by its processes' environment that the pod is lab's DC dc: an
// agent changes nothing in a pod that is not fibercut's. It returns the
// process and the pod's freezer.
func LabPod(labName, dc, uid string) (int, Freezer, error) {
	pids, err := HostPIDs([]string{uid})
	if err != nil {
		return 0, Freezer{}, fmt.Errorf("kube: find pod %s: %w", uid, err)
	}
	pid := pids[uid]
	if pid == 0 {
		return 0, Freezer{}, fmt.Errorf("kube: pod %s of dc %s has no process on this node", uid, dc)
	}
	f, err := PodFreezer(pid, uid)
	if err != nil {
		return 0, Freezer{}, err
	}
	if got, ok := nodeOf(f.dir, labName); !ok || got != dc {
		return 0, Freezer{}, fmt.Errorf("kube: pod %s %w: it is not the node of lab %s's dc %s", uid, ErrNotOurs, labName, dc)
	}
	return pid, f, nil
}
