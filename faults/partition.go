package faults

import (
	"fmt"
	"strings"

	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/topology"
)

// partitionKind splits the DCs into groups that cannot reach each other:
// "partition A,B | C,D,E", "partition one-way A | B,C,D,E" (only packets
// from an earlier group to a later one are dropped) or "partition ring"
// (Jepsen's majorities ring).
type partitionKind struct{}

func (partitionKind) parse(p *parser, s *Spec) error {
	const forms = "write partition hz-a,hz-b | sh-a,sh-b,sz-a, partition one-way sz-a | hz-a,hz-b,sh-a,sh-b or partition ring"
	w, ok := p.next()
	if !ok {
		return p.fail(w, "partition needs groups: %s", forms)
	}
	if strings.TrimSpace(p.text[w.off:]) == "ring" {
		s.Ring = true
		return nil
	}
	if w.text == "one-way" {
		s.OneWay = true
		if w, ok = p.next(); !ok {
			return p.fail(w, "partition one-way needs groups, e.g. partition one-way sz-a | hz-a,hz-b,sh-a,sh-b")
		}
	}
	rest := p.rest(w) // the groups are the rest of the text
	groups, err := ParseGroups(strings.Join(strings.Fields(rest), ","))
	if err != nil {
		return p.fail(w, "partition %q has an empty group: write DC ids separated by commas, groups separated by '|', e.g. hz-a,hz-b | sh-a,sh-b,sz-a", rest)
	}
	for _, g := range groups {
		for _, id := range g {
			if id == "ring" || id == "one-way" {
				return p.fail(w, "%q is a keyword, not a DC id: %s", id, forms)
			}
		}
	}
	if len(groups) < 2 {
		return p.fail(w, "partition %q needs at least two groups separated by '|', e.g. hz-a,hz-b | sh-a,sh-b,sz-a", rest)
	}
	s.Groups = groups
	return nil
}

func (partitionKind) format(b *strings.Builder, s Spec) {
	if s.Ring {
		b.WriteString(" ring")
		return
	}
	if s.OneWay {
		b.WriteString(" one-way")
	}
	gs := make([]string, len(s.Groups))
	for i, g := range s.Groups {
		gs[i] = strings.Join(g, ",")
	}
	b.WriteString(" " + strings.Join(gs, " | "))
}

func (partitionKind) validate(s Spec, t *topology.Topology) error {
	if s.A != "" || s.B != "" || s.DC != "" || s.City != "" {
		return fmt.Errorf("%w: a partition takes groups of DCs, not a link, DC or city", ErrBadSpec)
	}
	if s.Ring {
		if len(s.Groups) > 0 || s.OneWay {
			return fmt.Errorf("%w: a ring partition takes no groups and is not one-way", ErrBadSpec)
		}
		if len(t.Datacenters) < 5 {
			return fmt.Errorf("%w: a majorities ring needs at least 5 DCs; topology %s has %d", ErrBadSpec, t.Name, len(t.Datacenters))
		}
		return nil
	}
	if len(s.Groups) < 2 {
		return fmt.Errorf("%w: a partition needs at least two groups, e.g. \"hz-a,hz-b | sh-a,sh-b,sz-a\"", ErrBadSpec)
	}
	seen := map[string]int{}
	for gi, g := range s.Groups {
		for _, id := range g {
			if err := checkDC(t, id); err != nil {
				return err
			}
			if prev, ok := seen[id]; ok {
				where := fmt.Sprintf("in groups %d and %d", prev+1, gi+1)
				if prev == gi {
					where = fmt.Sprintf("twice in group %d", gi+1)
				}
				return fmt.Errorf("%w: partition names %s %s; each DC belongs to exactly one group", ErrBadSpec, id, where)
			}
			seen[id] = gi
		}
	}
	var missing []string
	for _, id := range t.DCIDs() {
		if _, ok := seen[id]; !ok {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: partition leaves out %s; every DC belongs to exactly one group", ErrBadSpec, strings.Join(missing, ", "))
	}
	return nil
}

// grudge returns the flows the partition blocks, unsorted.
func (partitionKind) grudge(s Spec, t *topology.Topology) []Flow {
	var flows []Flow
	if s.Ring {
		ids := t.DCIDs()
		n := len(ids)
		reach := (n/2 + 1) / 2 // neighbours on each side: with itself, a majority
		for i := range ids {
			for j := range ids {
				if d := min((i-j+n)%n, (j-i+n)%n); d > reach {
					flows = append(flows, Flow{ids[j], ids[i]})
				}
			}
		}
		return flows
	}
	for gi, g := range s.Groups {
		for gj, h := range s.Groups {
			if gi == gj || (s.OneWay && gi > gj) {
				continue
			}
			for _, from := range g {
				for _, to := range h {
					flows = append(flows, Flow{from, to})
				}
			}
		}
	}
	return flows
}

func (partitionKind) plan(s Spec, l *lab.Lab) (changes, error) {
	return dropFlows(s.Grudge(l.Topology), l), nil
}

// cutOff: every group but the largest (the first of the largest); in a
// ring, every DC.
func (partitionKind) cutOff(s Spec, t *topology.Topology) []string {
	if s.Ring {
		return t.DCIDs()
	}
	largest := 0
	for i, g := range s.Groups {
		if len(g) > len(s.Groups[largest]) {
			largest = i
		}
	}
	var dcs []string
	for i, g := range s.Groups {
		if i != largest {
			dcs = append(dcs, g...)
		}
	}
	return dcs
}

func (partitionKind) onLeader() bool { return false }

func (partitionKind) effects(s Spec, t *topology.Topology, e *Effects) { flowEffects(s, t, e) }
