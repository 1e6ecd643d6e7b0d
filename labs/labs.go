// Package labs holds fibercut's data: built-in topologies (and later scenarios and compose labs). It needs no privileges.
package labs

import "embed"

// Topologies holds the built-in topologies as topologies/NAME.yaml; read
// them with topology.Builtin.
//
//go:embed topologies/*.yaml
var Topologies embed.FS
