// Package faults cuts and degrades the links between the datacenters of a
// running lab, and powers DCs off and on, and makes sure every fault ends
// on time, whoever applied it and whatever was killed.
//
// A fault is a [Spec], read from one grammar by [ParseSpec] ("isolate city
// hangzhou", "loss 30% link hz-a sh-a", ...) for the fault commands and
// scenario files alike, and written back by [Spec.String]. Each kind (cut,
// isolate, partition, loss, bandwidth, delay, power-off, pause) is one type
// in a file of its own, listed in one registry: how it parses and prints,
// validates against a topology, what it changes, and which DCs it cuts off.
// An [Injector] applies a fault and returns a [Record]: what is in force,
// where, until when, who holds it, and exactly what was changed, so that it
// can be reverted, also by another process after a crash.
//
// # Mechanism
//
// Link faults are nftables rules in each DC container's own network
// namespace, entered from the host through /proc/<pid>/ns/net: fibercut owns
// one table, inet fibercut, per namespace and never touches any other (Docker's
// embedded DNS at 127.0.0.11 keeps working). Every fault has sets and rules of
// its own ("f7_drop_in", rules commented "fibercut f7"), so two faults on the
// same link are independent: each ends at its own time, and healing or rolling
// back one never touches the other. Set elements carry kernel timeouts, so a
// cut, partition, isolation or loss ends on time even if fibercut is killed.
// Only the WAN interface is filtered; the management network is never cut.
// Bandwidth limits are tbf qdiscs; delays are netem qdiscs where the kernel
// has sch_netem, else rules that queue the DC's egress (NFQUEUE, with
// bypass) to the fault's holder, a detached process that releases each
// packet after the delay (holder.go, on package nfqueue); power-off and
// pause are engine operations ([Backend]).
//
// # The failsafe
//
// [Injector.Apply] holds the lab's lock (shared by every fibercut process),
// writes the fault's record before anything changes, arms a watchdog for
// what the kernel cannot expire (a detached process: the calling program
// itself, started again; see watchdog.go), makes the change, then confirms
// the record. A SIGKILL at any moment leaves nothing in force past its time
// but the faults asked to last until healed (For 0). Ids come from a sequence
// that survives labs, and a watchdog acts only on the fault, and the
// incarnation of the lab, it was armed for. [Injector.HealLeftovers] heals
// what dead processes left behind and reports the faults live processes
// hold; [Injector.HealAll] heals everything, with or without records.
//
// # Catching up
//
// Healing a fault that cut DCs off lowers their CPU weight (cgroup
// cpu.shares, through the engine) while their ledger members replay what
// they missed, so that on one machine the replay does not take the cores
// from the DCs that kept serving. A keeper process restores each DC's
// weight once its node says its ledger is current, and all of them after
// 20 s at most; a dead keeper's weights are restored by HealLeftovers
// (catchup.go).
//
// # The baseline WAN latency
//
// [StartWAN] puts the topology's link latencies on the lab's WAN for its
// whole life: a chain "wan" of the same table queues the packets each DC
// receives from each other DC (NFQUEUE, with bypass) to a queue of that
// link's latency, and one detached holder releases them when the latency
// has passed. It holds packets where they arrive (held at their sender,
// they would starve TCP's small-queues budget), after the cuts (which drop
// first); the delay faults add to it. It follows DCs that restart, ends
// with the lab, and fails open if killed; [StopWAN] takes it off (wan.go).
//
// # Privileges
//
// Applying and healing link and qdisc faults, and the baseline WAN
// latency, need root (CAP_SYS_ADMIN to
// enter the containers' network namespaces and CAP_NET_ADMIN in them); power
// and pause faults, and the CPU weight of DCs catching up, need access to
// the Docker engine.
//
// # Example
//
//	in := faults.NewInjector(cli, l, store)
//	spec, err := faults.ParseSpec("isolate city hangzhou")
//	if err != nil {
//		return err
//	}
//	spec.For = 30 * time.Second
//	rec, err := in.Apply(ctx, spec)
//	if err != nil {
//		return err
//	}
//	fmt.Println(rec.ID, rec.Desc, "until", rec.Until)
//	defer in.Heal(context.WithoutCancel(ctx), rec.ID)
package faults
