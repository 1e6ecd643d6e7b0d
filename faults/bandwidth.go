package faults

import (
	"fmt"
	"strings"

	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/topology"
)

// bandwidthKind limits a DC's WAN egress with a tbf qdisc:
// "bandwidth 10mbit dc ID | city NAME | leader". The kernel cannot end a
// qdisc on time: the fault's watchdog does.
type bandwidthKind struct{}

func (bandwidthKind) parse(p *parser, s *Spec) error {
	if err := p.rate(s); err != nil {
		return err
	}
	return p.target(s, false)
}

func (bandwidthKind) format(b *strings.Builder, s Spec) {
	b.WriteString(" " + topology.FormatBandwidth(s.RateBits))
	formatTarget(b, s)
}

func (bandwidthKind) validate(s Spec, t *topology.Topology) error {
	if err := s.validateTarget(t, false); err != nil {
		return err
	}
	if s.RateBits <= 0 {
		return fmt.Errorf("%w: bandwidth needs a positive rate, e.g. 10mbit", ErrBadSpec)
	}
	return nil
}

func (bandwidthKind) plan(s Spec, l *lab.Lab) (changes, error) {
	return changes{qdisc: &qdiscSpec{RateBits: s.RateBits}, qdiscDCs: s.Targets(l.Topology)}, nil
}

func (bandwidthKind) cutOff(s Spec, t *topology.Topology) []string { return s.Targets(t) }

func (bandwidthKind) onLeader() bool { return true }

func (bandwidthKind) effects(s Spec, t *topology.Topology, e *Effects) {
	linkOrDCEffects(s, t, e, LinkThrottled)
}
