// Package drill runs game-day scenarios end to end: it brings the lab up,
// runs the load (virtual users making transfers), applies the scenario's
// faults on schedule, heals everything, lets the ledger members converge,
// verifies the final state against every client operation (money
// conserved, nothing acknowledged lost, nothing applied twice or invented),
// measures the recovery time and writes the report.
//
// Running a drill needs what the lab and the faults need: access to the
// Docker daemon, and root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to enter the
// containers' network namespaces. Reading and checking scenarios
// ([ParseScenario], [ResolveScenario], [Scenario.Timeline]) needs no
// privileges.
//
// # Scenarios
//
// A scenario is a YAML file:
//
//	name: atec-2018                      # required: 1–63 of a-z, 0-9, '-'
//	description: Cut both Hangzhou DCs for 30 s under load.   # one line
//	topology: three-city-five-dc         # built-in name or a path relative to this file (default three-city-five-dc)
//	load: {users: 64, rate: 400}         # virtual users; transfers/s, all together (defaults)
//	warmup: 10s                          # load before the first step: the baseline for RTO (default 10s, at least 1s)
//	steps:
//	  - {name: cut-hangzhou, at: 0s, fault: isolate city hangzhou, for: 30s}
//	  - {name: flap, at: 40s, fault: cut hz-a sh-a, for: 2s, repeat: {every: 4s, times: 6}}
//	  - {at: 50s, heal: flap}            # ends the flapping early
//	settle: 20s                          # load after the last fault ends (default 10s)
//	expect:                              # what must hold; durations are not scaled by --time-scale
//	  rto_max: 5s                        # headline recovery time
//	  first_success_max: 2s              # first committed transfer after the fault
//	  outage_max: 5s                     # longest stop, over every fault: no commit, or one user waiting
//	  lost_max: 0                        # acknowledged transfers missing at the end (RPO; default 0)
//	  unavailable_allowed: false         # true when the majority is lost: writes may stop
//	  recover_after_heal_max: 10s        # service back within this after the last heal
//	abort:                               # stop early, heal, verify and report (both default true)
//	  money_not_conserved: true          # a live check finds the balances do not add up
//	  step_fails: true                   # a step cannot be applied
//
// Every step has an at: when it starts, counted from the end of the
// warmup; steps are listed in time order, and several may start at the
// same moment. A step either applies a fault or heals:
//
//   - fault: a fault in the words of the fault commands (see [faults.ParseSpec]),
//     with for: how long it lasts (default: the topology's fault duration,
//     60 s for the built-ins). Faults always end on their own.
//   - repeat: {every: D, times: N} applies the fault N times in all, each
//     application starting D after the previous one; D is longer than for,
//     so that the fault is lifted in between (a flapping link).
//   - heal: all ends every fault in force; heal: NAME ends the fault step
//     called NAME (give it a name:) and cancels its remaining repetitions.
//     A heal that ends nothing is an error.
//
// The grammar of faults:
//
//	cut A B                              both directions of the link A–B
//	isolate dc ID | city NAME | leader   every link out of a DC or city, and users
//	partition A,B | C,D,E                groups that cannot reach each other; every DC in one group
//	partition one-way A | B,C,D,E        only A → B,C,D,E is dropped
//	partition ring                       each DC reaches only its neighbours
//	loss 30% link A B | dc ID | city NAME | leader
//	bandwidth 10mbit dc ID | city NAME | leader
//	delay 50ms[±10ms] link A B | dc ID | city NAME | leader   (or: delay 50ms jitter 10ms ...)
//	power-off dc ID | city NAME | leader containers killed, as a power loss
//	pause dc ID | city NAME | leader     containers frozen
//
// leader is the DC holding the ledger's leader when the step starts. In a
// flow mapping ({at: ..., fault: ...}) quote a partition whose groups use
// commas, or separate the DCs of a group with spaces instead.
//
// A drill lasts [Scenario.Duration]: warmup, then the steps until the
// last fault ends, then settle. [Scenario.Scale] shortens (or lengthens)
// the timing for quick runs in CI without touching the expectations.
//
// # Errors
//
// A scenario is checked against its topology when it is read, and
// rejected with one [*ScenarioError] giving the file, line and column of
// the offending node (for a fault, of the offending word) and what is
// valid:
//
//	game.yaml:6:20: steps[0].fault: unknown target "region" after isolate (valid: dc ID, city NAME or leader)
//	game.yaml:9:11: steps[1].heal: unknown step "cut-hangzou" (all, or a fault step: cut-hangzhou)
//
// # Example
//
//	sc, err := drill.ResolveScenario("atec-2018") // a built-in, or a file
//	if err != nil {
//		return err
//	}
//	for _, f := range sc.Scale(0.25).Timeline() {
//		fmt.Printf("+%s %s for %s\n", f.At, f.Desc, f.For)
//	}
package drill
