// Package faults cuts and degrades the links between the datacenters of a
// running lab, and powers DCs off and on.
//
// A fault is described by a [Spec] (cut, isolate, partition, loss, bandwidth,
// delay, power-off, pause) and applied by an [Injector], which returns a
// [Record]: what is in force, where, until when, and exactly what was changed
// so that it can be reverted, also by another process after a crash.
//
// # Mechanism
//
// Link faults are nftables rules in each DC container's own network
// namespace, entered from the host through /proc/<pid>/ns/net: fibercut owns
// one table, inet fibercut, per namespace and never touches any other (Docker's
// embedded DNS at 127.0.0.11 keeps working). The rules never change while a
// fault is in force; what changes are the elements of the table's sets, and
// those carry kernel timeouts, so a cut, partition, isolation or loss ends on
// time even if fibercut is killed. Only the WAN interface is filtered; the
// management network is never cut. Bandwidth limits are tbf qdiscs, delays
// netem qdiscs (where the kernel has sch_netem), and power-off and pause are
// Docker operations; those cannot expire in the kernel, so they are recorded
// in the lab's fault file ([Store]) and reverted by [Injector.Heal], by a
// reaper process, or by [Injector.HealAll], which needs no record at all.
//
// # Privileges
//
// Applying and healing link and qdisc faults needs root (CAP_SYS_ADMIN to
// enter the containers' network namespaces and CAP_NET_ADMIN in them); power
// and pause faults need access to the Docker engine.
//
// # Example
//
//	in := faults.NewInjector(cli, l, store)
//	rec, err := in.Apply(ctx, faults.Spec{Kind: faults.KindIsolate, City: "hangzhou", For: 30 * time.Second})
//	if err != nil {
//		return err
//	}
//	fmt.Println(rec.ID, rec.Desc, "until", rec.Until)
//	defer in.Heal(context.WithoutCancel(ctx), rec.ID)
package faults
