package tui

import (
	"slices"
	"strings"

	"github.com/fibercut/fibercut/faults"
	"github.com/fibercut/fibercut/topology"
	"github.com/fibercut/fibercut/verify"
)

// LinkState is what a fiber between two DCs is doing.
type LinkState string

// The states of a link, and of a DC, drawn on the map.
const (
	LinkOK      LinkState = "ok"
	LinkCut     LinkState = "cut"
	LinkLossy   LinkState = "lossy"
	LinkDelayed LinkState = "delayed"
)

// DCState is what a DC is doing, as fibercut applied it.
type DCState string

// The states of a DC that faults cause.
const (
	DCOK       DCState = "ok"
	DCIsolated DCState = "isolated"
	DCDown     DCState = "down"
	DCPaused   DCState = "paused"
)

// linkKey names the link between a and b, in either order.
func linkKey(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

// applied works out, from the faults in force (End 0), the state of every
// link and DC: from what fibercut applied, never from probing. A window
// whose description is not in the fault grammar counts as cutting its DCs
// off.
func applied(t *topology.Topology, windows []verify.FaultWindow) (map[[2]string]LinkState, map[string]DCState) {
	links := map[[2]string]LinkState{}
	dcs := map[string]DCState{}
	ids := t.DCIDs()
	worse := func(k [2]string, s LinkState) {
		if links[k] != LinkCut {
			links[k] = s
		}
	}
	for _, w := range windows {
		if w.End != 0 {
			continue
		}
		spec, err := faults.ParseSpec(strings.TrimSuffix(w.Desc, " (the leader)"))
		if err != nil || spec.Validate(t) != nil {
			for _, dc := range w.DCs {
				dcs[dc] = DCIsolated
				for _, o := range ids {
					if o != dc && !slices.Contains(w.DCs, o) {
						worse(linkKey(dc, o), LinkCut)
					}
				}
			}
			continue
		}
		switch spec.Kind {
		case faults.KindCut, faults.KindPartition:
			for _, f := range spec.Grudge(t) {
				worse(linkKey(f.From, f.To), LinkCut)
			}
		case faults.KindIsolate:
			group := spec.Targets(t)
			for _, dc := range group {
				dcs[dc] = DCIsolated
				for _, o := range ids {
					if !slices.Contains(group, o) {
						worse(linkKey(dc, o), LinkCut)
					}
				}
			}
		case faults.KindLoss, faults.KindDelay:
			state := LinkLossy
			if spec.Kind == faults.KindDelay {
				state = LinkDelayed
			}
			if spec.A != "" {
				worse(linkKey(spec.A, spec.B), state)
				continue
			}
			for _, dc := range spec.Targets(t) {
				for _, o := range ids {
					if o != dc {
						worse(linkKey(dc, o), state)
					}
				}
			}
		case faults.KindPowerOff, faults.KindPause:
			state := DCDown
			if spec.Kind == faults.KindPause {
				state = DCPaused
			}
			for _, dc := range spec.Targets(t) {
				dcs[dc] = state
				for _, o := range ids {
					if o != dc {
						worse(linkKey(dc, o), LinkCut)
					}
				}
			}
		}
	}
	return links, dcs
}
