package demoapp

import (
	"os"
	"runtime/debug"
)

// The collector's settings for a lab process (a node or the gateway),
// unless the environment sets its own GOGC or GOMEMLIMIT.
//
// A lab runs six Go processes on the host's cores; with Go's default
// (GOGC=100) the collector was a sixth of the CPU of a hall joining at
// once, and opens and transfers are CPU-bound (docs/benchmarks.md: 2,000
// openings in 1.10–1.27 s with the default, 0.95–1.06 s with 400). A
// larger GOGC trades memory for that CPU; the soft limit keeps a process
// whose live heap has grown (a long drill's index) from growing five-fold
// with it: past the limit the collector runs as often as it must.
const (
	labGCPercent   = 400
	labMemoryLimit = 1 << 30
)

// TuneGC applies the lab's collector settings to this process, leaving
// any the environment set (GOGC, GOMEMLIMIT) as they are. `fibercut node`
// and `fibercut gateway` call it; tests that run nodes in-process do not.
func TuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(labGCPercent)
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(labMemoryLimit)
	}
}
