package faults

import (
	"fmt"
	"strings"

	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/topology"
)

// delayKind adds latency (and jitter) to every packet leaving a DC's WAN
// interface with a netem qdisc, where the kernel has sch_netem:
// "delay 50ms±10ms dc ID | city NAME | leader". The kernel cannot end a
// qdisc on time: the fault's watchdog does.
type delayKind struct{}

func (delayKind) parse(p *parser, s *Spec) error {
	if err := p.delay(s); err != nil {
		return err
	}
	return p.target(s, true)
}

func (delayKind) format(b *strings.Builder, s Spec) {
	b.WriteString(" " + topology.FormatDuration(s.Delay))
	if s.Jitter != 0 {
		b.WriteString("±" + topology.FormatDuration(s.Jitter))
	}
	formatTarget(b, s)
}

func (delayKind) validate(s Spec, t *topology.Topology) error {
	if err := s.validateTarget(t, true); err != nil {
		return err
	}
	if s.Delay <= 0 || s.Jitter < 0 {
		return fmt.Errorf("%w: delay %s jitter %s; the delay must be positive and the jitter not negative", ErrBadSpec, s.Delay, s.Jitter)
	}
	if s.A != "" {
		return fmt.Errorf("%w: delay on a single link is not supported yet; delay a whole DC or city (dc ID, city NAME)", ErrBadSpec)
	}
	return nil
}

func (delayKind) plan(s Spec, l *lab.Lab) (changes, error) {
	if err := netemAvailable(); err != nil {
		return changes{}, err
	}
	return changes{qdisc: &qdiscSpec{Delay: s.Delay, Jitter: s.Jitter}, qdiscDCs: s.Targets(l.Topology)}, nil
}

func (delayKind) cutOff(s Spec, t *topology.Topology) []string { return linkOrDCs(s, t) }

func (delayKind) onLeader() bool { return true }

func (delayKind) effects(s Spec, t *topology.Topology, e *Effects) {
	linkOrDCEffects(s, t, e, LinkDelayed)
}
