package lab_test

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"

	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/lab/labtest"
	"github.com/fibercut/fibercut/topology"
)

var (
	composeWAN  = netip.MustParsePrefix("10.208.0.0/24")
	composeMgmt = netip.MustParsePrefix("10.208.1.0/24")
)

// TestComposeLabsAreCurrent checks that the compose labs under labs/compose
// are what `fibercut lab compose` writes today.
func TestComposeLabsAreCurrent(t *testing.T) {
	for _, name := range topology.BuiltinNames() {
		t.Run(name, func(t *testing.T) {
			topo, err := topology.Builtin(name)
			if err != nil {
				t.Fatal(err)
			}
			want, err := lab.Compose(lab.ComposeOptions{Name: "compose", Topology: topo, WAN: composeWAN, Mgmt: composeMgmt})
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join("..", "labs", "compose", name)
			for file, body := range map[string][]byte{lab.ComposeFile: want, lab.ComposeDockerName: []byte(lab.ComposeDockerfile)} {
				have, err := os.ReadFile(filepath.Join(dir, file))
				if err != nil {
					t.Fatalf("%v; write it with: go run ./cmd/fibercut lab compose --topology %s --no-binary --out labs/compose/%s", err, name, name)
				}
				if !bytes.Equal(have, body) {
					t.Errorf("%s/%s is not what `fibercut lab compose` writes; rewrite it with: go run ./cmd/fibercut lab compose --topology %s --no-binary --out labs/compose/%s",
						dir, file, name, name)
				}
			}
		})
	}
}

func TestComposeRefusesBadSubnets(t *testing.T) {
	for _, tc := range []struct {
		wan, mgmt netip.Prefix
		want      string
	}{
		{netip.Prefix{}, composeMgmt, "WAN subnet"},
		{composeWAN, netip.MustParsePrefix("10.208.1.0/25"), "management subnet 10.208.1.0/25"},
		{composeWAN, netip.MustParsePrefix("fd00::/64"), "management subnet fd00::/64"},
		{netip.MustParsePrefix("10.208.0.0/16"), composeMgmt, "overlap"},
	} {
		_, err := lab.Compose(lab.ComposeOptions{WAN: tc.wan, Mgmt: tc.mgmt})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Compose(wan %v, mgmt %v) = %v, want an error containing %q", tc.wan, tc.mgmt, err, tc.want)
		}
	}
	if _, err := lab.Compose(lab.ComposeOptions{Name: "Bad Name", WAN: composeWAN, Mgmt: composeMgmt}); err == nil {
		t.Error("Compose accepted the lab name \"Bad Name\"")
	}
}

func TestWriteComposeDirRefusesDynamicBinary(t *testing.T) {
	const dyn = "/bin/sh" // dynamically linked on every Debian
	if static, err := lab.IsStatic(dyn); err != nil || static {
		t.Skip("/bin/sh is not a dynamic ELF here")
	}
	dir := filepath.Join(t.TempDir(), "lab")
	_, err := lab.WriteComposeDir(dir, lab.ComposeOptions{WAN: composeWAN, Mgmt: composeMgmt}, dyn)
	if !errors.Is(err, lab.ErrDynamicBinary) {
		t.Fatalf("WriteComposeDir with %s = %v, want ErrDynamicBinary", dyn, err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the refused call left %s behind (%v)", dir, err)
	}
}

// TestComposeLabOnDocker starts a compose lab with docker-compose and checks
// that fibercut sees it as one of its own labs, healthy, then removes it
// with docker-compose and checks that nothing is left.
func TestComposeLabOnDocker(t *testing.T) {
	cli := labtest.RequireDocker(t)
	compose := labtest.RequireCommand(t, "docker-compose")
	name := labtest.UniqueName(t)
	labtest.Cleanup(t, cli, name) // if the test fails half way
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// Two /24s no network on this host uses, outside the pool `lab up`
	// takes from, so that a lab made meanwhile cannot take them.
	nets, err := cli.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var free []netip.Prefix
	for i := 0; i < 256 && len(free) < 2; i++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 209, byte(i), 0}), 24)
		taken := false
		for _, n := range nets {
			for _, c := range n.IPAM.Config {
				if s, err := netip.ParsePrefix(c.Subnet); err == nil && s.Overlaps(p) {
					taken = true
				}
			}
		}
		if !taken {
			free = append(free, p)
		}
	}
	if len(free) < 2 {
		t.Fatal("no two free /24s in 10.209.0.0/16")
	}
	dir := t.TempDir()
	opts := lab.ComposeOptions{Name: name, WAN: free[0], Mgmt: free[1], Image: "fibercut-node:" + name}
	if _, err := lab.WriteComposeDir(dir, opts, labtest.StaticBinary(t)); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, compose, append([]string{"--project-name", name}, args...)...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() {
		cli.ImageRemove(context.Background(), opts.Image, image.RemoveOptions{Force: true})
	})
	run("up", "-d", "--build")

	l, err := lab.Inspect(ctx, cli, name)
	if err != nil {
		t.Fatalf("fibercut does not see the compose lab: %v", err)
	}
	if err := l.WaitHealthy(ctx, time.Minute); err != nil {
		t.Fatalf("compose lab never became healthy: %v", err)
	}
	if len(l.DCs) != 5 || l.Gateway == nil || l.WAN.Subnet != free[0] || l.Mgmt.Subnet != free[1] || l.Topology.Name != topology.Default {
		t.Fatalf("compose lab: %d DCs, gateway %v, WAN %s, management %s, topology %s; want 5 DCs and a gateway on %s and %s, topology %s",
			len(l.DCs), l.Gateway, l.WAN.Subnet, l.Mgmt.Subnet, l.Topology.Name, free[0], free[1], topology.Default)
	}
	for _, d := range l.DCs {
		if d.Health != "ok" || !free[0].Contains(d.WANIP) || !free[1].Contains(d.MgmtIP) {
			t.Errorf("%s: health %q, WAN %s, management %s", d.ID, d.Health, d.WANIP, d.MgmtIP)
		}
	}
	if l.Gateway.Health != "ok" || l.Gateway.HostPort == 0 {
		t.Errorf("gateway: health %q, host port %d", l.Gateway.Health, l.Gateway.HostPort)
	}

	run("down", "-v")
	if _, err := lab.Inspect(ctx, cli, name); !errors.Is(err, lab.ErrNoLab) {
		t.Errorf("after docker-compose down, Inspect = %v, want ErrNoLab", err)
	}
	if cs, ns, vs := labObjects(t, cli, name); cs+ns+vs != 0 {
		t.Errorf("after docker-compose down -v: %d containers, %d networks, %d volumes left", cs, ns, vs)
	}
}
