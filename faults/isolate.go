package faults

import (
	"strings"

	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/topology"
)

// isolateKind cuts every link from a DC, or from every DC of a city, to the
// rest of the lab and to users; links inside the group stay up:
// "isolate dc ID | city NAME | leader". Each DC of the group marks its own
// address as isolated and keeps its group's peers.
type isolateKind struct{}

func (isolateKind) parse(p *parser, s *Spec) error { return p.target(s, false) }

func (isolateKind) format(b *strings.Builder, s Spec) { formatTarget(b, s) }

func (isolateKind) validate(s Spec, t *topology.Topology) error { return s.validateTarget(t, false) }

func (isolateKind) plan(s Spec, l *lab.Lab) (changes, error) {
	var c changes
	group := s.Targets(l.Topology)
	for _, dc := range group {
		c.put(dc, setIsolated, wanIP(l, dc))
		for _, peer := range group {
			if peer != dc {
				c.put(dc, setKeep, wanIP(l, peer))
			}
		}
	}
	return c, nil
}

func (isolateKind) cutOff(s Spec, t *topology.Topology) []string { return s.Targets(t) }

func (isolateKind) onLeader() bool { return true }

func (isolateKind) effects(s Spec, t *topology.Topology, e *Effects) {
	e.dcs(t, s.Targets(t), DCIsolated, LinkCut)
}
