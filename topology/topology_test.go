package topology

import (
	"slices"
	"strings"
	"testing"
)

func TestLookups(t *testing.T) {
	tp, err := Builtin(Default)
	if err != nil {
		t.Fatal(err)
	}
	if dc, ok := tp.DC("sh-b"); !ok || dc.City != "shanghai" || dc.EN != "Shanghai DC B" {
		t.Errorf("DC(sh-b) = %+v, %v", dc, ok)
	}
	if _, ok := tp.DC("xx"); ok {
		t.Error("DC(xx) found")
	}
	if c, ok := tp.City("shenzhen"); !ok || c.ZH != "深圳" {
		t.Errorf("City(shenzhen) = %+v, %v", c, ok)
	}
	if _, ok := tp.City("beijing"); ok {
		t.Error("City(beijing) found")
	}
	var inHZ []string
	for _, dc := range tp.DCsIn("hangzhou") {
		inHZ = append(inHZ, dc.ID)
	}
	if want := []string{"hz-a", "hz-b"}; !slices.Equal(inHZ, want) {
		t.Errorf("DCsIn(hangzhou) = %v, want %v", inHZ, want)
	}
	if got := tp.DCsIn("beijing"); got != nil {
		t.Errorf("DCsIn(beijing) = %v, want nil", got)
	}
	if got, want := tp.DCIDs(), []string{"hz-a", "hz-b", "sh-a", "sh-b", "sz-a"}; !slices.Equal(got, want) {
		t.Errorf("DCIDs() = %v, want %v", got, want)
	}
	if got, want := tp.CityNames(), []string{"hangzhou", "shanghai", "shenzhen"}; !slices.Equal(got, want) {
		t.Errorf("CityNames() = %v, want %v", got, want)
	}
	if l, ok := tp.Link("sz-a", "hz-b"); !ok || !l.Joins("hz-b", "sz-a") {
		t.Errorf("Link(sz-a, hz-b) = %+v, %v", l, ok)
	}
	if _, ok := tp.Link("hz-a", "hz-a"); ok {
		t.Error("Link(hz-a, hz-a) found")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Topology)
		err    string // "" for valid
	}{
		{"valid", func(*Topology) {}, ""},
		{"empty name", func(t *Topology) { t.Name = "" }, "topology: name: missing"},
		{"zero tick", func(t *Topology) { t.Ledger.TickMS = 0 }, "topology: ledger.tick_ms: must be positive, got 0"},
		{"zero fault duration", func(t *Topology) { t.Faults.Duration = 0 }, "topology: faults.default_duration: must be positive"},
		{"duplicate city", func(t *Topology) { t.Cities = append(t.Cities, t.Cities[0]) },
			`topology: cities[1].name: duplicate city "hangzhou" (first at cities[0].name)`},
		{"invalid UTF-8", func(t *Topology) { t.Cities[0].EN = "\xff" }, "topology: cities[0].en: must be valid UTF-8"},
		{"line break", func(t *Topology) { t.Description = "a\u2028b" }, "topology: description: must be one line"},
		{"link end missing", func(t *Topology) { t.Links = []Link{{A: "hz-a"}} },
			"topology: links[0].between[1]: missing datacenter (datacenters: hz-a)"},
		{"negative bandwidth", func(t *Topology) {
			t.Datacenters = append(t.Datacenters, Datacenter{ID: "hz-b", City: "hangzhou"})
			t.Links = []Link{{A: "hz-a", B: "hz-b", BandwidthBits: -1}}
		}, "topology: links[0].bandwidth: must not be negative"},
		{"huge tick", func(t *Topology) { t.Ledger.TickMS = 1 << 62 },
			"topology: ledger.election_ms: must be at least 5 × tick_ms = 5 × 4611686018427387904, got 500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp := minimal()
			tt.change(tp)
			err := tp.Validate()
			if tt.err == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
				t.Errorf("Validate() = %v, want prefix %q", err, tt.err)
			}
		})
	}
}
