package faults

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"

	"github.com/fibercut/fibercut/nfqueue"
)

// TableName is the nftables table fibercut owns in every DC namespace (family
// inet). Nothing else is ever changed.
const TableName = "fibercut"

// The roles of a fault's sets. Every fault has sets of its own, named
// "<fault id>_<role>", and rules of its own that use them, tagged with the
// comment "fibercut <fault id>": two faults on the same link never share an
// element, so each ends at its own time (in the kernel: elements carry
// timeouts), and healing or rolling back one never touches another.
const (
	setDropIn    = "drop_in"  // sources whose packets the DC drops
	setDropOut   = "drop_out" // destinations the DC sends nothing to
	setIsolated  = "isolated" // the DC's own address while it is isolated
	setKeep      = "keep"     // peers an isolated DC still talks to
	prefixLossIn = "loss_in_" // + percent: sources whose packets are dropped at random
	prefixLossDC = "loss_dc_" // + percent: the DC's own address while all its traffic is lossy
	// A delay by NFQUEUE holds a delayed DC's packets where they arrive:
	// held in the sender's namespace, a packet still counts against its
	// socket's TCP Small Queues budget (netem orphans what it delays; a
	// queue cannot), and a connection crawls (0.3 MB/s under a 20 ms
	// delay, measured). So the other DCs queue what comes from it; only
	// what it sends elsewhere (the gateway, the host) is queued as it
	// leaves.
	setDelayFrom  = "delay_from"  // sources whose packets the DC queues to the fault's holder on arrival
	setDelay      = "delay"       // the DC's own address while its egress to non-DCs is queued to the holder
	setDelayPeers = "delay_peers" // the lab's DCs, whose delay_from holds what the DC sends them
)

// keepMargin makes keep elements outlive the isolated marker, so that an
// isolation never turns, for an instant, into a cut of the group's own
// links; and delay_peers outlive the delay marker likewise.
const keepMargin = time.Second

// setAdd asks for addresses to be added to the set of one role.
type setAdd struct {
	Set   string
	Addrs []netip.Addr
}

var table = &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}

func chains() (in, out *nftables.Chain) {
	accept := nftables.ChainPolicyAccept
	in = &nftables.Chain{Name: "input", Table: table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept}
	out = &nftables.Chain{Name: "output", Table: table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter, Policy: &accept}
	return in, out
}

// delayChains hold the rules that queue packets to a holder, on arrival
// (in) and as they leave (out). Each comes after the hook's chain of
// cuts: a packet a queue's verdict accepts goes on to the next chain of
// the hook, not the next rule, so the drops of cuts must already be behind
// it. On input it also comes after the baseline's (wan.go), so a delay
// adds to the link's latency.
func delayChains() (in, out *nftables.Chain) {
	accept := nftables.ChainPolicyAccept
	in = &nftables.Chain{Name: "delay_in", Table: table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityRef(*nftables.ChainPriorityFilter + 10), Policy: &accept}
	out = &nftables.Chain{Name: "delay", Table: table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityRef(*nftables.ChainPriorityFilter + 10), Policy: &accept}
	return in, out
}

// setName is the name of a fault's set of a role.
func setName(id, role string) string { return id + "_" + role }

// ruleTag is the comment on every rule of a fault.
func ruleTag(id string) []byte {
	return userdata.AppendString(nil, userdata.TypeComment, "fibercut "+id)
}

// hasTable reports whether the namespace has the fibercut table.
func (c *nsConn) hasTable() (bool, error) {
	tables, err := c.nft.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("faults: list nftables tables in dc %s: %w", c.dc, err)
	}
	return slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == TableName }), nil
}

// hasChain reports whether the fibercut table has the chain name.
func (c *nsConn) hasChain(name string) (bool, error) {
	list, err := c.nft.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("faults: list nftables chains in dc %s: %w", c.dc, err)
	}
	return slices.ContainsFunc(list, func(ch *nftables.Chain) bool { return ch.Table.Name == TableName && ch.Name == name }), nil
}

// sets returns the table's sets by name; an empty map when there is no table.
func (c *nsConn) sets() (map[string]*nftables.Set, error) {
	if ok, err := c.hasTable(); err != nil || !ok {
		return map[string]*nftables.Set{}, err
	}
	list, err := c.nft.GetSets(table)
	if err != nil {
		return nil, fmt.Errorf("faults: list sets of inet %s in dc %s: %w", TableName, c.dc, err)
	}
	m := make(map[string]*nftables.Set, len(list))
	for _, s := range list {
		s.Table = table
		m[s.Name] = s
	}
	return m, nil
}

// addFault creates the sets and rules of fault id that adds asks for, and
// fills the sets, in one atomic batch. timeout 0 means the elements never
// expire.
func (c *nsConn) addFault(id string, adds []setAdd, timeout time.Duration) error {
	in, out := chains()
	c.nft.AddTable(table)
	c.nft.AddChain(in)
	c.nft.AddChain(out)
	sets := map[string]*nftables.Set{}
	for _, a := range adds {
		if _, ok := sets[a.Set]; ok {
			continue
		}
		if err := c.createRole(id, a.Set, sets, in, out); err != nil {
			return err
		}
	}
	if timeout > 0 {
		// Whole milliseconds, rounded up: the kernel's unit, where 0
		// would mean never.
		timeout = (timeout + time.Millisecond - 1).Truncate(time.Millisecond)
	}
	for _, a := range adds {
		t := timeout
		if t > 0 && (a.Set == setKeep || a.Set == setDelayPeers) {
			t += keepMargin
		}
		elems := make([]nftables.SetElement, len(a.Addrs))
		for i, ip := range a.Addrs {
			elems[i] = nftables.SetElement{Key: ip.AsSlice(), Timeout: t}
		}
		if err := c.nft.SetAddElements(sets[a.Set], elems); err != nil {
			return fmt.Errorf("faults: add to set %s in dc %s: %w", setName(id, a.Set), c.dc, err)
		}
	}
	if err := c.nft.Flush(); err != nil {
		return fmt.Errorf("faults: apply nftables changes in dc %s: %w", c.dc, err)
	}
	return nil
}

func newAddrSet(name string) *nftables.Set {
	return &nftables.Set{Table: table, Name: name, KeyType: nftables.TypeIPAddr, HasTimeout: true}
}

// createRole queues the set of a role (two for isolation) and the rules
// that use it, all of fault id.
func (c *nsConn) createRole(id, role string, sets map[string]*nftables.Set, in, out *nftables.Chain) error {
	addSet := func(role string) (*nftables.Set, error) {
		s := newAddrSet(setName(id, role))
		if err := c.nft.AddSet(s, nil); err != nil {
			return nil, fmt.Errorf("faults: create set %s in dc %s: %w", s.Name, c.dc, err)
		}
		sets[role] = s
		return s, nil
	}
	switch role {
	case setKeep:
		role = setIsolated // the keep set is created with the marker
	case setDelayPeers:
		role = setDelay // and the delay's peers with its marker
	}
	if _, ok := sets[role]; ok {
		return nil
	}
	s, err := addSet(role)
	if err != nil {
		return err
	}
	tag := ruleTag(id)
	iif, oif := ifname(expr.MetaKeyIIFNAME, c.wan), ifname(expr.MetaKeyOIFNAME, c.wan)
	switch {
	case role == setDropIn:
		c.rule(in, tag, iif, ipv4(), load(saddr), lookup(s, false), drop())
	case role == setDropOut:
		c.rule(out, tag, oif, ipv4(), load(daddr), lookup(s, false), drop())
	case role == setIsolated:
		keep, err := addSet(setKeep)
		if err != nil {
			return err
		}
		c.rule(in, tag, iif, ipv4(), load(daddr), lookup(s, false), load(saddr), lookup(keep, true), drop())
		c.rule(out, tag, oif, ipv4(), load(saddr), lookup(s, false), load(daddr), lookup(keep, true), drop())
	case strings.HasPrefix(role, prefixLossIn):
		pct, err := strconv.Atoi(strings.TrimPrefix(role, prefixLossIn))
		if err != nil {
			return fmt.Errorf("faults: bad set role %s", role)
		}
		c.rule(in, tag, iif, ipv4(), load(saddr), lookup(s, false), below(pct), drop())
	case strings.HasPrefix(role, prefixLossDC):
		pct, err := strconv.Atoi(strings.TrimPrefix(role, prefixLossDC))
		if err != nil {
			return fmt.Errorf("faults: bad set role %s", role)
		}
		c.rule(in, tag, iif, ipv4(), load(daddr), lookup(s, false), below(pct), drop())
		c.rule(out, tag, oif, ipv4(), load(saddr), lookup(s, false), below(pct), drop())
	case role == setDelayFrom:
		din, _ := delayChains()
		c.nft.AddChain(din)
		c.rule(din, tag, iif, ipv4(), load(saddr), lookup(s, false), toQueue(queueFor(id)))
	case role == setDelay:
		peers, err := addSet(setDelayPeers)
		if err != nil {
			return err
		}
		_, dout := delayChains()
		c.nft.AddChain(dout)
		c.rule(dout, tag, oif, ipv4(), load(saddr), lookup(s, false), load(daddr), lookup(peers, true), toQueue(queueFor(id)))
	default:
		return fmt.Errorf("faults: unknown set role %s", role)
	}
	return nil
}

func (c *nsConn) rule(ch *nftables.Chain, tag []byte, parts ...[]expr.Any) {
	var exprs []expr.Any
	for _, p := range parts {
		exprs = append(exprs, p...)
	}
	c.nft.AddRule(&nftables.Rule{Table: table, Chain: ch, Exprs: exprs, UserData: tag})
}

// faultIDs returns the ids of the faults that have sets in the namespace.
func (c *nsConn) faultIDs() ([]string, error) {
	have, err := c.sets()
	if err != nil {
		return nil, err
	}
	var ids []string
	for name := range have {
		if id, _, ok := strings.Cut(name, "_"); ok && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// removeFaults deletes the rules and sets of the given faults, in one
// batch. Faults that have nothing here are skipped.
func (c *nsConn) removeFaults(ids ...string) error {
	have, err := c.sets()
	if err != nil || len(have) == 0 {
		return err
	}
	tags := map[string]bool{}
	for _, id := range ids {
		tags[string(ruleTag(id))] = true
	}
	n := 0
	in, out := chains()
	chs := []*nftables.Chain{in, out}
	din, dout := delayChains()
	for _, ch := range []*nftables.Chain{din, dout} {
		if ok, err := c.hasChain(ch.Name); err != nil {
			return err
		} else if ok {
			chs = append(chs, ch)
		}
	}
	for _, ch := range chs {
		rules, err := c.nft.GetRules(table, ch)
		if err != nil {
			return fmt.Errorf("faults: list rules in dc %s: %w", c.dc, err)
		}
		for _, r := range rules {
			if tags[string(r.UserData)] {
				if err := c.nft.DelRule(&nftables.Rule{Table: table, Chain: ch, Handle: r.Handle}); err != nil {
					return fmt.Errorf("faults: delete rule in dc %s: %w", c.dc, err)
				}
				n++
			}
		}
	}
	for name, s := range have {
		if id, _, ok := strings.Cut(name, "_"); ok && slices.Contains(ids, id) {
			c.nft.DelSet(s)
			n++
		}
	}
	if n == 0 {
		return nil
	}
	if err := c.nft.Flush(); err != nil {
		return fmt.Errorf("faults: remove faults %s in dc %s: %w", strings.Join(ids, ", "), c.dc, err)
	}
	return nil
}

// elements returns the live elements of every set, by set name, with the time
// each has left (0 for elements that never expire).
func (c *nsConn) elements() (map[string]map[netip.Addr]time.Duration, error) {
	have, err := c.sets()
	if err != nil {
		return nil, err
	}
	out := map[string]map[netip.Addr]time.Duration{}
	for name, s := range have {
		elems, err := c.nft.GetSetElements(s)
		if err != nil {
			return nil, fmt.Errorf("faults: list set %s in dc %s: %w", name, c.dc, err)
		}
		for _, e := range elems {
			if ip, ok := netip.AddrFromSlice(e.Key); ok {
				if out[name] == nil {
					out[name] = map[netip.Addr]time.Duration{}
				}
				out[name][ip] = e.Expires
			}
		}
	}
	return out, nil
}

// dropTable deletes the fibercut table, if there is one, and reports
// whether there was. Where the lab's baseline WAN latency has its chain
// (wan.go), which lives with the lab and is no fault's, it deletes every
// other chain and every set instead, and keeps that one.
func (c *nsConn) dropTable() (bool, error) {
	if ok, err := c.hasTable(); err != nil || !ok {
		return false, err
	}
	list, err := c.nft.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("faults: list nftables chains in dc %s: %w", c.dc, err)
	}
	if !slices.ContainsFunc(list, func(ch *nftables.Chain) bool { return ch.Table.Name == TableName && ch.Name == wanChainName }) {
		c.nft.DelTable(table)
		if err := c.nft.Flush(); err != nil {
			return false, fmt.Errorf("faults: delete table inet %s in dc %s: %w", TableName, c.dc, err)
		}
		return true, nil
	}
	for _, ch := range list {
		if ch.Table.Name == TableName && ch.Name != wanChainName {
			ch.Table = table
			c.nft.FlushChain(ch)
			c.nft.DelChain(ch)
		}
	}
	sets, err := c.sets()
	if err != nil {
		return false, err
	}
	for _, s := range sets {
		c.nft.DelSet(s)
	}
	if err := c.nft.Flush(); err != nil {
		return false, fmt.Errorf("faults: delete the faults' rules of inet %s in dc %s: %w", TableName, c.dc, err)
	}
	return true, nil
}

// Expression builders. Everything goes through register 1.

const (
	saddr = 12 // offset of the source address in the IPv4 header
	daddr = 16 // offset of the destination address
)

func ifname(key expr.MetaKey, name string) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b},
	}
}

func ipv4() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
	}
}

func load(offset uint32) []expr.Any {
	return []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4}}
}

func lookup(s *nftables.Set, invert bool) []expr.Any {
	return []expr.Any{&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID, Invert: invert}}
}

// toQueue sends the packet to queue num, with bypass: when no holder is
// bound to it, the packet passes. The kernel's own queue expression where
// it has one (CONFIG_NFT_QUEUE), else iptables' NFQUEUE target through
// nft_compat (CONFIG_NETFILTER_XT_TARGET_NFQUEUE), as these machines have.
func toQueue(num uint16) []expr.Any {
	if kernelHas("CONFIG_NFT_QUEUE") {
		return []expr.Any{&expr.Queue{Num: num, Flag: expr.QueueFlagBypass}}
	}
	info := xt.Unknown(nfqueue.XTTargetInfo(num, true))
	return []expr.Any{&expr.Target{Name: "NFQUEUE", Rev: 3, Info: &info}}
}

// below matches a share of pct percent of packets at random: numgen random
// mod 100 < pct (numgen yields host order; cmp compares bytes, hence hton).
func below(pct int) []expr.Any {
	return []expr.Any{
		&expr.Numgen{Register: 1, Modulus: 100, Type: unix.NFT_NG_RANDOM},
		&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 4, Size: 4},
		&expr.Cmp{Op: expr.CmpOpLt, Register: 1, Data: binaryutil.BigEndian.PutUint32(uint32(pct))},
	}
}

func drop() []expr.Any {
	return []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}}
}
