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
	"golang.org/x/sys/unix"
)

// TableName is the nftables table fibercut owns in every DC namespace (family
// inet). Nothing else is ever changed.
const TableName = "fibercut"

// Sets of the fibercut table. Each comes with the rules that use it, created
// with it; elements carry timeouts so faults expire in the kernel.
const (
	setDropIn    = "drop_in"  // sources whose packets the DC drops
	setDropOut   = "drop_out" // destinations the DC sends nothing to
	setIsolated  = "isolated" // the DC's own address while it is isolated
	setKeep      = "keep"     // peers an isolated DC still talks to
	prefixLossIn = "loss_in_" // + percent: sources whose packets are dropped at random
	prefixLossDC = "loss_dc_" // + percent: the DC's own address while all its traffic is lossy
)

// keepMargin makes keep elements outlive the isolated marker, so that an
// isolation never turns, for an instant, into a cut of the group's own links.
const keepMargin = time.Second

// setAdd asks for addresses to be added to a set.
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

// sets returns the table's sets by name; an empty map when there is no table.
func (c *nsConn) sets() (map[string]*nftables.Set, error) {
	tables, err := c.nft.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("faults: list nftables tables in dc %s: %w", c.dc, err)
	}
	if !slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == TableName }) {
		return map[string]*nftables.Set{}, nil
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

// unit returns the name of the group of sets created together with a set:
// the isolation rules need both "isolated" and "keep".
func unit(set string) string {
	if set == setKeep {
		return setIsolated
	}
	return set
}

// add adds addresses to sets, creating the table, chains, sets and rules that
// are missing, in one atomic batch. timeout 0 means the elements never expire.
func (c *nsConn) add(adds []setAdd, timeout time.Duration) error {
	have, err := c.sets()
	if err != nil {
		return err
	}
	in, out := chains()
	if len(have) == 0 {
		c.nft.AddTable(table)
		c.nft.AddChain(in)
		c.nft.AddChain(out)
	}
	created := map[string]bool{}
	for _, a := range adds {
		u := unit(a.Set)
		if _, ok := have[a.Set]; ok || created[u] {
			continue
		}
		created[u] = true
		if err := c.createUnit(u, have, in, out); err != nil {
			return err
		}
	}
	for _, a := range adds {
		s := have[a.Set]
		t := timeout
		if t > 0 && a.Set == setKeep {
			t += keepMargin
		}
		elems := make([]nftables.SetElement, len(a.Addrs))
		for i, ip := range a.Addrs {
			elems[i] = nftables.SetElement{Key: ip.AsSlice(), Timeout: t}
		}
		if err := c.nft.SetAddElements(s, elems); err != nil {
			return fmt.Errorf("faults: add to set %s in dc %s: %w", a.Set, c.dc, err)
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

// createUnit queues a set (two for isolation) and the rules that use it.
func (c *nsConn) createUnit(u string, have map[string]*nftables.Set, in, out *nftables.Chain) error {
	addSet := func(name string) (*nftables.Set, error) {
		s := newAddrSet(name)
		if err := c.nft.AddSet(s, nil); err != nil {
			return nil, fmt.Errorf("faults: create set %s in dc %s: %w", name, c.dc, err)
		}
		have[name] = s
		return s, nil
	}
	s, err := addSet(u)
	if err != nil {
		return err
	}
	iif, oif := ifname(expr.MetaKeyIIFNAME, c.wan), ifname(expr.MetaKeyOIFNAME, c.wan)
	switch {
	case u == setDropIn:
		c.rule(in, iif, ipv4(), load(saddr), lookup(s, false), drop())
	case u == setDropOut:
		c.rule(out, oif, ipv4(), load(daddr), lookup(s, false), drop())
	case u == setIsolated:
		keep, err := addSet(setKeep)
		if err != nil {
			return err
		}
		c.rule(in, iif, ipv4(), load(daddr), lookup(s, false), load(saddr), lookup(keep, true), drop())
		c.rule(out, oif, ipv4(), load(saddr), lookup(s, false), load(daddr), lookup(keep, true), drop())
	case strings.HasPrefix(u, prefixLossIn):
		pct, err := strconv.Atoi(strings.TrimPrefix(u, prefixLossIn))
		if err != nil {
			return fmt.Errorf("faults: bad set name %s", u)
		}
		c.rule(in, iif, ipv4(), load(saddr), lookup(s, false), below(pct), drop())
	case strings.HasPrefix(u, prefixLossDC):
		pct, err := strconv.Atoi(strings.TrimPrefix(u, prefixLossDC))
		if err != nil {
			return fmt.Errorf("faults: bad set name %s", u)
		}
		c.rule(in, iif, ipv4(), load(daddr), lookup(s, false), below(pct), drop())
		c.rule(out, oif, ipv4(), load(saddr), lookup(s, false), below(pct), drop())
	default:
		return fmt.Errorf("faults: unknown set %s", u)
	}
	return nil
}

func (c *nsConn) rule(ch *nftables.Chain, parts ...[]expr.Any) {
	var exprs []expr.Any
	for _, p := range parts {
		exprs = append(exprs, p...)
	}
	c.nft.AddRule(&nftables.Rule{Table: table, Chain: ch, Exprs: exprs})
}

// remove deletes the given addresses from a set, where present, in one batch.
// A missing table or set is not an error: there is nothing to remove.
func (c *nsConn) remove(set string, addrs []netip.Addr) error {
	have, err := c.sets()
	if err != nil {
		return err
	}
	s, ok := have[set]
	if !ok {
		return nil
	}
	elems, err := c.nft.GetSetElements(s)
	if err != nil {
		return fmt.Errorf("faults: list set %s in dc %s: %w", set, c.dc, err)
	}
	var del []nftables.SetElement
	for _, e := range elems {
		ip, ok := netip.AddrFromSlice(e.Key)
		if ok && slices.Contains(addrs, ip) {
			del = append(del, nftables.SetElement{Key: e.Key})
		}
	}
	if len(del) == 0 {
		return nil
	}
	if err := c.nft.SetDeleteElements(s, del); err != nil {
		return fmt.Errorf("faults: remove from set %s in dc %s: %w", set, c.dc, err)
	}
	if err := c.nft.Flush(); err != nil {
		return fmt.Errorf("faults: remove from set %s in dc %s: %w", set, c.dc, err)
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

// dropTable deletes the fibercut table, if there is one. It reports whether
// there was.
func (c *nsConn) dropTable() (bool, error) {
	have, err := c.sets()
	if err != nil {
		return false, err
	}
	if len(have) == 0 {
		// The table may exist without sets (a crash between batches cannot
		// cause that, since batches are atomic, but be thorough).
		tables, err := c.nft.ListTablesOfFamily(nftables.TableFamilyINet)
		if err != nil {
			return false, fmt.Errorf("faults: list nftables tables in dc %s: %w", c.dc, err)
		}
		if !slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == TableName }) {
			return false, nil
		}
	}
	c.nft.DelTable(table)
	if err := c.nft.Flush(); err != nil {
		return false, fmt.Errorf("faults: delete table inet %s in dc %s: %w", TableName, c.dc, err)
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
