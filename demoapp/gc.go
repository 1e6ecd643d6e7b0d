package demoapp

import (
	"os"
	"runtime/debug"
)

// The collector's settings for a lab process (a node or the gateway),
// unless the environment sets its own GOGC or GOMEMLIMIT.
//
// A lab runs six Go processes on the host's cores, and openings and
// transfers are CPU-bound: with Go's default (GOGC=100) the same lab
// opened 1,761–2,054 accounts/s and moved 1,631–2,066 transfers/s, with
// 400 2,024–2,572 and 2,258–2,551 (docs/benchmarks.md). A larger GOGC
// trades memory for that CPU; the soft limit keeps a process whose live
// heap has grown (a long drill's index) from growing five-fold with it:
// past the limit the collector runs as often as it must.
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
