package faults

import (
	"net/netip"
	"strings"
	"time"

	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/topology"
)

// kind is the behaviour of one fault kind: everything that differs from one
// kind to another lives in one type, in a file of its own, and the type is
// listed once in [registry]. Adding a kind touches that file and the
// registry, nothing else.
type kind interface {
	// parse reads the words after the kind's name (the grammar of
	// [ParseSpec]) into s, whose Kind is set.
	parse(p *parser, s *Spec) error
	// format writes the words after the kind's name, as parse reads them.
	format(b *strings.Builder, s Spec)
	// validate checks the fields the kind uses against a topology; s
	// names no leader (Validate puts a stand-in DC in its place).
	validate(s Spec, t *topology.Topology) error
	// plan says what applying the valid spec s to the lab changes.
	plan(s Spec, l *lab.Lab) (changes, error)
	// cutOff lists the DCs the fault separates from the majority side.
	cutOff(s Spec, t *topology.Topology) []string
	// onLeader says whether the kind can target the leader's DC.
	onLeader() bool
	// effects marks what the valid spec s does to t's links and DCs.
	effects(s Spec, t *topology.Topology, e *Effects)
}

// registry lists every fault kind, in the order help texts show them.
var registry = []struct {
	name Kind
	kind kind
}{
	{KindCut, cutKind{}},
	{KindIsolate, isolateKind{}},
	{KindPartition, partitionKind{}},
	{KindLoss, lossKind{}},
	{KindBandwidth, bandwidthKind{}},
	{KindDelay, delayKind{}},
	{KindPowerOff, powerOffKind{}},
	{KindPause, pauseKind{}},
}

func lookupKind(k Kind) (kind, bool) {
	for _, e := range registry {
		if e.name == k {
			return e.kind, true
		}
	}
	return nil, false
}

// changes is what applying one fault changes, by mechanism. Only the
// nftables changes of a fault with a duration end in the kernel by
// themselves; every other change needs a process to undo it (the fault's
// watchdog, a heal).
type changes struct {
	// nft lists, per DC, the addresses to put in the fault's own sets.
	nft map[string][]setAdd
	// qdisc, when set, is put on the WAN interface of qdiscDCs.
	qdisc    *qdiscSpec
	qdiscDCs []string
	// kill and pause list the DCs to power off and to freeze.
	kill, pause []string
	// hold, for a delay by NFQUEUE: the DCs whose sets queue packets
	// (delay_from, delay) get a holder, which delays what is queued.
	hold bool
}

// kernelExpires reports whether the kernel ends every change on its own.
func (c changes) kernelExpires() bool {
	return c.qdisc == nil && len(c.kill)+len(c.pause) == 0
}

// put adds an address to the set of a DC in c.nft.
func (c *changes) put(dc, set string, a netip.Addr) {
	if c.nft == nil {
		c.nft = map[string][]setAdd{}
	}
	for i := range c.nft[dc] {
		if c.nft[dc][i].Set == set {
			c.nft[dc][i].Addrs = append(c.nft[dc][i].Addrs, a)
			return
		}
	}
	c.nft[dc] = append(c.nft[dc], setAdd{Set: set, Addrs: []netip.Addr{a}})
}

// qdiscSpec is a root qdisc for a WAN interface: a rate limit (tbf) or a
// delay (netem).
type qdiscSpec struct {
	RateBits      int64         `json:"rate_bits,omitempty"`
	Delay, Jitter time.Duration `json:"-"`
	// Until is when the fault ends (zero: when healed), for a namespace
	// on another node whose agent removes the qdisc then itself.
	Until time.Time `json:"-"`
}

// wanIP returns a DC's WAN address (invalid when it has none).
func wanIP(l *lab.Lab, id string) netip.Addr {
	if d, ok := l.DC(id); ok {
		return d.WANIP
	}
	return netip.Addr{}
}

// formatTarget writes " dc ID", " city NAME", " leader" or, for kinds that
// take a link, " link A B".
func formatTarget(b *strings.Builder, s Spec) {
	switch {
	case s.Leader:
		b.WriteString(" leader")
	case s.A != "" || s.B != "":
		b.WriteString(" link " + s.A + " " + s.B)
	case s.DC != "":
		b.WriteString(" dc " + s.DC)
	case s.City != "":
		b.WriteString(" city " + s.City)
	}
}
