package faults

import (
	"slices"

	"github.com/fibercut/fibercut/topology"
)

// LinkEffect is what a fault does to the traffic between two DCs.
type LinkEffect string

// DCEffect is what a fault does to a DC as a whole.
type DCEffect string

// What faults do, as dashboards draw it.
const (
	LinkCut       LinkEffect = "cut"
	LinkLossy     LinkEffect = "lossy"
	LinkDelayed   LinkEffect = "delayed"
	LinkThrottled LinkEffect = "throttled"

	DCIsolated DCEffect = "isolated"
	DCDown     DCEffect = "down"
	DCPaused   DCEffect = "paused"
)

// Effects is what one fault does to a topology's links and DCs.
type Effects struct {
	// Links by pair of DC ids, the smaller first ([LinkPair]).
	Links map[[2]string]LinkEffect
	DCs   map[string]DCEffect
}

// LinkPair names the link between a and b, in either order.
func LinkPair(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

// Effects says what the valid spec s does to the links and DCs of t: from
// the spec alone, never from probing the lab.
func (s Spec) Effects(t *topology.Topology) Effects {
	e := Effects{Links: map[[2]string]LinkEffect{}, DCs: map[string]DCEffect{}}
	if k, ok := lookupKind(s.Kind); ok {
		k.effects(s, t, &e)
	}
	return e
}

// link marks the link a-b; a cut is never lowered to a lesser effect.
func (e *Effects) link(a, b string, x LinkEffect) {
	k := LinkPair(a, b)
	if e.Links[k] != LinkCut {
		e.Links[k] = x
	}
}

// dcs marks each of dcs, and every link from one of them to a DC of t
// outside them.
func (e *Effects) dcs(t *topology.Topology, dcs []string, d DCEffect, x LinkEffect) {
	for _, dc := range dcs {
		if d != "" {
			e.DCs[dc] = d
		}
		for _, o := range t.DCIDs() {
			if !slices.Contains(dcs, o) {
				e.link(dc, o, x)
			}
		}
	}
}

// linkOrDCEffects marks a link fault's link, or every link of a DC-wide
// fault's DCs to the others.
func linkOrDCEffects(s Spec, t *topology.Topology, e *Effects, x LinkEffect) {
	if s.A != "" {
		e.link(s.A, s.B, x)
		return
	}
	e.dcs(t, s.Targets(t), "", x)
}

// flowEffects marks the links of every flow a cut or partition blocks.
func flowEffects(s Spec, t *topology.Topology, e *Effects) {
	for _, f := range s.Grudge(t) {
		e.link(f.From, f.To, LinkCut)
	}
}
