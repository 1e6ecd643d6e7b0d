package topology

import (
	"fmt"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// Decoder reads a YAML document node by node the way [Parse] reads a
// topology, for fibercut's other YAML formats (drill scenarios), so that they
// report problems the same way: every error is an [*Error] at the offending
// node, naming the field by its path ("steps[2].at") and saying what is
// valid. Anchors are followed; aliases, merge keys and tags are refused;
// unknown fields are errors that list the valid ones.
//
// A format is described as nested [Field] lists whose [DecodeFunc]s store
// values into Go variables they have captured:
//
//	d := topology.NewDecoder(file)
//	body, err := d.Document(data, "scenario", "a scenario needs at least a name and steps")
//	if err != nil {
//		return err
//	}
//	err = d.Mapping(body, "", []topology.Field{
//		{Name: "name", Decode: d.String(&s.Name)},
//		{Name: "warmup", Decode: d.Duration(&s.Warmup)},
//	})
//
// The decoder remembers where each field it decoded was written, so that
// problems found later, once the whole document is read, can still point at
// their node ([Decoder.ErrorAt]).
type Decoder struct {
	d decoder
}

// DecodeFunc decodes the node n, found at path (e.g. "steps[2].at"), into a
// destination it has captured.
type DecodeFunc func(n ast.Node, path string) error

// Field is a mapping key a format knows, and how to decode its value.
type Field struct {
	Name   string
	Decode DecodeFunc
}

// NewDecoder returns a decoder whose errors name file.
func NewDecoder(file string) *Decoder {
	return &Decoder{decoder{file: file, pos: make(map[string]position)}}
}

// Document parses data and returns the body of its only YAML document.
// format names the kind of file in messages ("scenario"), and empty says
// what a file must hold at least, for the message about an empty file.
func (d *Decoder) Document(data []byte, format, empty string) (ast.Node, error) {
	body, err := parseDocument(d.d.file, data, format, empty)
	if err != nil {
		return nil, err
	}
	d.d.record("", body)
	return body, nil
}

// Mapping decodes a mapping whose keys are among fields; null is an empty
// mapping. An unknown key is an error listing the fields.
func (d *Decoder) Mapping(n ast.Node, path string, fields []Field) error {
	return d.d.mapping(n, path, fields)
}

// Sequence calls each for every element of a list, at paths "path[i]";
// null is an empty list and an empty entry is an error.
func (d *Decoder) Sequence(n ast.Node, path string, each DecodeFunc) error {
	return d.d.sequence(n, path, each)
}

// Unwrap returns the value of n, following anchors; aliases and tags are
// errors. Use it in a DecodeFunc that switches on the node's type.
func (d *Decoder) Unwrap(n ast.Node, path string) (ast.Node, error) {
	return d.d.unwrap(n, path)
}

// Scalar returns the text of a scalar node: the value of a string, the
// source text of a number or boolean. ok is false for null; any other node
// is an error saying that the field must be want ("a string").
func (d *Decoder) Scalar(n ast.Node, path, want string) (text string, ok bool, err error) {
	return d.d.scalar(n, path, want)
}

// String decodes a string; null leaves dst as it is.
func (d *Decoder) String(dst *string) DecodeFunc { return d.d.str(dst) }

// Int decodes an integer; a quoted number is an error, and null leaves dst
// as it is.
func (d *Decoder) Int(dst *int) DecodeFunc { return d.d.integer(dst) }

// Duration decodes a Go duration such as "1ms" or "60s"; null leaves dst as
// it is.
func (d *Decoder) Duration(dst *time.Duration) DecodeFunc { return d.d.duration(dst) }

// Errorf returns an error at node n (or, when n has no position, at the
// nearest field recorded on path), its message prefixed with path.
func (d *Decoder) Errorf(n ast.Node, path, format string, args ...any) *Error {
	return d.d.errorf(n, path, format, args...)
}

// TypeError returns an error saying that the field at path must be want
// ("a number") and what n is instead.
func (d *Decoder) TypeError(n ast.Node, path, want string) *Error {
	return d.d.typeError(n, path, want)
}

// ErrorAt returns an error, its message prefixed with path, at the node
// decoded for path or, when there was none (a field left out), at the
// nearest enclosing one. It is for problems found after decoding.
func (d *Decoder) ErrorAt(path, format string, args ...any) *Error {
	return d.d.first([]problem{{path: path, msg: fmt.Sprintf(format, args...)}})
}

// Position returns where the node decoded for exactly path starts; ok is
// false when the document has no such field.
func (d *Decoder) Position(path string) (line, col int, ok bool) {
	return d.d.locate(path)
}
