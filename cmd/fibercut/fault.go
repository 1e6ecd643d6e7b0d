package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fibercut/fibercut/faults"
	"github.com/fibercut/fibercut/topology"
)

// faultFlags are the flags every fault-applying command shares.
type faultFlags struct {
	name   string
	dur    time.Duration
	detach bool
	dc     string
	city   string
}

func (f *faultFlags) register(cmd *cobra.Command, target bool) {
	addLabNameFlag(cmd, &f.name)
	cmd.Flags().DurationVar(&f.dur, "for", 0, "how long the fault lasts (default: the topology's fault duration; 0 = until healed)")
	cmd.Flags().BoolVar(&f.detach, "detach", false, "return at once and leave the fault in force (it still ends on time)")
	if target {
		cmd.Flags().StringVar(&f.dc, "dc", "", "datacenter id")
		cmd.Flags().StringVar(&f.city, "city", "", "city name")
	}
}

func newFaultCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fault",
		Short: "Cut, isolate, partition or degrade the lab's links; power DCs off; heal",
		Long: `Faults act on a running lab from the host, inside each DC container's network
namespace (this needs root). Link faults are nftables set elements with kernel
timeouts, so they end on time even if fibercut is killed; qdisc, power and
pause faults are recorded and ended by a reaper process, 'fault heal --all',
'lab up' or 'lab down'.

By default a fault command stays in the foreground until the fault ends, and
Ctrl-C heals it; --detach returns at once.`,
	}
	cmd.AddCommand(
		newFaultCutCmd(), newFaultIsolateCmd(), newFaultPartitionCmd(), newFaultLossCmd(),
		newFaultBandwidthCmd(), newFaultDelayCmd(),
		newFaultDockerCmd(faults.KindPowerOff, "power-off", "Kill the DCs' containers, as a power loss (data survives)"),
		newFaultDockerCmd(faults.KindPause, "pause", "Freeze the DCs' containers"),
		newFaultUndoCmd(faults.KindPowerOff, "power-on", "Power DCs back on (heals power-off faults)"),
		newFaultUndoCmd(faults.KindPause, "resume", "Resume paused DCs (heals pause faults)"),
		newFaultListCmd(), newFaultHealCmd(), newFaultReapCmd(),
	)
	return cmd
}

func newFaultCutCmd() *cobra.Command {
	var f faultFlags
	cmd := &cobra.Command{
		Use:   "cut A B",
		Short: "Cut both directions of the link between two DCs",
		// Fewer than two DCs is reported by the spec's validation, which
		// lists the lab's valid DCs.
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			args = append(args, "", "")
			return runFault(cmd, &f, faults.Spec{Kind: faults.KindCut, A: args[0], B: args[1]})
		},
	}
	f.register(cmd, false)
	return cmd
}

func newFaultIsolateCmd() *cobra.Command {
	var f faultFlags
	cmd := &cobra.Command{
		Use:   "isolate --dc ID | --city NAME",
		Short: "Cut every link from a DC or city to the rest of the lab and to users",
		Long: `Cut every link from a DC, or from every DC of a city, to the rest of the lab.
Links inside the city stay up. Users outside (the entry layer, clients on the
host) cannot reach the isolated DCs either.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runFault(cmd, &f, faults.Spec{Kind: faults.KindIsolate, DC: f.dc, City: f.city})
		},
	}
	f.register(cmd, true)
	return cmd
}

func newFaultPartitionCmd() *cobra.Command {
	var (
		f      faultFlags
		oneWay bool
		ring   bool
	)
	cmd := &cobra.Command{
		Use:   `partition "A,B | C,D,E" | --ring`,
		Short: "Split the DCs into groups that cannot reach each other",
		Long: `Split the DCs into groups separated by '|'; every DC must be in exactly one.
With --one-way only packets from an earlier group to a later one are dropped
("A | B": A cannot reach B, B still reaches A). --ring is Jepsen's majorities
ring: each DC reaches only its neighbours, so each sees a different majority.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec := faults.Spec{Kind: faults.KindPartition, OneWay: oneWay, Ring: ring}
			if len(args) == 1 {
				groups, err := faults.ParseGroups(args[0])
				if err != nil {
					return err
				}
				spec.Groups = groups
			} else if !ring {
				return fmt.Errorf("partition: give groups, e.g. \"hz-a,hz-b | sh-a,sh-b,sz-a\", or --ring")
			}
			return runFault(cmd, &f, spec)
		},
	}
	f.register(cmd, false)
	cmd.Flags().BoolVar(&oneWay, "one-way", false, "drop only packets from earlier groups to later ones")
	cmd.Flags().BoolVar(&ring, "ring", false, "majorities ring instead of groups")
	return cmd
}

// linkFlag parses --link A,B.
func linkFlag(s string) (string, string, error) {
	if s == "" {
		return "", "", nil
	}
	a, b, ok := strings.Cut(s, ",")
	if !ok {
		return "", "", fmt.Errorf("--link %q: write the two DCs as A,B, e.g. hz-a,sh-a", s)
	}
	return strings.TrimSpace(a), strings.TrimSpace(b), nil
}

func newFaultLossCmd() *cobra.Command {
	var (
		f    faultFlags
		link string
	)
	cmd := &cobra.Command{
		Use:   "loss PCT --link A,B | --dc ID | --city NAME",
		Short: "Drop a share of packets at random on a link, or on all of a DC's traffic",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pct, err := strconv.Atoi(strings.TrimSuffix(args[0], "%"))
			if err != nil {
				return fmt.Errorf("loss %q: give a whole percent from 1 to 100, e.g. 30", args[0])
			}
			a, b, err := linkFlag(link)
			if err != nil {
				return err
			}
			return runFault(cmd, &f, faults.Spec{Kind: faults.KindLoss, Percent: pct, A: a, B: b, DC: f.dc, City: f.city})
		},
	}
	f.register(cmd, true)
	cmd.Flags().StringVar(&link, "link", "", "the link, as A,B")
	return cmd
}

func newFaultBandwidthCmd() *cobra.Command {
	var f faultFlags
	cmd := &cobra.Command{
		Use:   "bandwidth RATE --dc ID | --city NAME",
		Short: "Limit a DC's WAN egress to RATE (e.g. 10mbit) with tbf",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rate, err := topology.ParseBandwidth(args[0])
			if err != nil {
				return err
			}
			return runFault(cmd, &f, faults.Spec{Kind: faults.KindBandwidth, RateBits: rate, DC: f.dc, City: f.city})
		},
	}
	f.register(cmd, true)
	return cmd
}

func newFaultDelayCmd() *cobra.Command {
	var (
		f      faultFlags
		jitter int
		link   string
	)
	cmd := &cobra.Command{
		Use:   "delay MS [--jitter MS] --dc ID | --city NAME",
		Short: "Add latency to a DC's WAN traffic (needs the kernel's netem)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ms, err := strconv.Atoi(strings.TrimSuffix(args[0], "ms"))
			if err != nil || ms <= 0 {
				return fmt.Errorf("delay %q: give whole milliseconds, e.g. 50", args[0])
			}
			a, b, err := linkFlag(link)
			if err != nil {
				return err
			}
			return runFault(cmd, &f, faults.Spec{Kind: faults.KindDelay, Delay: time.Duration(ms) * time.Millisecond,
				Jitter: time.Duration(jitter) * time.Millisecond, A: a, B: b, DC: f.dc, City: f.city})
		},
	}
	f.register(cmd, true)
	cmd.Flags().IntVar(&jitter, "jitter", 0, "jitter in milliseconds")
	cmd.Flags().StringVar(&link, "link", "", "the link, as A,B")
	return cmd
}

func newFaultDockerCmd(kind faults.Kind, use, short string) *cobra.Command {
	var f faultFlags
	cmd := &cobra.Command{
		Use:   use + " --dc ID | --city NAME",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runFault(cmd, &f, faults.Spec{Kind: kind, DC: f.dc, City: f.city})
		},
	}
	f.register(cmd, true)
	return cmd
}

// openInjector connects to Docker and returns an injector for the named lab.
func openInjector(ctx context.Context, name string) (*faults.Injector, func(), error) {
	cli, l, err := connectLab(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	store, err := faults.OpenStore(l.Name)
	if err != nil {
		cli.Close()
		return nil, nil, err
	}
	return faults.NewInjector(cli, l, store), func() { cli.Close() }, nil
}

// runFault applies spec and, unless --detach, stays until it ends, healing
// it early on Ctrl-C or SIGTERM.
func runFault(cmd *cobra.Command, f *faultFlags, spec faults.Spec) error {
	ctx := cmd.Context()
	in, done, err := openInjector(ctx, f.name)
	if err != nil {
		return err
	}
	defer done()
	spec.For = in.Lab().Topology.Faults.Duration
	if cmd.Flags().Changed("for") {
		spec.For = f.dur
	}
	rec, err := in.Apply(ctx, spec)
	if err != nil {
		return err
	}
	// Start the reaper before anything else, so that a kill right after
	// the fault is announced cannot leave it in force past its time.
	var reapErr error
	if !rec.KernelExpires() && !rec.Until.IsZero() {
		reapErr = startReaper(in.Lab().Name, rec.ID)
	}
	out := cmd.OutOrStdout()
	took := rec.InForceAt.Sub(rec.AppliedAt)
	if rec.Until.IsZero() {
		fmt.Fprintf(out, "%s %s: in force until healed (applied in %s)\n", rec.ID, rec.Desc, ms(took))
	} else {
		fmt.Fprintf(out, "%s %s: in force for %s, until %s (applied in %s)\n", rec.ID, rec.Desc, spec.For, rec.Until.Format("15:04:05"), ms(took))
	}
	if reapErr != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v; if this process dies, the fault ends only with `fibercut fault heal %s`\n", reapErr, rec.ID)
	}
	if f.detach {
		fmt.Fprintf(out, "detached; heal early with `fibercut fault heal %s --name %s`\n", rec.ID, in.Lab().Name)
		return nil
	}
	fmt.Fprintln(out, "Ctrl-C heals it now")
	var timeout <-chan time.Time
	if !rec.Until.IsZero() {
		timeout = time.After(time.Until(rec.Until))
	}
	select {
	case <-ctx.Done():
	case <-timeout:
	}
	if err := in.Heal(context.WithoutCancel(ctx), rec.ID); err != nil && !errors.Is(err, faults.ErrNoFault) {
		return err
	}
	fmt.Fprintf(out, "%s healed\n", rec.ID)
	return nil
}

// startReaper starts a detached `fibercut fault reap` that ends the fault on
// time even if this process is killed.
func startReaper(labName, id string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("start reaper: %w", err)
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("start reaper: %w", err)
	}
	defer devnull.Close()
	c := exec.Command(exe, "fault", "reap", "--name", labName, "--id", id)
	c.Stdin, c.Stdout, c.Stderr = devnull, devnull, devnull
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		return fmt.Errorf("start reaper: %w", err)
	}
	return c.Process.Release()
}

func newFaultReapCmd() *cobra.Command {
	var name, id string
	cmd := &cobra.Command{
		Use:    "reap --id ID",
		Short:  "Wait until a fault's time is up and heal it (started by fault commands)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, done, err := openInjector(cmd.Context(), name)
			if err != nil {
				return err
			}
			defer done()
			recs, err := in.Live(time.Now())
			if err != nil {
				return err
			}
			for _, r := range recs {
				if r.ID != id || r.Until.IsZero() {
					continue
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(time.Until(r.Until)):
				}
				if err := in.Heal(cmd.Context(), id); err != nil && !errors.Is(err, faults.ErrNoFault) {
					return err
				}
			}
			return nil
		},
	}
	addLabNameFlag(cmd, &name)
	cmd.Flags().StringVar(&id, "id", "", "fault id")
	return cmd
}

func newFaultUndoCmd(kind faults.Kind, use, short string) *cobra.Command {
	var f faultFlags
	cmd := &cobra.Command{
		Use:   use + " [--dc ID | --city NAME]",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, done, err := openInjector(cmd.Context(), f.name)
			if err != nil {
				return err
			}
			defer done()
			recs, err := in.Live(time.Now())
			if err != nil {
				return err
			}
			t := in.Lab().Topology
			want := faults.Spec{Kind: kind, DC: f.dc, City: f.city}
			var healed []string
			for _, r := range recs {
				if r.Spec.Kind != kind {
					continue
				}
				if (f.dc != "" || f.city != "") && !overlaps(r.Spec.Targets(t), want.Targets(t)) {
					continue
				}
				if err := in.Heal(cmd.Context(), r.ID); err != nil {
					return err
				}
				healed = append(healed, r.ID)
			}
			if len(healed) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "no %s fault in force there\n", kind)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "healed %s\n", strings.Join(healed, ", "))
			return nil
		},
	}
	addLabNameFlag(cmd, &f.name)
	cmd.Flags().StringVar(&f.dc, "dc", "", "datacenter id")
	cmd.Flags().StringVar(&f.city, "city", "", "city name")
	return cmd
}

func overlaps(a, b []string) bool {
	return slices.ContainsFunc(a, func(x string) bool { return slices.Contains(b, x) })
}

func newFaultListCmd() *cobra.Command {
	var (
		name   string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the faults in force, where, and the time left",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, done, err := openInjector(cmd.Context(), name)
			if err != nil {
				return err
			}
			defer done()
			now := time.Now()
			recs, err := in.Live(now)
			if err != nil {
				return err
			}
			return printFaults(cmd.OutOrStdout(), recs, now, asJSON)
		},
	}
	addLabNameFlag(cmd, &name)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

type faultJSON struct {
	faults.Record
	Left string `json:"left"`
}

func printFaults(w io.Writer, recs []faults.Record, now time.Time, asJSON bool) error {
	left := func(r faults.Record) string {
		switch {
		case r.Until.IsZero():
			return "until healed"
		case r.Over(now):
			return "overdue: run fault heal"
		}
		return r.Until.Sub(now).Round(100 * time.Millisecond).String()
	}
	if asJSON {
		out := make([]faultJSON, len(recs))
		for i, r := range recs {
			out[i] = faultJSON{r, left(r)}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if len(recs) == 0 {
		fmt.Fprintln(w, "no fault in force")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tFAULT\tWHERE\tLEFT")
	for _, r := range recs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.ID, r.Desc, where(r), left(r))
	}
	return tw.Flush()
}

// where lists the DCs a record changed.
func where(r faults.Record) string {
	seen := map[string]bool{}
	var dcs []string
	add := func(dc string) {
		if !seen[dc] {
			seen[dc] = true
			dcs = append(dcs, dc)
		}
	}
	for _, ch := range r.NFT {
		add(ch.DC)
	}
	for _, l := range [][]string{r.Qdisc, r.Killed, r.Paused} {
		for _, dc := range l {
			add(dc)
		}
	}
	return strings.Join(dcs, ",")
}

func newFaultHealCmd() *cobra.Command {
	var (
		name string
		all  bool
	)
	cmd := &cobra.Command{
		Use:   "heal [ID] [--all]",
		Short: "Heal one fault, or --all: everything fibercut may have left in the lab",
		Long: `Heal one fault by id, or with --all return the lab to health without relying
on any record: resume paused DCs, start stopped ones, delete the fibercut
nftables table and qdisc in every DC. --all works after a crash.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) == 1) {
				return fmt.Errorf("heal: give a fault id (see `fibercut fault list`) or --all, not both")
			}
			in, done, err := openInjector(cmd.Context(), name)
			if err != nil {
				return err
			}
			defer done()
			out := cmd.OutOrStdout()
			if !all {
				if err := in.Heal(cmd.Context(), args[0]); err != nil {
					if errors.Is(err, faults.ErrNoFault) {
						fmt.Fprintf(out, "nothing to heal: %v\n", err)
						return nil
					}
					return err
				}
				fmt.Fprintf(out, "%s healed\n", args[0])
				return nil
			}
			rep, err := in.HealAll(cmd.Context())
			printHealReport(out, rep)
			return err
		},
	}
	addLabNameFlag(cmd, &name)
	cmd.Flags().BoolVar(&all, "all", false, "heal everything, with or without records")
	return cmd
}

func printHealReport(w io.Writer, rep faults.HealReport) {
	if rep.Empty() {
		fmt.Fprintln(w, "nothing to heal: no fault in force")
		return
	}
	for _, line := range []struct {
		what string
		dcs  []string
	}{{"resumed", rep.Resumed}, {"powered on", rep.PoweredOn}, {"removed nftables rules in", rep.Tables}, {"removed qdisc in", rep.Qdiscs}} {
		if len(line.dcs) > 0 {
			fmt.Fprintf(w, "%s %s\n", line.what, strings.Join(line.dcs, ", "))
		}
	}
	fmt.Fprintf(w, "healed; %d recorded faults forgotten\n", rep.Records)
}
