// Package topology models the datacenters a drill runs on: cities (failure
// domains), the datacenters (DCs) in them, the links (fibers) between DCs with
// their baseline latency and bandwidth, the ledger's consensus timing and
// fault defaults. It reads topologies from YAML with precise errors, writes
// them back, and embeds the built-in ones from [labs.Topologies]. Its
// [Decoder] reads fibercut's other YAML formats (drill scenarios) the same
// way, with the same errors.
//
// It needs no privileges: it only reads files and memory.
//
// # Format
//
//	name: three-city-five-dc              # required: 1–63 of a-z, 0-9, '-'
//	description: three cities, five DCs   # optional, one line
//	ledger: {tick_ms: 50, election_ms: 500}   # defaults; 5 × tick ≤ election ≤ 50000
//	faults: {default_duration: 60s}           # default
//	cities:
//	  - {name: hangzhou, zh: 杭州, en: Hangzhou}
//	datacenters:
//	  - {id: hz-a, city: hangzhou, zh: 杭州 A 机房, en: Hangzhou DC A, unit_weight: 1}
//	links:
//	  - {between: [hz-a, hz-b], latency: 1ms, bandwidth: 10Gbit}
//
// City names and DC ids become container hostnames: 1–20 lowercase letters,
// digits and '-', starting with a letter and not ending with '-'. Latency is
// a Go duration (one way); bandwidth is in bits per second with an optional
// unit bit, kbit, Mbit or Gbit (see [ParseBandwidth]); unit_weight defaults
// to 1. Anchors are allowed; aliases, merge keys and tags are not.
//
// # Errors
//
// A file is rejected with one [*Error] that gives the file, line and column
// of the offending node and a message naming the field and what is valid:
//
//	lab.yaml:14:9: datacenters[2].id: duplicate datacenter id "hz-a" (first at line 12, column 9)
//
// # Example
//
//	t, err := topology.Resolve("") // the default, three-city-five-dc
//	if err != nil {
//		return err
//	}
//	for _, loss := range t.Survival() {
//		fmt.Println(loss) // lose hangzhou: 3 of 5 remain, majority kept
//	}
package topology
