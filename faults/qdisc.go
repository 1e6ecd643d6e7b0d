package faults

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// qdiscHandle is the handle of the root qdisc fibercut puts on a WAN
// interface (fc00:); a root qdisc with another handle is never touched.
var qdiscHandle = netlink.MakeHandle(0xfc00, 0)

// ErrNoNetem is returned for delay faults on a kernel without sch_netem.
var ErrNoNetem = errors.New("faults: delay needs the kernel's netem qdisc (CONFIG_NET_SCH_NETEM), and this kernel does not have it; " +
	"faults that work here: cut, isolate, partition, loss, bandwidth, power-off, pause")

// kernelConfig is where the running kernel's configuration is read from.
var kernelConfig = "/proc/config.gz"

// netemAvailable reports ErrNoNetem when the kernel configuration says
// sch_netem is not built. When the configuration cannot be read it returns
// nil, and adding the qdisc decides.
func netemAvailable() error {
	if has, known := kernelConfigHas("CONFIG_NET_SCH_NETEM"); known && !has {
		return ErrNoNetem
	}
	return nil
}

// kernelHas reports whether the kernel configuration says option is built
// (=y or =m); false when the configuration cannot be read.
func kernelHas(option string) bool {
	has, _ := kernelConfigHas(option)
	return has
}

// kernelConfigHas reads option from the running kernel's configuration;
// known is false when that cannot be read.
func kernelConfigHas(option string) (has, known bool) {
	f, err := os.Open(kernelConfig)
	if err != nil {
		return false, false
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return false, false
	}
	sc := bufio.NewScanner(gz)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, option+"="):
			return true, true
		case line == "# "+option+" is not set":
			return false, true
		}
	}
	return false, sc.Err() == nil // not mentioned at all: not built
}

// addQdisc puts q on the WAN interface: tbf for a rate, netem for a delay.
func (c *nsConn) addQdisc(q qdiscSpec) error {
	if q.RateBits > 0 {
		return c.addTbf(q.RateBits)
	}
	return c.addNetem(q.Delay, q.Jitter)
}

// addTbf limits the WAN interface's egress to rateBits bits per second.
func (c *nsConn) addTbf(rateBits int64) error {
	l, err := c.link.LinkByName(c.wan)
	if err != nil {
		return fmt.Errorf("faults: wan interface of dc %s: %w", c.dc, err)
	}
	rate := uint64(rateBits / 8) // bytes per second
	burst := max(rate/100, 3028) // 10 ms worth, at least two full frames
	limit := rate/20 + burst     // 50 ms of queue
	q := &netlink.Tbf{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: l.Attrs().Index, Handle: qdiscHandle, Parent: netlink.HANDLE_ROOT},
		Rate:       rate,
		Limit:      uint32(min(limit, 1<<31)),
		Buffer:     netlink.Xmittime(rate, uint32(min(burst, 1<<31))),
	}
	return c.putQdisc(q, "bandwidth")
}

// addNetem delays every packet leaving the WAN interface.
func (c *nsConn) addNetem(delay, jitter time.Duration) error {
	l, err := c.link.LinkByName(c.wan)
	if err != nil {
		return fmt.Errorf("faults: wan interface of dc %s: %w", c.dc, err)
	}
	q := netlink.NewNetem(
		netlink.QdiscAttrs{LinkIndex: l.Attrs().Index, Handle: qdiscHandle, Parent: netlink.HANDLE_ROOT},
		netlink.NetemQdiscAttrs{Latency: uint32(delay.Microseconds()), Jitter: uint32(jitter.Microseconds())},
	)
	err = c.putQdisc(q, "delay")
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("%w (dc %s: %v)", ErrNoNetem, c.dc, err)
	}
	return err
}

func (c *nsConn) putQdisc(q netlink.Qdisc, what string) error {
	err := c.link.QdiscAdd(q)
	if errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("faults: dc %s already has a bandwidth or delay fault on its WAN interface; heal it first", c.dc)
	}
	if err != nil {
		return fmt.Errorf("faults: add %s qdisc in dc %s: %w", what, c.dc, err)
	}
	return nil
}

// ownQdisc returns fibercut's root qdisc on the WAN interface, or nil.
func (c *nsConn) ownQdisc() (netlink.Qdisc, error) {
	l, err := c.link.LinkByName(c.wan)
	if err != nil {
		return nil, fmt.Errorf("faults: wan interface of dc %s: %w", c.dc, err)
	}
	qs, err := c.link.QdiscList(l)
	if err != nil {
		return nil, fmt.Errorf("faults: list qdiscs in dc %s: %w", c.dc, err)
	}
	for _, q := range qs {
		if a := q.Attrs(); a.Parent == netlink.HANDLE_ROOT && a.Handle == qdiscHandle {
			return q, nil
		}
	}
	return nil, nil
}

// removeQdisc deletes fibercut's root qdisc from the WAN interface, if there
// is one, and reports whether there was.
func (c *nsConn) removeQdisc() (bool, error) {
	q, err := c.ownQdisc()
	if err != nil || q == nil {
		return false, err
	}
	if err := c.link.QdiscDel(q); err != nil && !errors.Is(err, unix.ENOENT) {
		return false, fmt.Errorf("faults: remove qdisc in dc %s: %w", c.dc, err)
	}
	return true, nil
}

// hasQdisc reports whether fibercut's root qdisc is on the WAN interface.
func (c *nsConn) hasQdisc() (bool, error) {
	q, err := c.ownQdisc()
	return q != nil, err
}
