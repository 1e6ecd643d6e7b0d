package faults

import (
	"strings"

	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/topology"
)

// powerOffKind kills the DCs' containers, as a power loss (their data
// volumes survive): "power-off dc ID | city NAME | leader". Power comes back
// when the fault is healed, by its watchdog when its time is up.
type powerOffKind struct{}

func (powerOffKind) parse(p *parser, s *Spec) error { return p.target(s, false) }

func (powerOffKind) format(b *strings.Builder, s Spec) { formatTarget(b, s) }

func (powerOffKind) validate(s Spec, t *topology.Topology) error { return s.validateTarget(t, false) }

func (powerOffKind) plan(s Spec, l *lab.Lab) (changes, error) {
	return changes{kill: s.Targets(l.Topology)}, nil
}

func (powerOffKind) cutOff(s Spec, t *topology.Topology) []string { return s.Targets(t) }

func (powerOffKind) onLeader() bool { return true }

func (powerOffKind) effects(s Spec, t *topology.Topology, e *Effects) {
	e.dcs(t, s.Targets(t), DCDown, LinkCut)
}
