package lab_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"

	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/lab/labtest"
	"github.com/fibercut/fibercut/topology"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// labObjects counts the containers, networks and volumes labelled with name.
func labObjects(t *testing.T, cli client.APIClient, name string) (cs, ns, vs int) {
	t.Helper()
	ctx := ctxT(t)
	f := filters.NewArgs(filters.Arg("label", lab.LabelLab+"="+name))
	c, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	n, err := cli.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	v, err := cli.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	return len(c), len(n), len(v.Volumes)
}

func containerIDs(l *lab.Lab) map[string]string {
	m := map[string]string{}
	for _, d := range l.DCs {
		m[d.ID] = d.ContainerID
	}
	return m
}

// TestUpStatusDown brings the default five-DC lab up, checks every DC as
// `lab status` would, checks that a second `up` changes nothing, and that
// `down` removes exactly what was created.
func TestUpStatusDown(t *testing.T) {
	cli := labtest.RequireDocker(t)
	ctx := ctxT(t)
	l := labtest.Up(t, cli, topology.Default)

	if len(l.DCs) != 5 {
		t.Fatalf("lab has %d DCs, want 5", len(l.DCs))
	}
	if l.WAN.Subnet.Overlaps(l.Mgmt.Subnet) {
		t.Fatalf("WAN %s and management %s subnets overlap", l.WAN.Subnet, l.Mgmt.Subnet)
	}
	wantCity := map[string]string{"hz-a": "hangzhou", "hz-b": "hangzhou", "sh-a": "shanghai", "sh-b": "shanghai", "sz-a": "shenzhen"}
	seen := map[netip.Addr]bool{}
	for _, d := range l.DCs {
		if d.State != "running" || d.Health != "ok" || d.Pid == 0 {
			t.Errorf("%s: state %q health %q pid %d, want running, ok and a pid", d.ID, d.State, d.Health, d.Pid)
		}
		if wantCity[d.ID] != d.City {
			t.Errorf("%s: city %q, want %q", d.ID, d.City, wantCity[d.ID])
		}
		if !l.WAN.Subnet.Contains(d.WANIP) || !l.Mgmt.Subnet.Contains(d.MgmtIP) {
			t.Errorf("%s: WAN %s in %s, management %s in %s", d.ID, d.WANIP, l.WAN.Subnet, d.MgmtIP, l.Mgmt.Subnet)
		}
		if seen[d.WANIP] {
			t.Errorf("%s: WAN address %s used twice", d.ID, d.WANIP)
		}
		seen[d.WANIP] = true
		// The node answers on the WAN too, naming its DC.
		if err := lab.ProbeHealth(ctx, d.WANIP, l.Name, d.ID); err != nil {
			t.Errorf("%s: health over WAN: %v", d.ID, err)
		}
		c, err := cli.ContainerInspect(ctx, d.ContainerID)
		if err != nil {
			t.Fatal(err)
		}
		if c.Config.Hostname != d.ID {
			t.Errorf("%s: hostname %q", d.ID, c.Config.Hostname)
		}
		for k, v := range map[string]string{lab.LabelLab: l.Name, lab.LabelCity: d.City, lab.LabelDC: d.ID} {
			if c.Config.Labels[k] != v {
				t.Errorf("%s: label %s=%q, want %q", d.ID, k, c.Config.Labels[k], v)
			}
		}
		// Six Go processes share the host's CPUs rather than each sizing
		// its scheduler to all of them.
		if want := fmt.Sprintf("GOMAXPROCS=%d", max(1, runtime.NumCPU()/6)); !slices.Contains(c.Config.Env, want) {
			t.Errorf("%s: environment lacks %s", d.ID, want)
		}
		if len(c.HostConfig.CapAdd) != 1 || strings.TrimPrefix(c.HostConfig.CapAdd[0], "CAP_") != "NET_ADMIN" {
			t.Errorf("%s: capabilities %v, want [NET_ADMIN]", d.ID, c.HostConfig.CapAdd)
		}
		for netName, alias := range map[string]string{l.WAN.Name: lab.WANName(d.ID), l.Mgmt.Name: lab.MgmtName(d.ID)} {
			if ep := c.NetworkSettings.Networks[netName]; ep == nil || !slices.Contains(ep.Aliases, alias) {
				t.Errorf("%s: no DNS name %s on %s", d.ID, alias, netName)
			}
		}
		if len(c.Mounts) != 1 || c.Mounts[0].Type != "volume" || c.Mounts[0].Destination != lab.DataDir {
			t.Errorf("%s: mounts %+v, want one volume at %s", d.ID, c.Mounts, lab.DataDir)
		}
	}

	// A second up changes nothing: same containers, not restarted.
	before := containerIDs(l)
	started := map[string]string{}
	for _, d := range l.DCs {
		c, _ := cli.ContainerInspect(ctx, d.ContainerID)
		started[d.ID] = c.State.StartedAt
	}
	l2, err := lab.Up(ctx, cli, lab.UpOptions{Name: l.Name, Topology: l.Topology, Binary: labtest.StaticBinary(t)})
	if err != nil {
		t.Fatalf("second up: %v", err)
	}
	for _, d := range l2.DCs {
		c, _ := cli.ContainerInspect(ctx, d.ContainerID)
		if before[d.ID] != d.ContainerID || started[d.ID] != c.State.StartedAt {
			t.Errorf("%s: second up replaced or restarted the container", d.ID)
		}
	}
	if l2.WAN.Subnet != l.WAN.Subnet {
		t.Errorf("second up moved the WAN from %s to %s", l.WAN.Subnet, l2.WAN.Subnet)
	}

	if l.Gateway == nil || l.Gateway.Health != "ok" || !l.WAN.Subnet.Contains(l.Gateway.WANIP) || l.Gateway.HostPort == 0 {
		t.Errorf("gateway %+v: want it healthy on the WAN and published on the host", l.Gateway)
	}
	if cs, ns, vs := labObjects(t, cli, l.Name); cs != 6 || ns != 2 || vs != 5 {
		t.Fatalf("lab has %d containers, %d networks, %d volumes; want 6 (5 DCs and the gateway), 2, 5", cs, ns, vs)
	}
	r, err := lab.Down(ctx, cli, l.Name, lab.DownOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Containers) != 6 || len(r.Networks) != 2 || len(r.Volumes) != 5 {
		t.Errorf("down removed %+v", r)
	}
	if cs, ns, vs := labObjects(t, cli, l.Name); cs+ns+vs != 0 {
		t.Fatalf("after down: %d containers, %d networks, %d volumes left", cs, ns, vs)
	}
	if _, err := lab.Inspect(ctx, cli, l.Name); !errors.Is(err, lab.ErrNoLab) {
		t.Errorf("Inspect after down = %v, want ErrNoLab", err)
	}
	// Down again: nothing to do, no error.
	if r, err := lab.Down(ctx, cli, l.Name, lab.DownOptions{}); err != nil || !r.Empty() {
		t.Errorf("second down = %+v, %v; want nothing removed", r, err)
	}
}

// TestUpCompletesHalfFinishedLab removes one DC's container and stops another,
// as a crash in the middle of `up` would leave them, and checks that `up`
// restores both and leaves the others alone.
func TestUpCompletesHalfFinishedLab(t *testing.T) {
	cli := labtest.RequireDocker(t)
	ctx := ctxT(t)
	l := labtest.Up(t, cli, "two-city-three-dc")
	before := containerIDs(l)

	if err := cli.ContainerRemove(ctx, before["hz-b"], container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if err := cli.ContainerKill(ctx, before["sh-a"], "KILL"); err != nil {
		t.Fatal(err)
	}
	mid, err := lab.Inspect(ctx, cli, l.Name)
	if err != nil {
		t.Fatal(err)
	}
	mid.CheckHealth(ctx)
	if d, _ := mid.DC("hz-b"); d.State != lab.StateMissing {
		t.Fatalf("hz-b after removal: state %q, want %q", d.State, lab.StateMissing)
	}
	if d, _ := mid.DC("sh-a"); d.Health == "ok" {
		t.Fatalf("sh-a after kill: health ok")
	}

	l2, err := lab.Up(ctx, cli, lab.UpOptions{Name: l.Name, Topology: l.Topology, Binary: labtest.StaticBinary(t)})
	if err != nil {
		t.Fatalf("up after partial loss: %v", err)
	}
	after := containerIDs(l2)
	for _, d := range l2.DCs {
		if d.Health != "ok" {
			t.Errorf("%s: health %q after repair", d.ID, d.Health)
		}
	}
	if after["hz-a"] != before["hz-a"] || after["sh-a"] != before["sh-a"] {
		t.Errorf("up replaced containers it only had to keep or start")
	}
	if after["hz-b"] == before["hz-b"] || after["hz-b"] == "" {
		t.Errorf("hz-b was not recreated")
	}
	if d, _ := l2.DC("hz-b"); d.WANIP != func() netip.Addr { x, _ := l.DC("hz-b"); return x.WANIP }() {
		t.Errorf("recreated hz-b got another WAN address")
	}
}

// TestTwoLabsSideBySide runs a second lab beside the first, on other subnets.
func TestTwoLabsSideBySide(t *testing.T) {
	cli := labtest.RequireDocker(t)
	a := labtest.Up(t, cli, "two-city-three-dc")
	b := labtest.Up(t, cli, "two-city-three-dc")
	for _, p := range []netip.Prefix{a.WAN.Subnet, a.Mgmt.Subnet} {
		for _, q := range []netip.Prefix{b.WAN.Subnet, b.Mgmt.Subnet} {
			if p.Overlaps(q) {
				t.Fatalf("labs %s and %s share subnet %s / %s", a.Name, b.Name, p, q)
			}
		}
	}
	names, err := lab.List(ctxT(t), cli)
	if err != nil {
		t.Fatal(err)
	}
	joined := " " + strings.Join(names, " ") + " "
	if !strings.Contains(joined, " "+a.Name+" ") || !strings.Contains(joined, " "+b.Name+" ") {
		t.Errorf("List = %v, want both %s and %s", names, a.Name, b.Name)
	}
}

// TestUpRefusesOtherTopology checks that `up` never silently changes the
// topology of a running lab.
func TestUpRefusesOtherTopology(t *testing.T) {
	cli := labtest.RequireDocker(t)
	l := labtest.Up(t, cli, "two-city-three-dc")
	five, err := topology.Builtin(topology.Default)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lab.Up(ctxT(t), cli, lab.UpOptions{Name: l.Name, Topology: five, Binary: labtest.StaticBinary(t)})
	if !errors.Is(err, lab.ErrTopologyMismatch) {
		t.Fatalf("up with another topology = %v, want ErrTopologyMismatch", err)
	}
	if !strings.Contains(err.Error(), "two-city-three-dc") {
		t.Errorf("error does not name the running topology: %v", err)
	}
}

// TestUpNameClash checks that `up` refuses to adopt a network it did not
// create, and says which.
func TestUpNameClash(t *testing.T) {
	cli := labtest.RequireDocker(t)
	ctx := ctxT(t)
	name := labtest.UniqueName(t)
	labtest.Cleanup(t, cli, name)
	clash := "fibercut-" + name + "-wan"
	resp, err := cli.NetworkCreate(ctx, clash, network.CreateOptions{Driver: "bridge"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.NetworkRemove(context.Background(), resp.ID) })
	topo, _ := topology.Builtin("two-city-three-dc")
	_, err = lab.Up(ctx, cli, lab.UpOptions{Name: name, Topology: topo, Binary: labtest.StaticBinary(t)})
	if err == nil || !strings.Contains(err.Error(), clash) || !strings.Contains(err.Error(), "not created by fibercut") {
		t.Fatalf("up with a foreign network named %s = %v, want an error naming it", clash, err)
	}
	// Down must leave the foreign network alone.
	if _, err := lab.Down(ctx, cli, name, lab.DownOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.NetworkInspect(ctx, resp.ID, network.InspectOptions{}); err != nil {
		t.Errorf("down removed a network fibercut did not create: %v", err)
	}
}

// TestDownKeepData keeps the volumes, and a later up finds them.
func TestDownKeepData(t *testing.T) {
	cli := labtest.RequireDocker(t)
	ctx := ctxT(t)
	l := labtest.Up(t, cli, "two-city-three-dc")
	r, err := lab.Down(ctx, cli, l.Name, lab.DownOptions{KeepData: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Volumes) != 0 {
		t.Errorf("down --keep-data removed volumes %v", r.Volumes)
	}
	if cs, ns, vs := labObjects(t, cli, l.Name); cs != 0 || ns != 0 || vs != 3 {
		t.Fatalf("after down --keep-data: %d containers, %d networks, %d volumes; want 0, 0, 3", cs, ns, vs)
	}
	if _, err := lab.Up(ctx, cli, lab.UpOptions{Name: l.Name, Topology: l.Topology, Binary: labtest.StaticBinary(t)}); err != nil {
		t.Fatal(err)
	}
	if _, _, vs := labObjects(t, cli, l.Name); vs != 3 {
		t.Errorf("up after keep-data: %d volumes, want the 3 kept", vs)
	}
}

// TestConnectUnreachable needs no Docker: it points the client at a socket
// that does not exist and expects the explanatory error.
func TestConnectUnreachable(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+t.TempDir()+"/no.sock")
	_, err := lab.Connect(context.Background())
	if !errors.Is(err, lab.ErrDockerUnreachable) {
		t.Fatalf("Connect = %v, want ErrDockerUnreachable", err)
	}
	if !strings.Contains(err.Error(), "docker info") || !strings.Contains(err.Error(), "no.sock") {
		t.Errorf("error does not say where and how to check: %v", err)
	}
}
