package faults

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fibercut/fibercut/topology"
)

// Kind names a kind of fault. Each kind's behaviour is one type in a file
// of its own, listed in [registry].
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

// Kinds lists every fault kind, in the order of [registry].
var Kinds = func() []Kind {
	ks := make([]Kind, len(registry))
	for i, e := range registry {
		ks[i] = e.name
	}
	return ks
}()

// ErrBadSpec is wrapped by every error about a fault that cannot be applied
// as given (unknown DC, bad partition, percent out of range, ...).
var ErrBadSpec = errors.New("bad fault")

// Spec describes one fault. Which fields matter depends on Kind:
//
//   - cut: A and B;
//   - isolate, power-off, pause, bandwidth, delay: DC or City (or Leader);
//   - loss, delay: A and B (a link) or DC or City (or Leader);
//   - partition: Groups, or Ring;
//   - loss: Percent; bandwidth: RateBits; delay: Delay and Jitter.
//
// [ParseSpec] reads a Spec from the fault grammar and [Spec.String] writes
// it back.
type Spec struct {
	Kind Kind `json:"kind"`
	// A and B are the two DCs of a link.
	A string `json:"a,omitempty"`
	B string `json:"b,omitempty"`
	// DC or City names the target of a DC-wide fault (one of the two).
	DC   string `json:"dc,omitempty"`
	City string `json:"city,omitempty"`
	// Leader targets the DC holding the ledger's leader, which only the
	// caller can find when the fault is applied: it sets DC and clears
	// Leader before [Injector.Apply].
	Leader bool `json:"leader,omitempty"`
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
	// Engine is how a delay is applied: EngineNetem, EngineNFQueue, or ""
	// (auto) for netem where the kernel has it, else NFQUEUE.
	Engine string `json:"engine,omitempty"`
}

// Delay engines ([Spec.Engine]).
const (
	EngineAuto    = "auto"
	EngineNetem   = "netem"
	EngineNFQueue = "nfqueue"
)

// String writes the fault in the grammar [ParseSpec] reads, e.g.
// "loss 30% link hz-a sh-a"; ParseSpec(s.String()) gives s back (but For,
// which the grammar leaves to the caller).
func (s Spec) String() string {
	var b strings.Builder
	b.WriteString(string(s.Kind))
	if k, ok := lookupKind(s.Kind); ok {
		k.format(&b, s)
	}
	return b.String()
}

// Validate checks the spec against a topology: every DC and city exists, a
// partition names every DC exactly once, numbers are in range. A fault on
// the leader is checked with a stand-in DC, since the leader is only known
// when the fault is applied. The error wraps [ErrBadSpec] and lists what is
// valid.
func (s Spec) Validate(t *topology.Topology) error {
	if s.For < 0 {
		return fmt.Errorf("%w: negative duration %s; use a positive duration, or 0 for until healed", ErrBadSpec, s.For)
	}
	if s.For > 0 && s.For < time.Millisecond {
		// The kernel keeps element timeouts in whole milliseconds, and 0
		// would mean forever.
		return fmt.Errorf("%w: duration %s is under 1ms; use at least 1ms, or 0 for until healed", ErrBadSpec, s.For)
	}
	k, ok := lookupKind(s.Kind)
	if !ok {
		return fmt.Errorf("%w: unknown kind %q; valid kinds: %s", ErrBadSpec, s.Kind, kindList())
	}
	if s.Leader {
		switch {
		case !k.onLeader():
			return fmt.Errorf("%w: %s cannot target the leader (kinds that can: %s)", ErrBadSpec, s.Kind, leaderKindList())
		case s.DC != "" || s.City != "" || s.A != "" || s.B != "":
			return fmt.Errorf("%w: a fault on the leader names no dc, city or link", ErrBadSpec)
		case len(t.Datacenters) == 0:
			return fmt.Errorf("%w: topology %s has no DC to hold a leader", ErrBadSpec, t.Name)
		}
		s.DC, s.Leader = t.Datacenters[0].ID, false // a stand-in
	}
	return k.validate(s, t)
}

// CutOff returns the DCs a fault separates from the majority side, and the
// cities all of whose DCs are among them: whose users lose their home DC
// (for per-user outage splits). The spec must be valid.
func (s Spec) CutOff(t *topology.Topology) (dcs, cities []string) {
	if k, ok := lookupKind(s.Kind); ok {
		dcs = k.cutOff(s, t)
	}
	for _, c := range t.CityNames() {
		in := t.DCsIn(c)
		all := len(in) > 0
		for _, d := range in {
			all = all && slices.Contains(dcs, d.ID)
		}
		if all {
			cities = append(cities, c)
		}
	}
	return dcs, cities
}

// Clone returns a copy that shares nothing with s.
func (s Spec) Clone() Spec {
	if s.Groups != nil {
		gs := make([][]string, len(s.Groups))
		for i, g := range s.Groups {
			gs[i] = slices.Clone(g)
		}
		s.Groups = gs
	}
	return s
}

func kindList() string {
	ks := make([]string, len(Kinds))
	for i, k := range Kinds {
		ks[i] = string(k)
	}
	return strings.Join(ks, ", ")
}

func leaderKindList() string {
	var ks []string
	for _, e := range registry {
		if e.kind.onLeader() {
			ks = append(ks, string(e.name))
		}
	}
	return strings.Join(ks, ", ")
}

func checkDC(t *topology.Topology, id string) error {
	if _, ok := t.DC(id); !ok {
		return fmt.Errorf("%w: unknown DC %q; valid DCs: %s", ErrBadSpec, id, strings.Join(t.DCIDs(), ", "))
	}
	return nil
}

// validateLink checks A and B; required says the kind takes nothing else.
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

// validateTarget checks DC or City; link says A and B are allowed instead.
func (s Spec) validateTarget(t *topology.Topology, link bool) error {
	if s.A != "" || s.B != "" {
		if link {
			return s.validateLink(t, false)
		}
		return fmt.Errorf("%w: %s applies to a DC or a city, not a link", ErrBadSpec, s.Kind)
	}
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

// Grudge returns the directed flows a cut or partition blocks, sorted (the
// kinds that block flows have a grudge method). (In
// Jepsen's terms, each To holds a grudge against each From.)
func (s Spec) Grudge(t *topology.Topology) []Flow {
	var flows []Flow
	if k, ok := lookupKind(s.Kind); ok {
		if g, ok := k.(interface {
			grudge(Spec, *topology.Topology) []Flow
		}); ok {
			flows = g.grudge(s, t)
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
