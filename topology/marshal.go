package topology

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/goccy/go-yaml/token"
)

// Marshal writes the topology as YAML in the format [Parse] reads: the
// top-level fields in block style, one flow mapping per city, datacenter and
// link. Parsing the result gives back an equal Topology (except Source).
// It returns the first problem if the topology is not valid.
func (t *Topology) Marshal() ([]byte, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\n", scalar(t.Name))
	if t.Description != "" {
		fmt.Fprintf(&b, "description: %s\n", scalar(t.Description))
	}
	fmt.Fprintf(&b, "ledger: {tick_ms: %d, election_ms: %d}\n", t.Ledger.TickMS, t.Ledger.ElectionMS)
	fmt.Fprintf(&b, "faults: {default_duration: %s}\n", scalar(FormatDuration(t.Faults.Duration)))
	writeList(&b, "cities", t.Cities, cityFields)
	writeList(&b, "datacenters", t.Datacenters, dcFields)
	if len(t.Links) > 0 {
		writeList(&b, "links", t.Links, linkFields)
	}
	return []byte(b.String()), nil
}

// writeList writes a block list of flow mappings, or "[]" when empty.
func writeList[T any](b *strings.Builder, key string, items []T, fields func(T) []string) {
	if len(items) == 0 {
		fmt.Fprintf(b, "%s: []\n", key)
		return
	}
	fmt.Fprintf(b, "%s:\n", key)
	for _, it := range items {
		fmt.Fprintf(b, "  - {%s}\n", strings.Join(fields(it), ", "))
	}
}

func cityFields(c City) []string {
	return pairs("name", c.Name, "zh", c.ZH, "en", c.EN)
}

func dcFields(dc Datacenter) []string {
	f := pairs("id", dc.ID, "city", dc.City, "zh", dc.ZH, "en", dc.EN)
	return append(f, "unit_weight: "+strconv.Itoa(dc.UnitWeight))
}

func linkFields(l Link) []string {
	f := []string{fmt.Sprintf("between: [%s, %s]", scalar(l.A), scalar(l.B))}
	if l.Latency != 0 {
		f = append(f, "latency: "+scalar(FormatDuration(l.Latency)))
	}
	if l.BandwidthBits != 0 {
		f = append(f, "bandwidth: "+scalar(FormatBandwidth(l.BandwidthBits)))
	}
	return f
}

// pairs renders "key: value" for each non-empty value; the first pair is
// always written.
func pairs(kv ...string) []string {
	var out []string
	for i := 0; i < len(kv); i += 2 {
		if i == 0 || kv[i+1] != "" {
			out = append(out, kv[i]+": "+scalar(kv[i+1]))
		}
	}
	return out
}

// scalar renders a string as a YAML scalar that is safe in flow context:
// plain when that cannot be misread, double-quoted otherwise.
func scalar(s string) string {
	if plainSafe(s) {
		return s
	}
	return quote(s)
}

// plainSafe reports whether s reads back as the same string when written
// plain: letters and digits, with inner spaces, '-' and '.', that YAML would
// not take for a number, boolean, null or timestamp.
func plainSafe(s string) bool {
	if s == "" || token.IsNeedQuoted(s) {
		return false
	}
	for i, r := range s {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
		case i > 0 && (r == ' ' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return true
}

// quote renders s as a YAML double-quoted string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r > 0xFFFF && !unicode.IsGraphic(r):
			fmt.Fprintf(&b, `\U%08X`, r)
		case !unicode.IsGraphic(r):
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// jsonTopology is the JSON form of a Topology: the same fields and values
// as the YAML form.
type jsonTopology struct {
	Name        string       `json:"name"`
	Description string       `json:"description,omitempty"`
	Ledger      Ledger       `json:"ledger"`
	Faults      jsonFaults   `json:"faults"`
	Cities      []City       `json:"cities"`
	Datacenters []Datacenter `json:"datacenters"`
	Links       []jsonLink   `json:"links,omitempty"`
}

type jsonFaults struct {
	DefaultDuration string `json:"default_duration"`
}

type jsonLink struct {
	Between   [2]string `json:"between"`
	Latency   string    `json:"latency,omitempty"`
	Bandwidth string    `json:"bandwidth,omitempty"`
}

// MarshalJSON writes the topology with the same fields and values as its
// YAML form (durations and bandwidths as strings such as "1ms", "10Gbit").
// Source is not included. Marshal a *Topology: the method has a pointer
// receiver, like [Topology.Marshal].
func (t *Topology) MarshalJSON() ([]byte, error) {
	j := jsonTopology{
		Name:        t.Name,
		Description: t.Description,
		Ledger:      t.Ledger,
		Faults:      jsonFaults{DefaultDuration: FormatDuration(t.Faults.Duration)},
		Cities:      t.Cities,
		Datacenters: t.Datacenters,
	}
	for _, l := range t.Links {
		jl := jsonLink{Between: [2]string{l.A, l.B}}
		if l.Latency != 0 {
			jl.Latency = FormatDuration(l.Latency)
		}
		if l.BandwidthBits != 0 {
			jl.Bandwidth = FormatBandwidth(l.BandwidthBits)
		}
		j.Links = append(j.Links, jl)
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads the form [Topology.MarshalJSON] writes, with the
// defaults and validation of [Parse] (JSON is YAML). Source is set to "json".
func (t *Topology) UnmarshalJSON(data []byte) error {
	parsed, err := Parse("json", data)
	if err != nil {
		return err
	}
	*t = *parsed
	return nil
}
