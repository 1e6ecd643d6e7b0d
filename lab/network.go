package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
)

// subnetPool is where lab subnets are carved from, as /24s. Which /24 a lab
// gets is decided when it is created, by skipping every subnet already used by
// a Docker network or a host interface.
var subnetPool = netip.MustParsePrefix("10.200.0.0/13")

// Network is one of a lab's two Docker networks.
type Network struct {
	Kind    string       `json:"kind"` // NetWAN or NetMgmt
	Name    string       `json:"name"`
	ID      string       `json:"id"`
	Subnet  netip.Prefix `json:"subnet"`
	Gateway netip.Addr   `json:"gateway"`
}

// hostAddr returns the n-th address of the network's subnet (n=1 is .1).
func (n Network) hostAddr(i int) netip.Addr {
	a := n.Subnet.Masked().Addr().As4()
	a[3] += byte(i)
	return netip.AddrFrom4(a)
}

// usedSubnets lists subnets of every Docker network and every host interface.
func usedSubnets(ctx context.Context, cli client.APIClient) ([]netip.Prefix, error) {
	nets, err := cli.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("lab: list docker networks: %w", err)
	}
	var used []netip.Prefix
	for _, n := range nets {
		for _, c := range n.IPAM.Config {
			if p, err := netip.ParsePrefix(c.Subnet); err == nil {
				used = append(used, p.Masked())
			}
		}
	}
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				used = append(used, p.Masked())
			}
		}
	}
	return used, nil
}

// freeSubnet returns the first /24 of the pool that overlaps none of used and
// none of skip.
func freeSubnet(used []netip.Prefix) (netip.Prefix, error) {
	base := subnetPool.Masked().Addr().As4()
	count := 1 << (24 - subnetPool.Bits())
	for i := range count {
		a := base
		a[1] += byte(i >> 8)
		a[2] += byte(i)
		cand := netip.PrefixFrom(netip.AddrFrom4(a), 24)
		clash := false
		for _, u := range used {
			if u.Overlaps(cand) {
				clash = true
				break
			}
		}
		if !clash {
			return cand, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("lab: no free /24 subnet left in %s; remove unused Docker networks (`docker network ls`)", subnetPool)
}

// findNetwork returns the lab's network of the given kind, if it exists.
func findNetwork(ctx context.Context, cli client.APIClient, lab, kind string) (network.Inspect, bool, error) {
	nets, err := cli.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", LabelLab+"="+lab),
		filters.Arg("label", LabelNet+"="+kind),
	)})
	if err != nil {
		return network.Inspect{}, false, fmt.Errorf("lab: list networks of lab %q: %w", lab, err)
	}
	if len(nets) == 0 {
		return network.Inspect{}, false, nil
	}
	n, err := cli.NetworkInspect(ctx, nets[0].ID, network.InspectOptions{})
	if err != nil {
		return network.Inspect{}, false, fmt.Errorf("lab: inspect network %s: %w", nets[0].Name, err)
	}
	return n, true, nil
}

func toNetwork(kind string, n network.Inspect) (Network, error) {
	out := Network{Kind: kind, Name: n.Name, ID: n.ID}
	for _, c := range n.IPAM.Config {
		p, err := netip.ParsePrefix(c.Subnet)
		if err != nil || !p.Addr().Is4() {
			continue
		}
		out.Subnet = p
		if g, err := netip.ParseAddr(c.Gateway); err == nil {
			out.Gateway = g
		}
		return out, nil
	}
	return out, fmt.Errorf("lab: network %s has no IPv4 subnet", n.Name)
}

// ensureNetwork returns the lab's network of the given kind, creating it on a
// free subnet when it does not exist. labels are added to the created network.
func ensureNetwork(ctx context.Context, cli client.APIClient, lab, kind string, labels map[string]string) (Network, error) {
	if n, ok, err := findNetwork(ctx, cli, lab, kind); err != nil {
		return Network{}, err
	} else if ok {
		return toNetwork(kind, n)
	}
	name := networkName(lab, kind)
	if n, err := cli.NetworkInspect(ctx, name, network.InspectOptions{}); err == nil {
		return Network{}, fmt.Errorf("lab: a Docker network named %s already exists (id %.12s) and was not created by fibercut for lab %q; remove it or choose another --name",
			name, n.ID, lab)
	} else if !cerrdefs.IsNotFound(err) {
		return Network{}, fmt.Errorf("lab: inspect network %s: %w", name, err)
	}
	used, err := usedSubnets(ctx, cli)
	if err != nil {
		return Network{}, err
	}
	all := map[string]string{LabelLab: lab, LabelNet: kind}
	for k, v := range labels {
		all[k] = v
	}
	// Another engine user may take a subnet between listing and creating:
	// Docker then refuses with an overlap, and the next free one is tried.
	for range 8 {
		subnet, err := freeSubnet(used)
		if err != nil {
			return Network{}, err
		}
		gw := Network{Subnet: subnet}.hostAddr(1)
		resp, err := cli.NetworkCreate(ctx, name, network.CreateOptions{
			Driver: "bridge",
			IPAM: &network.IPAM{Config: []network.IPAMConfig{{
				Subnet: subnet.String(), Gateway: gw.String(),
			}}},
			Labels: all,
		})
		if err == nil {
			return Network{Kind: kind, Name: name, ID: resp.ID, Subnet: subnet, Gateway: gw}, nil
		}
		if !strings.Contains(err.Error(), "overlap") {
			return Network{}, fmt.Errorf("lab: create network %s on %s: %w", name, subnet, err)
		}
		used = append(used, subnet)
	}
	return Network{}, fmt.Errorf("lab: create network %s: every subnet tried overlapped another network", name)
}
