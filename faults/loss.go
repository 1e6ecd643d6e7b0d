package faults

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/topology"
)

// lossKind drops a share of packets at random, on a link or on all of a
// DC's WAN traffic: "loss 30% link A B | dc ID | city NAME | leader".
type lossKind struct{}

func (lossKind) parse(p *parser, s *Spec) error {
	if err := p.percent(s); err != nil {
		return err
	}
	return p.target(s, true)
}

func (lossKind) format(b *strings.Builder, s Spec) {
	fmt.Fprintf(b, " %d%%", s.Percent)
	formatTarget(b, s)
}

func (lossKind) validate(s Spec, t *topology.Topology) error {
	if err := s.validateTarget(t, true); err != nil {
		return err
	}
	if s.Percent < 1 || s.Percent > 100 {
		return fmt.Errorf("%w: loss of %d%%; give a whole percent from 1 to 100", ErrBadSpec, s.Percent)
	}
	return nil
}

func (lossKind) plan(s Spec, l *lab.Lab) (changes, error) {
	var c changes
	if s.A != "" {
		set := prefixLossIn + strconv.Itoa(s.Percent)
		c.put(s.A, set, wanIP(l, s.B))
		c.put(s.B, set, wanIP(l, s.A))
		return c, nil
	}
	for _, dc := range s.Targets(l.Topology) {
		c.put(dc, prefixLossDC+strconv.Itoa(s.Percent), wanIP(l, dc))
	}
	return c, nil
}

func (lossKind) cutOff(s Spec, t *topology.Topology) []string { return linkOrDCs(s, t) }

func (lossKind) onLeader() bool { return true }

// linkOrDCs returns a link's two DCs, or the DCs of a DC-wide fault.
func linkOrDCs(s Spec, t *topology.Topology) []string {
	if s.A != "" {
		return []string{s.A, s.B}
	}
	return s.Targets(t)
}

func (lossKind) effects(s Spec, t *topology.Topology, e *Effects) {
	linkOrDCEffects(s, t, e, LinkLossy)
}
