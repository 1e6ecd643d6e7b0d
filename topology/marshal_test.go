package topology

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// roundTrip marshals t, parses the result as t.Source and compares.
func roundTrip(t *testing.T, tp *Topology) []byte {
	t.Helper()
	data, err := tp.Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	back, err := Parse(tp.Source, data)
	if err != nil {
		t.Fatalf("Parse(Marshal()): %v\n%s", err, data)
	}
	if diff := compare(back, tp); diff != "" {
		t.Errorf("round trip differs:\n%s\n%s", diff, data)
	}
	return data
}

func TestMarshalRoundTripBuiltins(t *testing.T) {
	for _, name := range BuiltinNames() {
		t.Run(name, func(t *testing.T) {
			tp, err := Builtin(name)
			if err != nil {
				t.Fatal(err)
			}
			roundTrip(t, tp)
		})
	}
}

func TestMarshalRoundTripText(t *testing.T) {
	texts := []string{
		"plain text",
		"Alipay's 三地五中心: three cities",
		"杭州 A 机房",
		"true", "null", "~", "Yes", "off", "123", "0x1F", "1e3", "1_000", ".inf", "2018-09-20",
		"- dash", "a - b", "#hash", "a #b", "colon: here", "trailing:", "{brace}", "[list]", "a, b",
		" leading space", "trailing space ", "quote \" and \\ backslash", "'single'", "*alias", "&anchor",
		"!tag", "%percent", "@at", "`tick`", "|pipe", ">fold", "?question", "tab-free\u00a0nbsp",
		"zero\u200bwidth", "bom\ufeff", "emoji 🚀", "ideographic\u3000space", "---", "...",
	}
	for _, s := range texts {
		t.Run(s, func(t *testing.T) {
			tp := minimal()
			tp.Description = s
			tp.Cities[0].ZH = s
			tp.Datacenters[0].EN = s
			roundTrip(t, tp)
		})
	}
}

func TestMarshalRoundTripValues(t *testing.T) {
	tp := minimal()
	tp.Ledger = Ledger{TickMS: 7, ElectionMS: 50000}
	tp.Faults.Duration = 90*time.Minute + 1
	tp.Datacenters = append(tp.Datacenters, Datacenter{ID: "hz-b", City: "hangzhou", UnitWeight: 1 << 40})
	tp.Links = []Link{
		{A: "hz-a", B: "hz-b"},
		{A: "hz-b", B: "hz-c", Latency: 1500 * time.Microsecond, BandwidthBits: 1_500_000},
		{A: "hz-a", B: "hz-c", Latency: time.Nanosecond, BandwidthBits: 1234567},
	}
	tp.Datacenters = append(tp.Datacenters, Datacenter{ID: "hz-c", City: "hangzhou", UnitWeight: 2})
	roundTrip(t, tp)
}

func TestMarshalFormat(t *testing.T) {
	tp := minimal()
	tp.Links = nil
	got, err := tp.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := lines(
		"name: lab",
		"ledger: {tick_ms: 50, election_ms: 500}",
		"faults: {default_duration: 1m}",
		"cities:",
		"  - {name: hangzhou, zh: 杭州}",
		"datacenters:",
		"  - {id: hz-a, city: hangzhou, en: Hangzhou DC A, unit_weight: 1}",
	)
	if string(got) != want {
		t.Errorf("Marshal() =\n%s\nwant\n%s", got, want)
	}
}

func TestMarshalInvalid(t *testing.T) {
	tp := minimal()
	tp.Datacenters = nil
	if _, err := tp.Marshal(); err == nil || !strings.Contains(err.Error(), "datacenters") {
		t.Errorf("Marshal() error = %v, want one about datacenters", err)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	tp, err := Builtin(Default)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(tp)
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{`"name":"three-city-five-dc"`, `"tick_ms":50`, `"default_duration":"1m"`,
		`"between":["hz-a","hz-b"]`, `"latency":"1ms"`, `"bandwidth":"10Gbit"`, `"unit_weight":1`} {
		if !strings.Contains(string(data), part) {
			t.Errorf("JSON lacks %s:\n%s", part, data)
		}
	}
	var back Topology
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	back.Source = tp.Source
	if diff := compare(&back, tp); diff != "" {
		t.Error(diff)
	}
}

// minimal returns a small valid topology.
func minimal() *Topology {
	return &Topology{
		Name:        "lab",
		Ledger:      Ledger{TickMS: 50, ElectionMS: 500},
		Faults:      FaultDefaults{Duration: time.Minute},
		Cities:      []City{{Name: "hangzhou", ZH: "杭州"}},
		Datacenters: []Datacenter{{ID: "hz-a", City: "hangzhou", EN: "Hangzhou DC A", UnitWeight: 1}},
		Source:      "test",
	}
}
