package faults

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fibercut/fibercut/topology"
)

// Kind names a kind of fault.
type Kind string

// The fault kinds.
const (
	KindCut       Kind = "cut"       // both directions of the link between two DCs
	KindIsolate   Kind = "isolate"   // every link from a DC or city to the rest, and to users
	KindPartition Kind = "partition" // groups of DCs that cannot reach each other
	KindLoss      Kind = "loss"      // random drop of a share of packets on a link or DC
	KindBandwidth Kind = "bandwidth" // rate limit on a DC's WAN interface
	KindDelay     Kind = "delay"     // added latency on a DC's WAN interface (netem)
	KindPowerOff  Kind = "power-off" // the DCs' containers killed, as a power loss
	KindPause     Kind = "pause"     // the DCs' containers frozen
)

// Kinds lists every fault kind.
var Kinds = []Kind{KindCut, KindIsolate, KindPartition, KindLoss, KindBandwidth, KindDelay, KindPowerOff, KindPause}

// ErrBadSpec is wrapped by every error about a fault that cannot be applied
// as given (unknown DC, bad partition, percent out of range, ...).
var ErrBadSpec = errors.New("bad fault")

// Spec describes one fault. Which fields matter depends on Kind:
//
//   - cut: A and B;
//   - isolate, power-off, pause, bandwidth, delay: DC or City;
//   - loss, delay: A and B (a link) or DC or City;
//   - partition: Groups, or Ring;
//   - loss: Percent; bandwidth: RateBits; delay: Delay and Jitter.
type Spec struct {
	Kind Kind `json:"kind"`
	// A and B are the two DCs of a link.
	A string `json:"a,omitempty"`
	B string `json:"b,omitempty"`
	// DC or City names the target of a DC-wide fault (one of the two).
	DC   string `json:"dc,omitempty"`
	City string `json:"city,omitempty"`
	// Groups of a partition: no packet crosses from one group to another.
	Groups [][]string `json:"groups,omitempty"`
	// OneWay partitions drop only packets from an earlier group to a later
	// one: with groups "A | B", A cannot reach B but B reaches A.
	OneWay bool `json:"one_way,omitempty"`
	// Ring partitions each DC from all but its nearest neighbours in the
	// topology's DC order, so that every DC sees a majority, but no two see
	// the same one (Jepsen's majorities ring).
	Ring bool `json:"ring,omitempty"`
	// Percent of packets dropped, 1-100.
	Percent int `json:"percent,omitempty"`
	// RateBits is the bandwidth limit in bits per second.
	RateBits int64 `json:"rate_bits,omitempty"`
	// Delay and Jitter added to every packet leaving the WAN interface.
	Delay  time.Duration `json:"delay,omitempty"`
	Jitter time.Duration `json:"jitter,omitempty"`
	// For is how long the fault lasts; 0 means until healed.
	For time.Duration `json:"for"`
}

// String describes the fault for people, e.g. "isolate city hangzhou (hz-a, hz-b)".
func (s Spec) String() string {
	var b strings.Builder
	b.WriteString(string(s.Kind))
	switch s.Kind {
	case KindLoss:
		fmt.Fprintf(&b, " %d%%", s.Percent)
	case KindBandwidth:
		fmt.Fprintf(&b, " %s", topology.FormatBandwidth(s.RateBits))
	case KindDelay:
		fmt.Fprintf(&b, " %s", s.Delay)
		if s.Jitter > 0 {
			fmt.Fprintf(&b, "±%s", s.Jitter)
		}
	}
	switch {
	case s.A != "":
		fmt.Fprintf(&b, " %s ⇄ %s", s.A, s.B)
	case s.City != "":
		fmt.Fprintf(&b, " city %s", s.City)
	case s.DC != "":
		fmt.Fprintf(&b, " dc %s", s.DC)
	case s.Ring:
		b.WriteString(" ring")
	case len(s.Groups) > 0:
		gs := make([]string, len(s.Groups))
		for i, g := range s.Groups {
			gs[i] = strings.Join(g, ",")
		}
		sep := " | "
		if s.OneWay {
			sep = " -> "
		}
		fmt.Fprintf(&b, " %s", strings.Join(gs, sep))
	}
	return b.String()
}

// ParseGroups parses a partition written as "hz-a,hz-b | sh-a,sh-b,sz-a".
func ParseGroups(expr string) ([][]string, error) {
	var groups [][]string
	for g := range strings.SplitSeq(expr, "|") {
		var ids []string
		for id := range strings.SplitSeq(g, ",") {
			if id = strings.TrimSpace(id); id != "" {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			return nil, fmt.Errorf("%w: partition %q has an empty group; write groups of DC ids separated by '|', e.g. \"hz-a,hz-b | sh-a,sh-b,sz-a\"", ErrBadSpec, expr)
		}
		groups = append(groups, ids)
	}
	return groups, nil
}

// Validate checks the spec against a topology: every DC and city exists, a
// partition names every DC exactly once, numbers are in range. The error
// wraps [ErrBadSpec] and lists what is valid.
func (s Spec) Validate(t *topology.Topology) error {
	if s.For < 0 {
		return fmt.Errorf("%w: negative duration %s; use a positive duration, or 0 for until healed", ErrBadSpec, s.For)
	}
	switch s.Kind {
	case KindCut:
		return s.validateLink(t, true)
	case KindIsolate, KindPowerOff, KindPause, KindBandwidth:
		if s.A != "" {
			return fmt.Errorf("%w: %s applies to a DC or a city, not a link", ErrBadSpec, s.Kind)
		}
		if err := s.validateTarget(t); err != nil {
			return err
		}
		if s.Kind == KindBandwidth && s.RateBits <= 0 {
			return fmt.Errorf("%w: bandwidth needs a positive rate, e.g. 10mbit", ErrBadSpec)
		}
		return nil
	case KindLoss, KindDelay:
		if s.A != "" {
			if err := s.validateLink(t, false); err != nil {
				return err
			}
		} else if err := s.validateTarget(t); err != nil {
			return err
		}
		if s.Kind == KindLoss && (s.Percent < 1 || s.Percent > 100) {
			return fmt.Errorf("%w: loss of %d%%; give a whole percent from 1 to 100", ErrBadSpec, s.Percent)
		}
		if s.Kind == KindDelay && (s.Delay <= 0 || s.Jitter < 0) {
			return fmt.Errorf("%w: delay %s jitter %s; the delay must be positive and the jitter not negative", ErrBadSpec, s.Delay, s.Jitter)
		}
		return nil
	case KindPartition:
		return s.validatePartition(t)
	}
	return fmt.Errorf("%w: unknown kind %q; valid kinds: %s", ErrBadSpec, s.Kind, kindList())
}

func kindList() string {
	ks := make([]string, len(Kinds))
	for i, k := range Kinds {
		ks[i] = string(k)
	}
	return strings.Join(ks, ", ")
}

func checkDC(t *topology.Topology, id string) error {
	if _, ok := t.DC(id); !ok {
		return fmt.Errorf("%w: unknown DC %q; valid DCs: %s", ErrBadSpec, id, strings.Join(t.DCIDs(), ", "))
	}
	return nil
}

func (s Spec) validateLink(t *topology.Topology, required bool) error {
	if s.A == "" || s.B == "" {
		if required {
			return fmt.Errorf("%w: %s needs two DCs; valid DCs: %s", ErrBadSpec, s.Kind, strings.Join(t.DCIDs(), ", "))
		}
		return fmt.Errorf("%w: a link needs two DCs", ErrBadSpec)
	}
	if s.DC != "" || s.City != "" {
		return fmt.Errorf("%w: give a link or a DC or a city, not more than one", ErrBadSpec)
	}
	for _, id := range []string{s.A, s.B} {
		if err := checkDC(t, id); err != nil {
			return err
		}
	}
	if s.A == s.B {
		return fmt.Errorf("%w: a link joins two different DCs, not %s and itself", ErrBadSpec, s.A)
	}
	return nil
}

func (s Spec) validateTarget(t *topology.Topology) error {
	switch {
	case s.DC != "" && s.City != "":
		return fmt.Errorf("%w: give --dc or --city, not both", ErrBadSpec)
	case s.DC != "":
		return checkDC(t, s.DC)
	case s.City != "":
		if _, ok := t.City(s.City); !ok {
			return fmt.Errorf("%w: unknown city %q; valid cities: %s", ErrBadSpec, s.City, strings.Join(t.CityNames(), ", "))
		}
		return nil
	}
	return fmt.Errorf("%w: %s needs a DC or a city; valid DCs: %s; valid cities: %s",
		ErrBadSpec, s.Kind, strings.Join(t.DCIDs(), ", "), strings.Join(t.CityNames(), ", "))
}

func (s Spec) validatePartition(t *topology.Topology) error {
	if s.Ring {
		if len(s.Groups) > 0 {
			return fmt.Errorf("%w: a ring partition takes no groups", ErrBadSpec)
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

// Targets returns the DCs a DC- or city-wide fault acts on, in topology order.
func (s Spec) Targets(t *topology.Topology) []string {
	switch {
	case s.DC != "":
		return []string{s.DC}
	case s.City != "":
		var ids []string
		for _, d := range t.DCsIn(s.City) {
			ids = append(ids, d.ID)
		}
		return ids
	}
	return nil
}

// Flow is one direction of traffic between two DCs.
type Flow struct{ From, To string }

// Grudge returns the directed flows a cut or partition blocks, sorted. (In
// Jepsen's terms, each To holds a grudge against each From.)
func (s Spec) Grudge(t *topology.Topology) []Flow {
	var flows []Flow
	add := func(from, to string) { flows = append(flows, Flow{from, to}) }
	switch {
	case s.Kind == KindCut:
		add(s.A, s.B)
		add(s.B, s.A)
	case s.Kind == KindPartition && s.Ring:
		ids := t.DCIDs()
		n := len(ids)
		reach := (n/2 + 1) / 2 // neighbours on each side: with itself, a majority
		for i := range ids {
			for j := range ids {
				d := min((i-j+n)%n, (j-i+n)%n)
				if d > reach {
					add(ids[j], ids[i])
				}
			}
		}
	case s.Kind == KindPartition:
		for gi, g := range s.Groups {
			for gj, h := range s.Groups {
				if gi == gj || (s.OneWay && gi > gj) {
					continue
				}
				for _, from := range g {
					for _, to := range h {
						add(from, to)
					}
				}
			}
		}
	}
	slices.SortFunc(flows, func(a, b Flow) int {
		if c := strings.Compare(a.From, b.From); c != 0 {
			return c
		}
		return strings.Compare(a.To, b.To)
	})
	return flows
}
