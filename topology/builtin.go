package topology

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/fibercut/fibercut/labs"
)

// Default is the name of the topology used when none is given: Alipay's
// three cities, five datacenters.
const Default = "three-city-five-dc"

// builtinDir is where the built-in topologies live in [labs.Topologies].
const builtinDir = "topologies"

// BuiltinNames returns the names of the built-in topologies, sorted.
func BuiltinNames() []string {
	entries, err := fs.ReadDir(labs.Topologies, builtinDir)
	if err != nil {
		return nil // cannot happen: the directory is embedded
	}
	var names []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".yaml"); ok {
			names = append(names, name)
		}
	}
	return names
}

// Builtin returns the built-in topology with the given name; its Source is
// "builtin:NAME". An unknown name gives an error wrapping [ErrNotFound] that
// lists the built-in names.
func Builtin(name string) (*Topology, error) {
	if !slices.Contains(BuiltinNames(), name) {
		return nil, fmt.Errorf("%w: no built-in topology %q (built-ins: %s)",
			ErrNotFound, name, strings.Join(BuiltinNames(), ", "))
	}
	data, err := fs.ReadFile(labs.Topologies, builtinDir+"/"+name+".yaml")
	if err != nil {
		return nil, fmt.Errorf("topology: read built-in %q: %w", name, err)
	}
	return Parse("builtin:"+name, data)
}

// Resolve returns the built-in topology named nameOrFile, else the topology
// in the file at that path; "" means [Default]. When there is neither, the
// error wraps [ErrNotFound] and lists the built-in names.
func Resolve(nameOrFile string) (*Topology, error) {
	if nameOrFile == "" {
		nameOrFile = Default
	}
	if slices.Contains(BuiltinNames(), nameOrFile) {
		return Builtin(nameOrFile)
	}
	if _, err := os.Stat(nameOrFile); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %q is neither a built-in topology (%s) nor a file",
			ErrNotFound, nameOrFile, strings.Join(BuiltinNames(), ", "))
	}
	return Load(nameOrFile)
}
