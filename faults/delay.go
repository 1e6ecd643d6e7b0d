package faults

import (
	"fmt"
	"strings"

	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/topology"
)

// delayKind adds latency (and jitter) to every packet leaving a DC's WAN
// interface: "delay 50ms±10ms dc ID | city NAME | leader". Two engines:
// a netem qdisc, where the kernel has sch_netem (the kernel cannot end a
// qdisc on time: the fault's watchdog does); or NFQUEUE, where it has
// not: nftables rules queue the DC's packets, with bypass, to the fault's
// holder, which gives each packet its verdict after the delay (holder.go)
// — in the other DCs as they arrive, and in the DC itself those it sends
// elsewhere.
// Their set elements expire with the fault, and a dead holder lets
// packets pass.
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
	if s.A != "" && s.Engine == EngineNetem {
		return fmt.Errorf("%w: a delay on a single link needs --engine nfqueue (netem delays a whole DC or city)", ErrBadSpec)
	}
	switch s.Engine {
	case "", EngineAuto, EngineNetem, EngineNFQueue:
	default:
		return fmt.Errorf("%w: delay engine %q: want %s, %s or %s", ErrBadSpec, s.Engine, EngineAuto, EngineNetem, EngineNFQueue)
	}
	return nil
}

func (delayKind) plan(s Spec, l *lab.Lab) (changes, error) {
	engine := s.Engine
	if engine == "" || engine == EngineAuto {
		engine = EngineNFQueue
		if kernelHas("CONFIG_NET_SCH_NETEM") {
			engine = EngineNetem
		}
	}
	if s.A != "" {
		engine = EngineNFQueue // netem delays a whole interface
	}
	if engine == EngineNetem {
		if err := netemAvailable(); err != nil {
			return changes{}, fmt.Errorf("%w; --engine nfqueue (or auto) delays without it", err)
		}
		return changes{qdisc: &qdiscSpec{Delay: s.Delay, Jitter: s.Jitter}, qdiscDCs: s.Targets(l.Topology)}, nil
	}
	// Held where they arrive (nft.go says why): what a delayed DC sends
	// another DC waits in the receiver's namespace.
	ch := changes{hold: true}
	if s.A != "" {
		// Both directions, as netem on both ends.
		ch.put(s.A, setDelayFrom, wanIP(l, s.B))
		ch.put(s.B, setDelayFrom, wanIP(l, s.A))
		return ch, nil
	}
	for _, dc := range s.Targets(l.Topology) {
		for _, p := range l.DCs {
			// A DC off now has no namespace to hold in; on again, it
			// gets what the delayed DC sends undelayed.
			if p.ID != dc && p.WANIP.IsValid() && p.State == "running" {
				ch.put(p.ID, setDelayFrom, wanIP(l, dc))
			}
		}
		ch.put(dc, setDelay, wanIP(l, dc))
		for _, p := range l.DCs {
			if p.WANIP.IsValid() {
				ch.put(dc, setDelayPeers, p.WANIP)
			}
		}
	}
	return ch, nil
}

func (delayKind) cutOff(s Spec, t *topology.Topology) []string { return linkOrDCs(s, t) }

func (delayKind) onLeader() bool { return true }

func (delayKind) effects(s Spec, t *topology.Topology, e *Effects) {
	linkOrDCEffects(s, t, e, LinkDelayed)
}
