// Package labs holds fibercut's data: the built-in topologies and game-day
// scenarios, embedded; and, as files only, the compose labs under compose/,
// which `fibercut lab compose` writes. It needs no privileges.
package labs

import "embed"

// Topologies holds the built-in topologies as topologies/NAME.yaml; read
// them with topology.Builtin.
//
//go:embed topologies/*.yaml
var Topologies embed.FS

// Scenarios holds the built-in game-day scenarios as scenarios/NAME.yaml;
// read them with drill.BuiltinScenario, which also checks them against
// their topology.
//
//go:embed scenarios/*.yaml
var Scenarios embed.FS
