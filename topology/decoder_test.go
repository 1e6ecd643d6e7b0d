package topology

import (
	"errors"
	"testing"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// TestDecoder reads a small format of its own with the exported Decoder.
func TestDecoder(t *testing.T) {
	var (
		name  string
		every time.Duration
		times []int
	)
	read := func(data string) error {
		times = nil
		d := NewDecoder("x.yaml")
		body, err := d.Document([]byte(data), "thing", "a thing needs a name")
		if err != nil {
			return err
		}
		err = d.Mapping(body, "", []Field{
			{Name: "name", Decode: d.String(&name)},
			{Name: "every", Decode: d.Duration(&every)},
			{Name: "times", Decode: func(n ast.Node, path string) error {
				return d.Sequence(n, path, func(n ast.Node, path string) error {
					var i int
					err := d.Int(&i)(n, path)
					times = append(times, i)
					return err
				})
			}},
		})
		if err != nil {
			return err
		}
		if line, col, ok := d.Position("times[1]"); !ok || line != 3 || col != 12 {
			t.Errorf("Position(times[1]) = %d, %d, %v; want 3, 12", line, col, ok)
		}
		if len(times) > 1 && times[1] < 0 {
			return d.ErrorAt("times[1]", "must not be negative, got %d", times[1])
		}
		return d.ErrorAt("count", "missing")
	}
	tests := []struct{ data, want string }{
		{"", "x.yaml:1:1: empty file: a thing needs a name"},
		{"name: a\n---\nname: b\n", "x.yaml:3:1: a thing file holds one YAML document, found a second one"},
		{"name: a\ncount: 1\n", `x.yaml:2:1: unknown field "count" (valid fields: name, every, times)`},
		{"name: a\nevery: 1s\ntimes: [1, -2]\n", "x.yaml:3:12: times[1]: must not be negative, got -2"},
		{"name: a\nevery: 1s\ntimes: [1, 2]\n", "x.yaml:1:1: count: missing"},
	}
	for _, tt := range tests {
		err := read(tt.data)
		var e *Error
		if !errors.As(err, &e) || err.Error() != tt.want {
			t.Errorf("%q: %v, want %s", tt.data, err, tt.want)
		}
	}
	if name != "a" || every != time.Second {
		t.Errorf("name, every = %q, %s", name, every)
	}
}
