package topology

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// lines joins YAML lines, so that test inputs show their line numbers.
func lines(ls ...string) string {
	return strings.Join(ls, "\n") + "\n"
}

func TestParseErrors(t *testing.T) {
	const (
		name   = "name: lab"
		city   = "cities: [{name: hangzhou}]"
		twoDCs = "datacenters: [{id: hz-a, city: hangzhou}, {id: hz-b, city: hangzhou}]"
	)
	tests := []struct {
		name string
		yaml string
		at   string // "line:column"
		msg  string // a part of the message
	}{
		{"syntax: unclosed list", lines(name, "cities: ["),
			"2:9", "invalid YAML: sequence end token ']' not found"},
		{"syntax: tab indentation", lines(name, "cities:", "\t- {name: hangzhou}"),
			"3:1", `invalid YAML: found character '\t'`},
		{"syntax: unclosed quote", lines(`name: "lab`),
			"1:7", "invalid YAML: could not find end character of double-quoted text"},
		{"duplicate key", lines(name, "description: one", "description: two"),
			"3:1", `duplicate key "description" (first at line 2, column 1)`},
		{"unknown top-level field", lines(name, "nmae: lab"),
			"2:1", `unknown field "nmae" (valid fields: name, description, ledger, faults, cities, datacenters, links)`},
		{"unknown datacenter field", lines(name, city, "datacenters:", "  - {id: hz-a, city: hangzhou, weight: 2}"),
			"4:32", `datacenters[0]: unknown field "weight" (valid fields: id, city, zh, en, unit_weight)`},
		{"wrong type: integer", lines(name, "ledger: {tick_ms: fast}"),
			"2:19", `ledger.tick_ms: must be an integer, got "fast"`},
		{"wrong type: integer out of range", lines(name, "ledger: {tick_ms: 99999999999999999999999}"),
			"2:19", `ledger.tick_ms: integer 99999999999999999999999 is out of range`},
		{"wrong type: quoted integer", lines(name, `ledger: {tick_ms: "50"}`),
			"2:19", `ledger.tick_ms: must be an integer, got "50"`},
		{"wrong type: list", lines(name, "cities: hangzhou"),
			"2:9", `cities: must be a list, got "hangzhou"`},
		{"wrong type: string", lines("name: [a, b]"),
			"1:7", "name: must be a string, got a list"},
		{"wrong type: mapping", lines(name, "ledger: 50"),
			"2:9", "ledger: must be a mapping with tick_ms, election_ms, got 50"},
		{"wrong type: top level", lines("- lab"),
			"1:1", "the top level must be a mapping with name, description"},
		{"empty list entry", lines(name, "cities:", "  - {name: hangzhou}", "  -"),
			"4:3", "cities[1]: empty list entry"},
		{"duplicate city", lines(name, "cities:", "  - name: hangzhou", "  - name: shanghai", "  - name: hangzhou"),
			"5:11", `cities[2].name: duplicate city "hangzhou" (first at line 3, column 11)`},
		{"duplicate datacenter id", lines(name, city, "datacenters:",
			"  - id: hz-a", "    city: hangzhou",
			"  - id: hz-a", "    city: hangzhou"),
			"6:9", `datacenters[1].id: duplicate datacenter id "hz-a" (first at line 4, column 9)`},
		{"datacenter without city", lines(name, "cities: [{name: hangzhou}, {name: shanghai}]", "datacenters:",
			"  - {id: hz-a, city: hangzhou}", "  - {id: sh-a, zh: 上海}"),
			"5:6", "datacenters[1].city: missing city (cities: hangzhou, shanghai)"},
		{"datacenter in unknown city", lines(name, city, "datacenters:", "  - {id: hz-a, city: hangzou}"),
			"4:22", `datacenters[0].city: unknown city "hangzou" (cities: hangzhou)`},
		{"datacenter with no cities defined", lines(name, "datacenters:", "  - {id: hz-a, city: hangzhou}"),
			"3:22", `datacenters[0].city: unknown city "hangzhou" (no cities are defined)`},
		{"link to unknown datacenter", lines(name, city, twoDCs, "links:", "  - {between: [hz-a, hz-c]}"),
			"5:22", `links[0].between[1]: unknown datacenter "hz-c" (datacenters: hz-a, hz-b)`},
		{"link to itself", lines(name, city, twoDCs, "links:", "  - {between: [hz-a, hz-a]}"),
			"5:22", `links[0].between[1]: a link must join two different datacenters, not "hz-a" to itself`},
		{"duplicate link", lines(name, city, twoDCs, "links:", "  - {between: [hz-a, hz-b]}", "  - {between: [hz-b, hz-a]}"),
			"6:15", `links[1].between: duplicate link between "hz-b" and "hz-a" (first at line 5, column 15)`},
		{"link with three ends", lines(name, city, twoDCs, "links:", "  - {between: [hz-a, hz-b, hz-a]}"),
			"5:15", "links[0].between: must list exactly two datacenters, e.g. [hz-a, hz-b]; got 3"},
		{"no datacenters (empty list)", lines(name, city, "datacenters: []"),
			"3:14", "datacenters: none defined: a topology needs at least one datacenter"},
		{"no datacenters (null)", lines(name, city, "datacenters:"),
			"3:1", "datacenters: none defined"},
		{"no datacenters (missing)", lines(name, city),
			"1:1", "datacenters: none defined"},
		{"bad id: uppercase", lines(name, city, "datacenters:", "  - {id: HZ-A, city: hangzhou}"),
			"4:10", `datacenters[0].id: datacenter id "HZ-A" is not valid: use 1–20 lowercase letters, digits and '-'`},
		{"bad id: too long", lines(name, city, "datacenters:", "  - {id: hangzhou-datacenter-a, city: hangzhou}"),
			"4:10", `datacenter id "hangzhou-datacenter-a" is not valid`},
		{"bad id: starts with a digit", lines(name, city, "datacenters:", "  - {id: 1a, city: hangzhou}"),
			"4:10", `datacenter id "1a" is not valid`},
		{"bad id: ends with '-'", lines(name, city, "datacenters:", "  - {id: hz-, city: hangzhou}"),
			"4:10", `datacenter id "hz-" is not valid`},
		{"bad city name", lines(name, "cities: [{name: Hang Zhou}]"),
			"2:17", `cities[0].name: city name "Hang Zhou" is not valid`},
		{"bad bandwidth", lines(name, city, twoDCs, "links:", "  - {between: [hz-a, hz-b], bandwidth: 10GB}"),
			"5:40", `links[0].bandwidth: invalid bandwidth "10GB": unknown unit "GB" (use bit, kbit, Mbit or Gbit)`},
		{"bad latency", lines(name, city, twoDCs, "links:", "  - {between: [hz-a, hz-b], latency: 5 ms}"),
			"5:38", `links[0].latency: invalid duration "5 ms": use a Go duration such as 800us, 1.5ms or 60s`},
		{"negative latency", lines(name, city, twoDCs, "links:", "  - {between: [hz-a, hz-b], latency: -1ms}"),
			"5:38", "links[0].latency: must not be negative, got -1ms"},
		{"tick_ms zero", lines(name, "ledger: {tick_ms: 0}", city, twoDCs),
			"2:19", "ledger.tick_ms: must be positive, got 0"},
		{"tick_ms negative", lines(name, "ledger: {tick_ms: -5}", city, twoDCs),
			"2:19", "ledger.tick_ms: must be positive, got -5"},
		{"election_ms below 5 ticks", lines(name, "ledger: {tick_ms: 50, election_ms: 200}", city, twoDCs),
			"2:36", "ledger.election_ms: must be at least 5 × tick_ms = 250, got 200"},
		{"election_ms above etcd's limit", lines(name, "ledger: {election_ms: 60000}", city, twoDCs),
			"2:23", "ledger.election_ms: must be at most 50000 (etcd's limit), got 60000"},
		{"negative unit_weight", lines(name, city, "datacenters:", "  - {id: hz-a, city: hangzhou, unit_weight: -1}"),
			"4:45", "datacenters[0].unit_weight: must not be negative, got -1"},
		{"empty name", lines(`name: ""`, city, twoDCs),
			"1:7", "name: missing: every topology needs a name"},
		{"missing name", lines(city, twoDCs),
			"1:1", "name: missing"},
		{"bad name", lines("name: Lab One", city, twoDCs),
			"1:7", `name: "Lab One" is not valid: use 1–63 lowercase letters`},
		{"multi-line description", lines(name, `description: "one\ntwo"`, city, twoDCs),
			"2:14", "description: must be one line of text"},
		{"zero default_duration", lines(name, "faults: {default_duration: 0s}", city, twoDCs),
			"2:28", "faults.default_duration: must be positive, got 0s"},
		{"bad default_duration", lines(name, "faults: {default_duration: soon}", city, twoDCs),
			"2:28", `faults.default_duration: invalid duration "soon"`},
		{"alias", lines("name: &n lab", "description: *n"),
			"2:14", "description: aliases (*name) are not supported"},
		{"tag", lines("name: !!str lab"),
			"1:7", "name: tags (!!str) are not supported"},
		{"merge key", lines(name, "ledger:", "  <<: {tick_ms: 10}"),
			"3:3", "ledger: merge keys (<<) are not supported"},
		{"second document", lines(name, "---", "name: other"),
			"3:1", "a topology file holds one YAML document, found a second one"},
		{"empty file", "",
			"1:1", "empty file: a topology needs at least a name and datacenters"},
		{"only a comment", lines("# nothing here"),
			"1:1", "empty file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("lab.yaml", []byte(tt.yaml))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse() error = %v, want an *Error", err)
			}
			if e.File != "lab.yaml" {
				t.Errorf("File = %q, want lab.yaml", e.File)
			}
			if at := fmt.Sprintf("%d:%d", e.Line, e.Column); at != tt.at {
				t.Errorf("at %s, want %s (%v)", at, tt.at, err)
			}
			if !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("message %q\ndoes not contain %q", e.Msg, tt.msg)
			}
			if want := "lab.yaml:" + tt.at + ": "; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Error() = %q, want prefix %q", err.Error(), want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("Error() spans several lines: %q", err.Error())
			}
		})
	}
}

func TestParseDefaults(t *testing.T) {
	got, err := Parse("min.yaml", []byte(lines(
		"name: min",
		"cities: [{name: hangzhou}]",
		"datacenters: [{id: hz-a, city: hangzhou}, {id: hz-b, city: hangzhou, unit_weight: 0}]",
	)))
	if err != nil {
		t.Fatal(err)
	}
	if got.Ledger != (Ledger{TickMS: 50, ElectionMS: 500}) {
		t.Errorf("Ledger = %+v, want 50/500", got.Ledger)
	}
	if got.Faults.Duration != 60*time.Second {
		t.Errorf("Faults.Duration = %v, want 60s", got.Faults.Duration)
	}
	for _, dc := range got.Datacenters {
		if dc.UnitWeight != 1 {
			t.Errorf("%s: UnitWeight = %d, want 1", dc.ID, dc.UnitWeight)
		}
	}
	if got.Source != "min.yaml" {
		t.Errorf("Source = %q, want min.yaml", got.Source)
	}
	if got.Links != nil {
		t.Errorf("Links = %v, want nil", got.Links)
	}
}

func TestParseValues(t *testing.T) {
	got, err := Parse("lab.yaml", []byte(lines(
		"# a comment",
		"name: lab",
		"description: 'two DCs: a test'",
		"ledger:",
		"  tick_ms: 100",
		"  election_ms: 1000",
		"faults: {default_duration: 2m}",
		"cities:",
		"  - name: hangzhou",
		"    zh: 杭州",
		"    en: Hangzhou",
		"datacenters:",
		"  - {id: hz-a, city: hangzhou, zh: 杭州 A 机房, en: Hangzhou DC A, unit_weight: 3}",
		"  - {id: hz-b, city: &c hangzhou}",
		"links:",
		"  - between: [hz-a, hz-b]",
		"    latency: 1.5ms",
		"    bandwidth: 100mbit",
	)))
	if err != nil {
		t.Fatal(err)
	}
	want := &Topology{
		Name:        "lab",
		Description: "two DCs: a test",
		Ledger:      Ledger{TickMS: 100, ElectionMS: 1000},
		Faults:      FaultDefaults{Duration: 2 * time.Minute},
		Cities:      []City{{Name: "hangzhou", ZH: "杭州", EN: "Hangzhou"}},
		Datacenters: []Datacenter{
			{ID: "hz-a", City: "hangzhou", ZH: "杭州 A 机房", EN: "Hangzhou DC A", UnitWeight: 3},
			{ID: "hz-b", City: "hangzhou", UnitWeight: 1},
		},
		Links:  []Link{{A: "hz-a", B: "hz-b", Latency: 1500 * time.Microsecond, BandwidthBits: 100_000_000}},
		Source: "lab.yaml",
	}
	if diff := compare(got, want); diff != "" {
		t.Error(diff)
	}
}

// compare returns "" when the topologies are equal, else both, printed.
func compare(got, want *Topology) string {
	if reflect.DeepEqual(got, want) {
		return ""
	}
	return fmt.Sprintf("got\n%#v\nwant\n%#v", got, want)
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lab.yaml")
	data := lines("name: lab", "cities: [{name: hangzhou}]", "datacenters: [{id: hz-a, city: hangzhou}]")
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Source != path {
		t.Errorf("Source = %q, want %q", got.Source, path)
	}

	_, err = Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "topology: ") {
		t.Errorf("Load(missing) error = %v, want a wrapped os.ErrNotExist prefixed with topology:", err)
	}
}

func TestErrorWithoutPosition(t *testing.T) {
	e := &Error{Msg: "name: missing"}
	if got, want := e.Error(), "topology: name: missing"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	e = &Error{Line: 2, Column: 3, Msg: "bad"}
	if got, want := e.Error(), "topology:2:3: bad"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
