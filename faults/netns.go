package faults

import (
	"fmt"
	"net/netip"
	"strconv"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/fibercut/fibercut/lab"
)

// nsConn is a handle on one DC's network namespace: an nftables connection
// and a netlink handle bound to it, and the name of its WAN interface. No
// thread ever switches namespace: both sockets are opened inside it.
type nsConn struct {
	dc    string
	ns    netns.NsHandle
	nft   *nftables.Conn
	link  *netlink.Handle
	wan   string // WAN interface name inside the namespace, e.g. "eth0"
	wanIP netip.Addr
}

// openNS enters the namespace of a running DC.
func openNS(d lab.DC) (*nsConn, error) {
	if d.State != "running" || d.Pid == 0 {
		return nil, fmt.Errorf("faults: dc %s is not running (state %s)", d.ID, d.State)
	}
	path := "/proc/" + strconv.Itoa(d.Pid) + "/ns/net"
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("faults: enter network namespace of dc %s (%s; needs root): %w", d.ID, path, err)
	}
	return newNSConn(d.ID, ns, d.WANIP)
}

// newNSConn opens the handles of a namespace, whose WAN interface holds
// wanIP. It takes ns over: Close closes it.
func newNSConn(dc string, ns netns.NsHandle, wanIP netip.Addr) (*nsConn, error) {
	c := &nsConn{dc: dc, ns: ns, wanIP: wanIP}
	var err error
	if c.link, err = netlink.NewHandleAt(ns); err != nil {
		c.Close()
		return nil, fmt.Errorf("faults: netlink in dc %s: %w", dc, err)
	}
	if c.wan, err = c.ifaceWithAddr(wanIP); err != nil {
		c.Close()
		return nil, err
	}
	if c.nft, err = nftables.New(nftables.WithNetNSFd(int(ns)), nftables.AsLasting()); err != nil {
		c.Close()
		return nil, fmt.Errorf("faults: nftables in dc %s: %w", dc, err)
	}
	return c, nil
}

// ifaceWithAddr finds the interface that holds addr: the WAN interface is
// found by its address, never assumed to be eth0.
func (c *nsConn) ifaceWithAddr(addr netip.Addr) (string, error) {
	addrs, err := c.link.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return "", fmt.Errorf("faults: list addresses in dc %s: %w", c.dc, err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok && ip == addr {
			l, err := c.link.LinkByIndex(a.LinkIndex)
			if err != nil {
				return "", fmt.Errorf("faults: interface of %s in dc %s: %w", addr, c.dc, err)
			}
			return l.Attrs().Name, nil
		}
	}
	return "", fmt.Errorf("faults: dc %s has no interface with its WAN address %s", c.dc, addr)
}

// Close releases the namespace handles. It is safe to call more than once.
func (c *nsConn) Close() {
	if c.nft != nil {
		c.nft.CloseLasting()
		c.nft = nil
	}
	if c.link != nil {
		c.link.Close()
		c.link = nil
	}
	if c.ns.IsOpen() {
		c.ns.Close()
	}
}
