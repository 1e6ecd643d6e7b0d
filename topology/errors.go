package topology

import (
	"errors"
	"fmt"
)

// ErrNotFound is returned (wrapped) by [Builtin] and [Resolve] when no
// built-in topology or file has the given name.
var ErrNotFound = errors.New("topology: not found")

// Error is a problem in a topology file, with the position of the YAML node
// that caused it. Line and Column are 1-based; they are 0 when the topology
// was not read from a file (see [Topology.Validate]).
//
// The message names the offending field by its path (e.g.
// "datacenters[1].id") and says what is valid, so it is readable without the
// source at hand.
type Error struct {
	File         string
	Line, Column int
	Msg          string
}

// Error returns "file:line:column: message", or "topology: message" when
// there is no position.
func (e *Error) Error() string {
	if e.Line == 0 {
		return "topology: " + e.Msg
	}
	file := e.File
	if file == "" {
		file = "topology"
	}
	return fmt.Sprintf("%s:%d:%d: %s", file, e.Line, e.Column, e.Msg)
}
