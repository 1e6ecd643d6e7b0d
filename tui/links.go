package tui

import (
	"slices"
	"strings"

	"github.com/fibercut/fibercut/faults"
	"github.com/fibercut/fibercut/topology"
	"github.com/fibercut/fibercut/verify"
)

// LinkState is what a fiber between two DCs is doing.
type LinkState = faults.LinkEffect

// The states of a link, and of a DC, drawn on the map.
const (
	LinkOK        LinkState = "ok"
	LinkCut                 = faults.LinkCut
	LinkLossy               = faults.LinkLossy
	LinkDelayed             = faults.LinkDelayed
	LinkThrottled           = faults.LinkThrottled
)

// DCState is what a DC is doing, as fibercut applied it.
type DCState = faults.DCEffect

// The states of a DC that faults cause.
const (
	DCOK       DCState = "ok"
	DCIsolated         = faults.DCIsolated
	DCDown             = faults.DCDown
	DCPaused           = faults.DCPaused
)

// linkKey names the link between a and b, in either order.
func linkKey(a, b string) [2]string { return faults.LinkPair(a, b) }

// applied works out, from the faults in force (End 0), the state of every
// link and DC: from what fibercut applied ([faults.Spec.Effects]), never
// from probing. A window whose description is not in the fault grammar
// counts as cutting its DCs off.
func applied(t *topology.Topology, windows []verify.FaultWindow) (map[[2]string]LinkState, map[string]DCState) {
	links := map[[2]string]LinkState{}
	dcs := map[string]DCState{}
	worse := func(k [2]string, s LinkState) {
		if links[k] != LinkCut {
			links[k] = s
		}
	}
	for _, w := range windows {
		if w.End != 0 {
			continue
		}
		var e faults.Effects
		spec, err := faults.ParseSpec(strings.TrimSuffix(w.Desc, " (the leader)"))
		if err == nil && spec.Validate(t) == nil {
			e = spec.Effects(t)
		} else {
			e = faults.Effects{Links: map[[2]string]faults.LinkEffect{}, DCs: map[string]faults.DCEffect{}}
			for _, dc := range w.DCs {
				e.DCs[dc] = DCIsolated
				for _, o := range t.DCIDs() {
					if !slices.Contains(w.DCs, o) {
						e.Links[linkKey(dc, o)] = LinkCut
					}
				}
			}
		}
		for k, s := range e.Links {
			worse(k, s)
		}
		for dc, s := range e.DCs {
			dcs[dc] = s
		}
	}
	return links, dcs
}
