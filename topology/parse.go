package topology

import (
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Load reads and validates the topology file at path.
func Load(path string) (*Topology, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	return Parse(path, data)
}

// Parse reads and validates a topology from YAML. file names the source in
// errors and becomes the topology's Source. Fields left out get their
// defaults (see [DefaultTickMS] and the other Default constants).
//
// Every error is an [*Error] pointing at the offending YAML node; when a file
// has several problems, only the first is reported, section by section.
func Parse(file string, data []byte) (*Topology, error) {
	body, err := parseDocument(file, data, "topology", "a topology needs at least a name and datacenters")
	if err != nil {
		return nil, err
	}
	d := &decoder{file: file, pos: make(map[string]position)}
	t := &Topology{
		Ledger: Ledger{TickMS: DefaultTickMS, ElectionMS: DefaultElectionMS},
		Faults: FaultDefaults{Duration: DefaultFaultDuration},
	}
	if err := d.topology(body, t); err != nil {
		return nil, err
	}
	if ps := t.problems(); len(ps) > 0 {
		return nil, d.first(ps)
	}
	t.Source = file
	return t, nil
}

// parseDocument parses YAML text and returns the body of its only document.
// format names the kind of file ("topology") and empty says what a file
// must hold at least, for the messages about a second or a missing document.
func parseDocument(file string, data []byte, format, empty string) (ast.Node, error) {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, syntaxError(file, err)
	}
	var body ast.Node
	for _, doc := range f.Docs {
		if doc.Body == nil {
			continue
		}
		if body != nil {
			line, col := nodePosition(doc.Body)
			return nil, &Error{File: file, Line: line, Column: col,
				Msg: "a " + format + " file holds one YAML document, found a second one"}
		}
		body = doc.Body
	}
	if body == nil {
		return nil, &Error{File: file, Line: 1, Column: 1,
			Msg: "empty file: " + empty}
	}
	return body, nil
}

// duplicateKey matches the parser's message for a key given twice.
var duplicateKey = regexp.MustCompile(`^mapping key (".*") already defined at \[(\d+):(\d+)\]$`)

// syntaxError turns an error of the YAML parser into an [*Error].
func syntaxError(file string, err error) *Error {
	e := &Error{File: file, Line: 1, Column: 1, Msg: "invalid YAML: " + oneLine(err.Error())}
	var yerr yaml.Error
	if !errors.As(err, &yerr) {
		return e
	}
	e.Msg = "invalid YAML: " + oneLine(yerr.GetMessage())
	if m := duplicateKey.FindStringSubmatch(yerr.GetMessage()); m != nil {
		e.Msg = fmt.Sprintf("duplicate key %s (first at line %s, column %s)", m[1], m[2], m[3])
	}
	if tk := yerr.GetToken(); tk != nil && tk.Position != nil && tk.Position.Line >= 1 {
		e.Line, e.Column = tk.Position.Line, max(tk.Position.Column, 1)
	}
	return e
}

// oneLine keeps the first line of a message and escapes control characters
// in it, such as a tab the parser quotes.
func oneLine(msg string) string {
	msg, _, _ = strings.Cut(msg, "\n")
	var b strings.Builder
	for _, r := range msg {
		if isControl(r) {
			b.WriteString(strings.Trim(strconv.QuoteRune(r), "'"))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// position is a 1-based line and column.
type position struct{ line, col int }

// nodePosition returns where a node starts, or 1, 1 when it has no position.
// A mapping starts at its first key.
func nodePosition(n ast.Node) (line, col int) {
	if p, ok := startOf(n); ok {
		return p.line, p.col
	}
	return 1, 1
}

func startOf(n ast.Node) (position, bool) {
	if m, ok := n.(*ast.MappingNode); ok && len(m.Values) > 0 && m.Values[0].Key != nil {
		n = m.Values[0].Key
	}
	if n == nil {
		return position{}, false
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil || tk.Position.Line < 1 {
		return position{}, false
	}
	return position{tk.Position.Line, max(tk.Position.Column, 1)}, true
}

// decoder walks the YAML tree into a Topology, remembering the position of
// every field by its path ("datacenters[1].id") so that validation problems
// can point at the node that caused them.
type decoder struct {
	file string
	pos  map[string]position
}

func (d *decoder) record(path string, n ast.Node) {
	if p, ok := startOf(n); ok {
		d.pos[path] = p
	}
}

// locate returns the position recorded for exactly path.
func (d *decoder) locate(path string) (line, col int, ok bool) {
	p, ok := d.pos[path]
	return p.line, p.col, ok
}

// near returns the position of path, or of its nearest recorded parent.
func (d *decoder) near(path string) position {
	for {
		if p, ok := d.pos[path]; ok {
			return p
		}
		if path == "" {
			return position{1, 1}
		}
		path = parentPath(path)
	}
}

// parentPath strips the last ".name" or "[i]" of a path.
func parentPath(path string) string {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '.' || path[i] == '[' {
			return path[:i]
		}
	}
	return ""
}

func childPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// first turns the first problem into an [*Error] at its node, or at the
// nearest enclosing node when the field is missing.
func (d *decoder) first(ps []problem) *Error {
	at := d.near(ps[0].path)
	return &Error{File: d.file, Line: at.line, Column: at.col, Msg: ps[0].message(d.locate)}
}

// errorf reports a problem at node n, for the field at path.
func (d *decoder) errorf(n ast.Node, path, format string, args ...any) *Error {
	p, ok := startOf(n)
	if !ok {
		p = d.near(path)
	}
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	return &Error{File: d.file, Line: p.line, Column: p.col, Msg: msg}
}

// typeError says what a field should have been and what it was.
func (d *decoder) typeError(n ast.Node, path, want string) *Error {
	if path == "" {
		return d.errorf(n, path, "the top level must be %s, got %s", want, describe(n))
	}
	return d.errorf(n, path, "must be %s, got %s", want, describe(n))
}

// describe names the kind of a node for error messages.
func describe(n ast.Node) string {
	switch n := n.(type) {
	case *ast.MappingNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.NullNode:
		return "nothing"
	case *ast.StringNode:
		return strconv.Quote(n.Value)
	case *ast.LiteralNode:
		return "a block of text"
	}
	if tk := n.GetToken(); tk != nil {
		return tk.Value
	}
	return "an unexpected value"
}

// unwrap follows anchors and refuses YAML features the format does not use.
func (d *decoder) unwrap(n ast.Node, path string) (ast.Node, error) {
	for {
		switch v := n.(type) {
		case *ast.AnchorNode:
			if v.Value == nil {
				return nil, d.errorf(n, path, "anchor without a value")
			}
			n = v.Value
		case *ast.AliasNode:
			return nil, d.errorf(n, path, "aliases (*name) are not supported; write the value out")
		case *ast.TagNode:
			return nil, d.errorf(n, path, "tags (%s) are not supported; write a plain value", v.Start.Value)
		case nil:
			return nil, d.errorf(nil, path, "missing value")
		default:
			return n, nil
		}
	}
}

// mapping decodes a mapping with the given fields; null is an empty mapping.
func (d *decoder) mapping(n ast.Node, path string, fields []Field) error {
	n, err := d.unwrap(n, path)
	if err != nil {
		return err
	}
	d.record(path, n)
	switch m := n.(type) {
	case *ast.NullNode:
		return nil
	case *ast.MappingNode:
		for _, kv := range m.Values {
			if err := d.entry(kv, path, fields); err != nil {
				return err
			}
		}
		return nil
	}
	return d.typeError(n, path, "a mapping with "+fieldNames(fields))
}

// entry decodes one key: value pair of a mapping.
func (d *decoder) entry(kv *ast.MappingValueNode, path string, fields []Field) error {
	key, err := d.key(kv.Key, path)
	if err != nil {
		return err
	}
	for _, f := range fields {
		if f.Name == key {
			p := childPath(path, key)
			d.record(p, kv.Key)
			if _, null := kv.Value.(*ast.NullNode); !null {
				d.record(p, kv.Value) // a null value has no text to point at
			}
			return f.Decode(kv.Value, p)
		}
	}
	return d.errorf(kv.Key, path, "unknown field %q (valid fields: %s)", key, fieldNames(fields))
}

// key returns the name of a mapping key.
func (d *decoder) key(k ast.MapKeyNode, path string) (string, error) {
	if k == nil {
		return "", d.errorf(nil, path, "missing key")
	}
	if k.IsMergeKey() {
		return "", d.errorf(k, path, "merge keys (<<) are not supported; write the fields out")
	}
	if s, ok := k.(*ast.StringNode); ok {
		return s.Value, nil
	}
	if _, ok := k.(ast.ScalarNode); ok && k.GetToken() != nil {
		return k.GetToken().Value, nil
	}
	return "", d.errorf(k, path, "keys must be plain field names")
}

func fieldNames(fields []Field) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}

// sequence decodes each element of a list; null is an empty list.
func (d *decoder) sequence(n ast.Node, path string, each DecodeFunc) error {
	n, err := d.unwrap(n, path)
	if err != nil {
		return err
	}
	switch s := n.(type) {
	case *ast.NullNode:
		return nil
	case *ast.SequenceNode:
		for i, v := range s.Values {
			p := fmt.Sprintf("%s[%d]", path, i)
			if _, null := v.(*ast.NullNode); null {
				return d.errorf(entryNode(s, i), p, "empty list entry")
			}
			d.record(p, v)
			if err := each(v, p); err != nil {
				return err
			}
		}
		return nil
	}
	return d.typeError(n, path, "a list")
}

// entryNode returns the "- " of a block list entry, else the entry itself.
func entryNode(s *ast.SequenceNode, i int) ast.Node {
	if len(s.Entries) == len(s.Values) && s.Entries[i] != nil {
		return s.Entries[i]
	}
	return s.Values[i]
}

// scalar returns the text of a scalar node: the value of a string, the
// source text of a number or boolean. ok is false for null.
func (d *decoder) scalar(n ast.Node, path, want string) (text string, ok bool, err error) {
	n, err = d.unwrap(n, path)
	if err != nil {
		return "", false, err
	}
	switch v := n.(type) {
	case *ast.NullNode:
		return "", false, nil
	case *ast.StringNode:
		return v.Value, true, nil
	case *ast.LiteralNode:
		if v.Value != nil {
			return v.Value.Value, true, nil
		}
		return "", true, nil
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		if tk := v.GetToken(); tk != nil {
			return tk.Value, true, nil
		}
	}
	return "", false, d.typeError(n, path, want)
}

// str decodes a string; null leaves dst as it is.
func (d *decoder) str(dst *string) DecodeFunc {
	return func(n ast.Node, path string) error {
		s, ok, err := d.scalar(n, path, "a string")
		if ok {
			*dst = s
		}
		return err
	}
}

// integer decodes an integer; null leaves dst as it is.
func (d *decoder) integer(dst *int) DecodeFunc {
	return func(n ast.Node, path string) error {
		n, err := d.unwrap(n, path)
		if err != nil {
			return err
		}
		switch v := n.(type) {
		case *ast.NullNode:
			return nil
		case *ast.IntegerNode:
			i, ok := intValue(v.Value)
			if !ok {
				return d.errorf(n, path, "integer %s is out of range", describe(n))
			}
			*dst = i
			return nil
		case *ast.StringNode:
			// The parser leaves plain integers too large for int64 as strings.
			if v.Token != nil && v.Token.Type == token.StringType && isDigits(strings.TrimPrefix(v.Value, "-")) {
				return d.errorf(n, path, "integer %s is out of range", v.Value)
			}
		}
		return d.typeError(n, path, "an integer")
	}
}

// intValue converts the value of an integer node to int.
func intValue(v any) (int, bool) {
	switch i := v.(type) {
	case int64:
		return int(i), int64(int(i)) == i
	case uint64:
		return int(i), i <= math.MaxInt
	}
	return 0, false
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// duration decodes a Go duration such as "1ms" or "60s".
func (d *decoder) duration(dst *time.Duration) DecodeFunc {
	return func(n ast.Node, path string) error {
		s, ok, err := d.scalar(n, path, "a duration such as 1ms or 60s")
		if !ok || err != nil {
			return err
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return d.errorf(n, path, "invalid duration %q: use a Go duration such as 800us, 1.5ms or 60s", s)
		}
		*dst = v
		return nil
	}
}

// bandwidth decodes a bandwidth such as "10Gbit" (see [ParseBandwidth]).
func (d *decoder) bandwidth(dst *int64) DecodeFunc {
	return func(n ast.Node, path string) error {
		s, ok, err := d.scalar(n, path, "a bandwidth such as 10Gbit")
		if !ok || err != nil {
			return err
		}
		v, problem := parseBandwidth(s)
		if problem != "" {
			return d.errorf(n, path, "%s", problem)
		}
		*dst = v
		return nil
	}
}

// topology decodes the top-level mapping.
func (d *decoder) topology(body ast.Node, t *Topology) error {
	d.record("", body)
	return d.mapping(body, "", []Field{
		{"name", d.str(&t.Name)},
		{"description", d.str(&t.Description)},
		{"ledger", d.ledger(&t.Ledger)},
		{"faults", d.faults(&t.Faults)},
		{"cities", d.cities(&t.Cities)},
		{"datacenters", d.datacenters(&t.Datacenters)},
		{"links", d.links(&t.Links)},
	})
}

func (d *decoder) ledger(l *Ledger) DecodeFunc {
	return func(n ast.Node, path string) error {
		return d.mapping(n, path, []Field{
			{"tick_ms", d.integer(&l.TickMS)},
			{"election_ms", d.integer(&l.ElectionMS)},
		})
	}
}

func (d *decoder) faults(f *FaultDefaults) DecodeFunc {
	return func(n ast.Node, path string) error {
		return d.mapping(n, path, []Field{
			{"default_duration", d.duration(&f.Duration)},
		})
	}
}

func (d *decoder) cities(dst *[]City) DecodeFunc {
	return func(n ast.Node, path string) error {
		return d.sequence(n, path, func(n ast.Node, path string) error {
			var c City
			err := d.mapping(n, path, []Field{
				{"name", d.str(&c.Name)},
				{"zh", d.str(&c.ZH)},
				{"en", d.str(&c.EN)},
			})
			*dst = append(*dst, c)
			return err
		})
	}
}

func (d *decoder) datacenters(dst *[]Datacenter) DecodeFunc {
	return func(n ast.Node, path string) error {
		return d.sequence(n, path, func(n ast.Node, path string) error {
			dc := Datacenter{UnitWeight: DefaultUnitWeight}
			err := d.mapping(n, path, []Field{
				{"id", d.str(&dc.ID)},
				{"city", d.str(&dc.City)},
				{"zh", d.str(&dc.ZH)},
				{"en", d.str(&dc.EN)},
				{"unit_weight", d.integer(&dc.UnitWeight)},
			})
			if dc.UnitWeight == 0 {
				dc.UnitWeight = DefaultUnitWeight
			}
			*dst = append(*dst, dc)
			return err
		})
	}
}

func (d *decoder) links(dst *[]Link) DecodeFunc {
	return func(n ast.Node, path string) error {
		return d.sequence(n, path, func(n ast.Node, path string) error {
			var l Link
			err := d.mapping(n, path, []Field{
				{"between", d.between(&l)},
				{"latency", d.duration(&l.Latency)},
				{"bandwidth", d.bandwidth(&l.BandwidthBits)},
			})
			*dst = append(*dst, l)
			return err
		})
	}
}

// between decodes the two ends of a link.
func (d *decoder) between(l *Link) DecodeFunc {
	return func(n ast.Node, path string) error {
		var ends []string
		err := d.sequence(n, path, func(n ast.Node, path string) error {
			var id string
			err := d.str(&id)(n, path)
			ends = append(ends, id)
			return err
		})
		if err != nil {
			return err
		}
		if len(ends) != 2 {
			return d.errorf(n, path, "must list exactly two datacenters, e.g. [hz-a, hz-b]; got %d", len(ends))
		}
		l.A, l.B = ends[0], ends[1]
		return nil
	}
}
