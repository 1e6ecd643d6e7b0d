package faults

import (
	"strings"

	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/topology"
)

// pauseKind freezes the DCs' containers: "pause dc ID | city NAME | leader".
// They resume when the fault is healed, by its watchdog when its time is up.
type pauseKind struct{}

func (pauseKind) parse(p *parser, s *Spec) error { return p.target(s, false) }

func (pauseKind) format(b *strings.Builder, s Spec) { formatTarget(b, s) }

func (pauseKind) validate(s Spec, t *topology.Topology) error { return s.validateTarget(t, false) }

func (pauseKind) plan(s Spec, l *lab.Lab) (changes, error) {
	return changes{pause: s.Targets(l.Topology)}, nil
}

func (pauseKind) cutOff(s Spec, t *topology.Topology) []string { return s.Targets(t) }

func (pauseKind) onLeader() bool { return true }

func (pauseKind) effects(s Spec, t *topology.Topology, e *Effects) {
	e.dcs(t, s.Targets(t), DCPaused, LinkCut)
}
