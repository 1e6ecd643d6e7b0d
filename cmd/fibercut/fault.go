package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fibercut/fibercut/drill"
	"github.com/fibercut/fibercut/faults"
	"github.com/fibercut/fibercut/lab"
)

// faultFlags are the flags every fault-applying command shares. The
// target flags are sugar over the fault grammar: --dc X is "dc X".
type faultFlags struct {
	name   string
	dur    time.Duration
	detach bool
	dc     string
	city   string
	link   string
	engine string // delay only
	bf     backendFlags
}

func (f *faultFlags) register(cmd *cobra.Command, target, link bool) {
	addLabNameFlag(cmd, &f.name)
	f.bf.add(cmd)
	cmd.Flags().DurationVar(&f.dur, "for", 0, "how long the fault lasts (default: the topology's fault duration; 0 = until healed)")
	cmd.Flags().BoolVar(&f.detach, "detach", false, "return at once and keep the fault after this command exits (it still ends on time)")
	if target {
		cmd.Flags().StringVar(&f.dc, "dc", "", "datacenter id (same as the words: dc ID)")
		cmd.Flags().StringVar(&f.city, "city", "", "city name (same as the words: city NAME)")
	}
	if link {
		cmd.Flags().StringVar(&f.link, "link", "", "the link, as A,B (same as the words: link A B)")
	}
}

// words returns the fault grammar's target words the flags stand for.
func (f *faultFlags) words() ([]string, error) {
	var w []string
	if f.dc != "" {
		w = append(w, "dc", f.dc)
	}
	if f.city != "" {
		w = append(w, "city", f.city)
	}
	if f.link != "" {
		a, b, ok := strings.Cut(f.link, ",")
		if !ok {
			return nil, fmt.Errorf("--link %q: write the two DCs as A,B, e.g. hz-a,sh-a", f.link)
		}
		w = append(w, "link", strings.TrimSpace(a), strings.TrimSpace(b))
	}
	return w, nil
}

const faultLong = `Faults act on a running lab from the host, inside each DC container's network
namespace (this needs root). Every fault ends on time, whoever applied it and
whatever is killed: cuts, isolations, partitions and loss are nftables set
elements with kernel timeouts; bandwidth, delay, power-off and pause get a
watchdog process, started before anything changes, that ends them on time.
Only a fault asked to last until healed (--for 0) outlives every process; 'fault
heal ID' or 'fault heal --all' ends it.

A fault command stays in the foreground until the fault ends, and Ctrl-C heals
it; --detach returns at once and keeps the fault (lab up and drill run leave it
alone). Faults are written in one grammar, the one scenario files use, e.g.
'fibercut fault isolate city hangzhou' or 'fibercut fault loss 30% link hz-a sh-a';
the flags (--dc, --city, --link) are shorthands for the same words. The target
'leader' is the DC that holds the ledger's leader when the fault is applied.`

func newFaultCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fault",
		Short: "Cut, isolate, partition or degrade the lab's links; power DCs off; heal",
		Long:  faultLong,
	}
	cmd.AddCommand(
		newFaultKindCmd(faults.KindCut, "cut A B", "Cut both directions of the link between two DCs", false, false),
		newFaultKindCmd(faults.KindIsolate, "isolate dc ID | city NAME | leader", "Cut every link from a DC or city to the rest of the lab and to users", true, false),
		newFaultPartitionCmd(),
		newFaultKindCmd(faults.KindLoss, "loss PCT link A B | dc ID | city NAME | leader", "Drop a share of packets at random on a link, or on all of a DC's traffic", true, true),
		newFaultKindCmd(faults.KindBandwidth, "bandwidth RATE dc ID | city NAME | leader", "Limit a DC's WAN egress to RATE (e.g. 10mbit) with tbf", true, false),
		newFaultDelayCmd(),
		newFaultKindCmd(faults.KindPowerOff, "power-off dc ID | city NAME | leader", "Kill the DCs' containers, as a power loss (data survives)", true, false),
		newFaultKindCmd(faults.KindPause, "pause dc ID | city NAME | leader", "Freeze the DCs' containers", true, false),
		newFaultUndoCmd(faults.KindPowerOff, "power-on", "Power DCs back on (heals power-off faults)"),
		newFaultUndoCmd(faults.KindPause, "resume", "Resume paused DCs (heals pause faults)"),
		newFaultListCmd(), newFaultHealCmd(),
	)
	return cmd
}

// newFaultKindCmd is a fault command whose words follow the fault grammar.
func newFaultKindCmd(kind faults.Kind, use, short string, target, link bool) *cobra.Command {
	var f faultFlags
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		RunE: func(cmd *cobra.Command, args []string) error {
			if kind == faults.KindLoss && len(args) > 0 && !strings.HasSuffix(args[0], "%") {
				args[0] += "%" // loss 30 means 30%
			}
			return runFault(cmd, &f, kind, args)
		},
	}
	f.register(cmd, target, link)
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
With --one-way (or the word one-way) only packets from an earlier group to a
later one are dropped ("A | B": A cannot reach B, B still reaches A). --ring (or
the word ring) is Jepsen's majorities ring: each DC reaches only its neighbours,
so each sees a different majority.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if ring {
				args = append(args, "ring")
			}
			if oneWay {
				args = append([]string{"one-way"}, args...)
			}
			return runFault(cmd, &f, faults.KindPartition, args)
		},
	}
	f.register(cmd, false, false)
	cmd.Flags().BoolVar(&oneWay, "one-way", false, "drop only packets from earlier groups to later ones")
	cmd.Flags().BoolVar(&ring, "ring", false, "majorities ring instead of groups")
	return cmd
}

func newFaultDelayCmd() *cobra.Command {
	var (
		f      faultFlags
		jitter string
	)
	cmd := &cobra.Command{
		Use:   "delay D [--jitter J] [--engine auto|netem|nfqueue] link A B | dc ID | city NAME | leader",
		Short: "Add latency to a DC's WAN traffic",
		Long: `Add latency (D, e.g. 50ms; a bare number is milliseconds) and jitter to every
packet a DC sends over the WAN (the DC's egress, as netem does; packets of one
connection keep their order). On a link, both directions are delayed, each at
its sender: the round trip grows by twice D (nfqueue only).

Two engines. netem: the kernel's netem qdisc (CONFIG_NET_SCH_NETEM), ended on
time by the fault's watchdog. nfqueue, for kernels without netem: nftables
rules send the DC's egress to a netfilter queue with bypass, and a holder
process of fibercut's gives each packet its verdict after the delay. The rules
expire in the kernel at the fault's end, and a killed holder un-delays the
link at once (bypass) instead of cutting it. auto (the default) takes netem
where the kernel has it, else nfqueue.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				args[0] = withMS(args[0])
				if jitter != "" {
					args[0] += "±" + withMS(jitter)
				}
			}
			return runFault(cmd, &f, faults.KindDelay, args)
		},
	}
	f.register(cmd, true, true)
	cmd.Flags().StringVar(&jitter, "jitter", "", "jitter, e.g. 10ms (a bare number is milliseconds)")
	cmd.Flags().StringVar(&f.engine, "engine", faults.EngineAuto, "auto, netem or nfqueue")
	return cmd
}

// withMS gives a bare number the unit ms.
func withMS(s string) string {
	if s != "" && strings.Trim(s, "0123456789") == "" {
		return s + "ms"
	}
	return s
}

// openInjector returns an injector for the named lab: on Docker, or with
// --backend kubernetes on the cluster, for pods whose network namespaces
// this host can enter (labs/kube/cluster's).
func openInjector(ctx context.Context, cmd *cobra.Command, name string, bf *backendFlags) (*faults.Injector, func(), error) {
	isKube, err := bf.kubernetes(cmd)
	if err != nil {
		return nil, nil, err
	}
	if isKube {
		c, err := bf.connect(name)
		if err != nil {
			return nil, nil, err
		}
		store, err := kubeStore(cmp.Or(name, lab.DefaultName))
		if err != nil {
			return nil, nil, err
		}
		via, err := bf.reach()
		if err != nil {
			return nil, nil, err
		}
		in, err := faults.NewKubeInjector(ctx, c, bf.kubeconfig, via, store)
		if err != nil {
			return nil, nil, err
		}
		return in, func() {}, nil
	}
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

// runFault parses the fault kind and words (with the flags' words), applies
// it and, unless --detach, stays until it ends, healing it early on Ctrl-C
// or SIGTERM.
func runFault(cmd *cobra.Command, f *faultFlags, kind faults.Kind, words []string) error {
	flagWords, err := f.words()
	if err != nil {
		return err
	}
	spec, err := faults.ParseSpec(strings.Join(slices.Concat([]string{string(kind)}, words, flagWords), " "))
	if err != nil {
		return err
	}
	spec.Engine = f.engine
	ctx := cmd.Context()
	in, done, err := openInjector(ctx, cmd, f.name, &f.bf)
	if err != nil {
		return err
	}
	defer done()
	spec.For = in.Lab().Topology.Faults.Duration
	if cmd.Flags().Changed("for") {
		spec.For = f.dur
	}
	if spec.Leader {
		dc, err := drill.LeaderDC(ctx, in.Lab())
		if err != nil {
			return err
		}
		spec.DC, spec.Leader = dc, false
	}
	in.Detached = f.detach
	rec, err := in.Apply(ctx, spec)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	took := rec.InForceAt.Sub(rec.AppliedAt)
	if rec.Until.IsZero() {
		fmt.Fprintf(out, "%s %s: in force until healed (applied in %s)\n", rec.ID, rec.Desc, ms(took))
	} else {
		fmt.Fprintf(out, "%s %s: in force for %s, until %s (applied in %s)\n", rec.ID, rec.Desc, spec.For, rec.Until.Format("15:04:05"), ms(took))
	}
	if f.detach {
		where := ""
		if f.bf.backend == backendKubernetes {
			where = " --backend kubernetes"
			if f.bf.kubeconfig != "" {
				where += " --kubeconfig " + f.bf.kubeconfig
			}
			if f.bf.via != string(faults.ViaAgent) {
				where += " --via " + f.bf.via
			}
		}
		fmt.Fprintf(out, "detached; heal early with `fibercut fault heal %s --name %s%s`\n", rec.ID, in.Lab().Name, where)
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

func newFaultUndoCmd(kind faults.Kind, use, short string) *cobra.Command {
	var f faultFlags
	cmd := &cobra.Command{
		Use:   use + " [--dc ID | --city NAME]",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, done, err := openInjector(cmd.Context(), cmd, f.name, &f.bf)
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
				if err := in.Heal(cmd.Context(), r.ID); err != nil && !errors.Is(err, faults.ErrNoFault) {
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
		bf     backendFlags
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the faults in force, where, who holds them, and the time left",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, done, err := openInjector(cmd.Context(), cmd, name, &bf)
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
	bf.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

type faultJSON struct {
	faults.Record
	Left   string `json:"left"`
	Holder string `json:"holder"`
}

// holder says who holds a fault: a live process, nobody (kept on purpose),
// or a dead process (a leftover that lab up and drill run heal).
func holder(r faults.Record) string {
	switch {
	case r.Owner == nil:
		return "kept"
	case r.Orphaned():
		return fmt.Sprintf("pid %d (dead)", r.Owner.PID)
	}
	return fmt.Sprintf("pid %d", r.Owner.PID)
}

func printFaults(w io.Writer, recs []faults.Record, now time.Time, asJSON bool) error {
	left := func(r faults.Record) string {
		switch {
		case r.Phase == faults.PhaseApplying && r.Orphaned():
			return "half applied by a dead process: run fault heal " + r.ID
		case r.Until.IsZero():
			return "until healed"
		case r.Over(now):
			return "overdue: its watchdog is ending it"
		}
		return r.Until.Sub(now).Round(100 * time.Millisecond).String()
	}
	if asJSON {
		out := make([]faultJSON, len(recs))
		for i, r := range recs {
			out[i] = faultJSON{r, left(r), holder(r)}
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
	fmt.Fprintln(tw, "ID\tFAULT\tWHERE\tHOLDER\tLEFT")
	for _, r := range recs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.Desc, strings.Join(r.DCs(), ","), holder(r), left(r))
	}
	return tw.Flush()
}

func newFaultHealCmd() *cobra.Command {
	var (
		name string
		all  bool
		bf   backendFlags
	)
	cmd := &cobra.Command{
		Use:   "heal [ID] [--all]",
		Short: "Heal one fault, or --all: everything fibercut may have left in the lab",
		Long: `Heal one fault by id, or with --all return the lab to health without relying
on any record: resume paused DCs, start stopped ones, delete the fibercut
nftables table and qdisc in every DC. --all works after a crash, and ends
faults other processes hold too.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) == 1) {
				return fmt.Errorf("heal: give a fault id (see `fibercut fault list`) or --all, not both")
			}
			in, done, err := openInjector(cmd.Context(), cmd, name, &bf)
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
	bf.add(cmd)
	cmd.Flags().BoolVar(&all, "all", false, "heal everything, with or without records")
	return cmd
}

func printHealReport(w io.Writer, rep faults.HealReport) {
	if rep.Empty() {
		fmt.Fprintln(w, "nothing to heal: no fault in force")
		return
	}
	for _, l := range rep.Lines() {
		fmt.Fprintln(w, l)
	}
}
