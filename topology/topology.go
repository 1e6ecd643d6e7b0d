package topology

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Defaults applied by [Parse] to fields a file leaves out.
const (
	DefaultTickMS        = 50
	DefaultElectionMS    = 500
	DefaultFaultDuration = 60 * time.Second
	DefaultUnitWeight    = 1
)

// Topology is a set of cities, the datacenters (DCs) in them, the links
// between DCs, and the ledger timing the DCs' consensus members use.
//
// A Topology returned by [Load], [Parse], [Builtin] or [Resolve] has been
// validated: ids are unique, every DC is in a known city, every link joins two
// known DCs, and there is at least one DC.
type Topology struct {
	// Name identifies the topology, e.g. "three-city-five-dc".
	Name string `yaml:"name"`
	// Description is one line for humans.
	Description string `yaml:"description,omitempty"`
	// Ledger is the consensus timing of the DCs' ledger members.
	Ledger Ledger `yaml:"ledger"`
	// Faults holds defaults for faults applied to a lab of this topology.
	Faults FaultDefaults `yaml:"faults"`
	// Cities in display order.
	Cities []City `yaml:"cities"`
	// Datacenters in display order; each names its city.
	Datacenters []Datacenter `yaml:"datacenters"`
	// Links are the fibers between DCs, with their baseline properties.
	Links []Link `yaml:"links,omitempty"`

	// Source says where the topology came from: "builtin:NAME" or a file path.
	Source string `yaml:"-"`
}

// City is a failure domain that can lose power or fiber as a whole.
type City struct {
	Name string `yaml:"name" json:"name"` // e.g. "hangzhou"
	ZH   string `yaml:"zh,omitempty" json:"zh,omitempty"`
	EN   string `yaml:"en,omitempty" json:"en,omitempty"`
}

// Datacenter is one DC of a city; in a lab it is one container.
type Datacenter struct {
	ID   string `yaml:"id" json:"id"`     // e.g. "hz-a"
	City string `yaml:"city" json:"city"` // name of a City
	ZH   string `yaml:"zh,omitempty" json:"zh,omitempty"`
	EN   string `yaml:"en,omitempty" json:"en,omitempty"`
	// UnitWeight is the share of users homed in this DC relative to the
	// others (the LDC "unit"); 0 in a file means the default, 1.
	UnitWeight int `yaml:"unit_weight,omitempty" json:"unit_weight"`
}

// Link is the fiber between two DCs. In a file it is written
// {between: [A, B], latency: 1ms, bandwidth: 10Gbit}; [Parse] and
// [Topology.Marshal] handle that form.
type Link struct {
	A, B string
	// Latency is the baseline one-way latency.
	Latency time.Duration
	// BandwidthBits is the baseline bandwidth in bits per second; 0 = unlimited.
	BandwidthBits int64
}

// Ledger is the timing of the consensus (etcd) members, in milliseconds.
type Ledger struct {
	TickMS     int `yaml:"tick_ms" json:"tick_ms"`
	ElectionMS int `yaml:"election_ms" json:"election_ms"`
}

// FaultDefaults are defaults for faults applied to a lab of this topology.
// In a file: faults: {default_duration: 60s}.
type FaultDefaults struct {
	// Duration of a fault when none is given. Never 0 in a validated topology.
	Duration time.Duration
}

// DC returns the datacenter with the given id.
func (t *Topology) DC(id string) (Datacenter, bool) {
	for _, dc := range t.Datacenters {
		if dc.ID == id {
			return dc, true
		}
	}
	return Datacenter{}, false
}

// City returns the city with the given name.
func (t *Topology) City(name string) (City, bool) {
	for _, c := range t.Cities {
		if c.Name == name {
			return c, true
		}
	}
	return City{}, false
}

// DCsIn returns the datacenters of a city, in display order; nil if the city
// has none or is unknown.
func (t *Topology) DCsIn(city string) []Datacenter {
	var dcs []Datacenter
	for _, dc := range t.Datacenters {
		if dc.City == city {
			dcs = append(dcs, dc)
		}
	}
	return dcs
}

// DCIDs returns the ids of all datacenters, in display order.
func (t *Topology) DCIDs() []string {
	ids := make([]string, len(t.Datacenters))
	for i, dc := range t.Datacenters {
		ids[i] = dc.ID
	}
	return ids
}

// CityNames returns the names of all cities, in display order.
func (t *Topology) CityNames() []string {
	names := make([]string, len(t.Cities))
	for i, c := range t.Cities {
		names[i] = c.Name
	}
	return names
}

// Link returns the link between two DCs, in either direction.
func (t *Topology) Link(a, b string) (Link, bool) {
	for _, l := range t.Links {
		if l.Joins(a, b) {
			return l, true
		}
	}
	return Link{}, false
}

// Joins reports whether the link is between a and b, in either direction.
func (l Link) Joins(a, b string) bool {
	return (l.A == a && l.B == b) || (l.A == b && l.B == a)
}

// LatencySummary describes the links' one-way latencies, fewest first:
// "1ms on 2 links, 5ms on 4, 15ms on 4"; "no link has a latency" when
// none has.
func (t *Topology) LatencySummary() string {
	count := map[time.Duration]int{}
	for _, l := range t.Links {
		if l.Latency > 0 {
			count[l.Latency]++
		}
	}
	if len(count) == 0 {
		return "no link has a latency"
	}
	var parts []string
	for i, d := range slices.Sorted(maps.Keys(count)) {
		unit := ""
		if i == 0 {
			unit = " link"
			if count[d] != 1 {
				unit = " links"
			}
		}
		parts = append(parts, fmt.Sprintf("%s on %d%s", FormatDuration(d), count[d], unit))
	}
	return strings.Join(parts, ", ")
}
