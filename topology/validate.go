package topology

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxElectionMS is etcd's upper limit for the election timeout.
const maxElectionMS = 50000

var (
	// idPattern matches DC ids and city names: they become container
	// hostnames, so they follow RFC 1123 labels, shortened.
	idPattern = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,18}[a-z0-9])?$`)
	// namePattern matches topology names, which name labs and networks.
	namePattern = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// problem is one thing wrong with a topology, found at a field path such as
// "datacenters[1].id". first, when set, is the path of the earlier node the
// problem refers to, e.g. the first of two duplicates.
type problem struct {
	path  string
	msg   string
	first string
}

// locator finds the line and column of a field path; ok is false when the
// path has no known position.
type locator func(path string) (line, col int, ok bool)

// message renders the problem; loc may be nil.
func (p problem) message(loc locator) string {
	msg := p.path + ": " + p.msg
	if p.path == "" {
		msg = p.msg
	}
	if p.first == "" {
		return msg
	}
	if loc != nil {
		if line, col, ok := loc(p.first); ok {
			return fmt.Sprintf("%s (first at line %d, column %d)", msg, line, col)
		}
	}
	return fmt.Sprintf("%s (first at %s)", msg, p.first)
}

// Validate checks a topology built in Go (or changed after loading) the way
// [Parse] checks a file: it returns the first problem as an [*Error] without
// a position, or nil.
func (t *Topology) Validate() error {
	ps := t.problems()
	if len(ps) == 0 {
		return nil
	}
	return &Error{Msg: ps[0].message(nil)}
}

// validator collects problems.
type validator struct {
	problems []problem
}

func (v *validator) add(path, format string, args ...any) {
	v.problems = append(v.problems, problem{path: path, msg: fmt.Sprintf(format, args...)})
}

func (v *validator) duplicate(path, first, format string, args ...any) {
	v.problems = append(v.problems, problem{path: path, msg: fmt.Sprintf(format, args...), first: first})
}

// problems returns everything wrong with t, section by section.
func (t *Topology) problems() []problem {
	var v validator
	v.name(t.Name)
	v.text("description", t.Description)
	v.ledger(t.Ledger)
	if t.Faults.Duration <= 0 {
		v.add("faults.default_duration", "must be positive, got %s", t.Faults.Duration)
	}
	v.cities(t.Cities)
	v.datacenters(t.Datacenters, t.CityNames())
	v.links(t.Links, t.DCIDs())
	return v.problems
}

func (v *validator) name(name string) {
	switch {
	case name == "":
		v.add("name", "missing: every topology needs a name, e.g. name: my-lab")
	case !namePattern.MatchString(name):
		v.add("name", "%q is not valid: use 1–63 lowercase letters, digits and '-', starting with a letter and not ending with '-'", name)
	}
}

// text checks that a human-readable string is one line.
func (v *validator) text(path, s string) {
	switch {
	case !utf8.ValidString(s):
		v.add(path, "must be valid UTF-8 text")
	case strings.IndexFunc(s, isControl) >= 0:
		v.add(path, "must be one line of text, without line breaks or control characters")
	}
}

func isControl(r rune) bool {
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
}

// id checks a DC id or a city name.
func (v *validator) id(path, what, id string) {
	switch {
	case id == "":
		v.add(path, "missing %s", what)
	case !idPattern.MatchString(id):
		v.add(path, "%s %q is not valid: use 1–20 lowercase letters, digits and '-', starting with a letter and not ending with '-' (it becomes a container hostname)", what, id)
	}
}

func (v *validator) ledger(l Ledger) {
	if l.TickMS <= 0 {
		v.add("ledger.tick_ms", "must be positive, got %d", l.TickMS)
	}
	switch {
	case l.ElectionMS > maxElectionMS:
		v.add("ledger.election_ms", "must be at most %d (etcd's limit), got %d", maxElectionMS, l.ElectionMS)
	case l.TickMS > 0 && l.ElectionMS/5 < l.TickMS:
		// ElectionMS/5 < TickMS is ElectionMS < 5*TickMS without overflow.
		v.add("ledger.election_ms", "must be at least 5 × tick_ms = %s, got %d", fiveTicks(l.TickMS), l.ElectionMS)
	}
}

// fiveTicks renders 5 × tick for messages, without overflowing.
func fiveTicks(tick int) string {
	if tick <= math.MaxInt/5 {
		return strconv.Itoa(5 * tick)
	}
	return fmt.Sprintf("5 × %d", tick)
}

func (v *validator) cities(cities []City) {
	seen := make(map[string]int)
	for i, c := range cities {
		path := fmt.Sprintf("cities[%d]", i)
		v.id(path+".name", "city name", c.Name)
		if j, dup := seen[c.Name]; dup && c.Name != "" {
			v.duplicate(path+".name", fmt.Sprintf("cities[%d].name", j), "duplicate city %q", c.Name)
		} else {
			seen[c.Name] = i
		}
		v.text(path+".zh", c.ZH)
		v.text(path+".en", c.EN)
	}
}

func (v *validator) datacenters(dcs []Datacenter, cities []string) {
	if len(dcs) == 0 {
		v.add("datacenters", "none defined: a topology needs at least one datacenter")
	}
	seen := make(map[string]int)
	for i, dc := range dcs {
		path := fmt.Sprintf("datacenters[%d]", i)
		v.id(path+".id", "datacenter id", dc.ID)
		if j, dup := seen[dc.ID]; dup && dc.ID != "" {
			v.duplicate(path+".id", fmt.Sprintf("datacenters[%d].id", j), "duplicate datacenter id %q", dc.ID)
		} else {
			seen[dc.ID] = i
		}
		v.dcCity(path+".city", dc.City, cities)
		v.text(path+".zh", dc.ZH)
		v.text(path+".en", dc.EN)
		if dc.UnitWeight < 0 {
			v.add(path+".unit_weight", "must not be negative, got %d", dc.UnitWeight)
		}
	}
}

func (v *validator) dcCity(path, city string, cities []string) {
	switch {
	case city == "":
		v.add(path, "missing city (%s)", validList("cities", cities))
	case !slices.Contains(cities, city):
		v.add(path, "unknown city %q (%s)", city, validList("cities", cities))
	}
}

func (v *validator) links(links []Link, dcs []string) {
	seen := make(map[[2]string]int)
	for i, l := range links {
		path := fmt.Sprintf("links[%d]", i)
		v.linkEnd(path+".between[0]", l.A, dcs)
		v.linkEnd(path+".between[1]", l.B, dcs)
		if l.A == l.B && l.A != "" {
			v.add(path+".between[1]", "a link must join two different datacenters, not %q to itself", l.A)
		}
		key := [2]string{min(l.A, l.B), max(l.A, l.B)}
		if j, dup := seen[key]; dup {
			v.duplicate(path+".between", fmt.Sprintf("links[%d].between", j), "duplicate link between %q and %q", l.A, l.B)
		} else {
			seen[key] = i
		}
		if l.Latency < 0 {
			v.add(path+".latency", "must not be negative, got %s", l.Latency)
		}
		if l.BandwidthBits < 0 {
			v.add(path+".bandwidth", "must not be negative, got %d bit/s", l.BandwidthBits)
		}
	}
}

func (v *validator) linkEnd(path, id string, dcs []string) {
	switch {
	case id == "":
		v.add(path, "missing datacenter (%s)", validList("datacenters", dcs))
	case !slices.Contains(dcs, id):
		v.add(path, "unknown datacenter %q (%s)", id, validList("datacenters", dcs))
	}
}

// validList says what the valid values are, for error messages.
func validList(what string, names []string) string {
	if len(names) == 0 {
		return "no " + what + " are defined"
	}
	return what + ": " + strings.Join(names, ", ")
}
