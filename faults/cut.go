package faults

import (
	"strings"

	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/topology"
)

// cutKind cuts both directions of the link between two DCs: "cut A B".
type cutKind struct{}

func (cutKind) parse(p *parser, s *Spec) error { return p.link(s, "cut") }

func (cutKind) format(b *strings.Builder, s Spec) { b.WriteString(" " + s.A + " " + s.B) }

func (cutKind) validate(s Spec, t *topology.Topology) error { return s.validateLink(t, true) }

func (cutKind) grudge(s Spec, _ *topology.Topology) []Flow { return []Flow{{s.A, s.B}, {s.B, s.A}} }

func (cutKind) plan(s Spec, l *lab.Lab) (changes, error) {
	return dropFlows(s.Grudge(l.Topology), l), nil
}

func (cutKind) cutOff(s Spec, _ *topology.Topology) []string { return []string{s.A, s.B} }

func (cutKind) onLeader() bool { return false }

// dropFlows drops each flow at both ends: the receiver drops what comes
// from the sender, and the sender sends nothing to the receiver.
func dropFlows(flows []Flow, l *lab.Lab) changes {
	var c changes
	for _, f := range flows {
		c.put(f.To, setDropIn, wanIP(l, f.From))
		c.put(f.From, setDropOut, wanIP(l, f.To))
	}
	return c
}

func (cutKind) effects(s Spec, t *topology.Topology, e *Effects) { flowEffects(s, t, e) }
