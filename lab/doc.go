// Package lab realises a [topology.Topology] on a Docker engine: one image made
// from fibercut's own static binary (imported, never pulled), a WAN network the
// faults act on, a management network they never touch, and one container per
// datacenter running `fibercut node`.
//
// Everything a lab creates carries the label fibercut.lab=NAME, and lab only
// ever finds, changes or removes objects that carry it, so [Down] works after
// a crash and from another shell, and two labs with different names run side
// by side.
//
// [Compose] writes the same lab as a docker-compose file, for those who would
// rather start it with docker-compose; writing it needs no privilege.
//
// # Privileges
//
// lab needs access to the Docker engine's API socket (root, or membership of
// the docker group). It needs no other privilege; the containers it starts get
// CAP_NET_ADMIN so that a node can apply faults to itself where the host cannot
// enter its network namespace.
//
// Probing the reachability matrix ([Lab.Matrix]) is the exception: it dials
// from inside each DC's network namespace, entered through /proc/PID/ns/net,
// and that needs root (CAP_SYS_ADMIN).
//
// # Example
//
//	cli, err := lab.Connect(ctx)
//	if err != nil {
//		return err
//	}
//	topo, _ := topology.Builtin(topology.Default)
//	l, err := lab.Up(ctx, cli, lab.UpOptions{Name: "demo", Topology: topo})
//	if err != nil {
//		return err
//	}
//	for _, dc := range l.DCs {
//		fmt.Println(dc.ID, dc.WANIP, dc.Health)
//	}
//	m, err := l.Matrix(ctx, lab.MatrixOptions{}) // as root
//	if err != nil {
//		return err
//	}
//	m.Format(os.Stdout, false)
//	_, err = lab.Down(ctx, cli, "demo", lab.DownOptions{})
package lab
