package main

import (
	tea "charm.land/bubbletea/v2"
	"cmp"
	"context"
	"errors"
	"fmt"
	"github.com/docker/docker/client"
	"github.com/fibercut/fibercut/tui"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fibercut/fibercut/drill"
	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/lab/kube"
	"github.com/fibercut/fibercut/topology"
	"github.com/fibercut/fibercut/verify"
)

func newDrillCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "drill",
		Short: "Run a game-day scenario end to end: load, faults, recovery time, zero-loss proof, report",
	}
	cmd.AddCommand(newDrillRunCmd(), newDrillListCmd(), newDrillShowCmd(), newDrillCompareCmd())
	return cmd
}

// drillFlags are the flags of drill run and drill compare.
type drillFlags struct {
	name      string
	out       string
	timeScale float64
	binary    string
	healFirst bool
	tui       bool
	wan       string
	// drill run only: where the lab runs.
	bf     backendFlags
	kf     kubeFlags
	isKube bool
}

func (f *drillFlags) register(cmd *cobra.Command) {
	addLabNameFlag(cmd, &f.name)
	cmd.Flags().StringVar(&f.out, "out", "", "report directory (default ./fibercut-report/<time>-<scenario>)")
	cmd.Flags().Float64Var(&f.timeScale, "time-scale", 1, "multiply every duration of the scenario (e.g. 0.25 for a quick run); expectations are not scaled")
	cmd.Flags().StringVar(&f.binary, "binary", "", "static fibercut binary for the node image (default: this one, rebuilt statically if needed)")
	cmd.Flags().StringVar(&f.wan, "wan-latency", "on", "run with the topology's link latencies on the WAN (on), or at bridge speed (off)")
	cmd.Flags().BoolVar(&f.healFirst, "heal-first", false, "heal every fault in force before the drill, also those other processes hold or that were kept")
}

func newDrillRunCmd() *cobra.Command {
	var (
		f    drillFlags
		topo string
	)
	cmd := &cobra.Command{
		Use:   "run SCENARIO|FILE",
		Short: "Run a scenario and report; exit 0 if every expectation held, 1 if not, 2 on a tool error",
		Long: `Bring the lab up if needed, clear its ledger, run the scenario's load and
steps, heal everything, wait for the ledger members to converge, check the
final state against every client operation (money conserved, nothing
acknowledged lost, nothing applied twice or invented, all members agree),
measure the recovery time and write the report (report.json, report.md,
report.html, timeline.png, history.jsonl, state.json).

Exit status: 0 if every expectation held, 1 if one did not, 2 on a tool error.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sc, err := drill.ResolveScenario(args[0])
			if err != nil {
				return err
			}
			var t *topology.Topology
			if topo != "" {
				if t, err = topology.Resolve(topo); err != nil {
					return err
				}
			}
			if f.isKube, err = f.bf.kubernetes(cmd, "binary", "tui"); err != nil {
				return err
			}
			if !f.isKube {
				if err := refuseOn(cmd, backendDocker, kubeFlagNames); err != nil {
					return err
				}
			}
			out, err := runDrill(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), sc, t, f, f.out)
			if out == nil {
				return err
			}
			return drillExit(out, err)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&topo, "topology", "", "run on this topology instead of the scenario's (built-in name or file)")
	cmd.Flags().BoolVar(&f.tui, "tui", false, "draw the drill in the stage dashboard (when stdout is a terminal; q leaves it)")
	f.bf.add(cmd)
	f.kf.add(cmd)
	return cmd
}

// drillExit turns a finished drill into the exit status: 1 when an
// expectation did not hold (an abort for lost money counts), else 2 for an
// error, else 0.
func drillExit(out *drill.Outcome, err error) error {
	if !out.Report.Passed {
		msg := "expectations did not hold"
		if err != nil {
			msg += ": " + err.Error()
		}
		return &exitError{code: 1, err: errors.New(msg)}
	}
	return err
}

// runDrill runs one scenario, printing progress to stderr and the summary
// to stdout.
func runDrill(ctx context.Context, stdout, stderr io.Writer, sc *drill.Scenario, t *topology.Topology, f drillFlags, dir string) (*drill.Outcome, error) {
	if err := checkWANFlag(f.wan); err != nil {
		return nil, err
	}
	if f.isKube {
		return runDrillKube(ctx, stdout, stderr, sc, t, f, dir)
	}
	cli, err := lab.Connect(ctx)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	fmt.Fprintf(stdout, "drill %s: %s\n", sc.Name, sc.Description)
	opts := drill.Options{
		Lab: f.name, Topology: t, Out: dir, TimeScale: f.timeScale, Binary: f.binary, HealFirst: f.healFirst, WANLatency: f.wan,
		Events: func(e drill.Event) { printEvent(stderr, e) },
	}
	var out *drill.Outcome
	if f.tui && isTerminal(stdout) {
		out, err = runDrillTUI(ctx, cli, sc, opts)
	} else {
		out, err = drill.Run(ctx, cli, sc, opts)
	}
	return printOutcome(stdout, out, err)
}

// printOutcome prints a finished drill's summary and where its report is.
func printOutcome(stdout io.Writer, out *drill.Outcome, err error) (*drill.Outcome, error) {
	if out == nil {
		return nil, err
	}
	fmt.Fprintln(stdout)
	fmt.Fprintln(stdout, out.Report.Summary())
	fmt.Fprintf(stdout, "report: %s/report.html (also report.md, report.json, timeline.png)\n", out.Dir)
	return out, err
}

// runDrillKube runs one scenario on a lab on Kubernetes, from this host.
func runDrillKube(ctx context.Context, stdout, stderr io.Writer, sc *drill.Scenario, t *topology.Topology, f drillFlags, dir string) (*drill.Outcome, error) {
	opts, err := kubeDrillOptions(sc, t, f.name, &f.bf, &f.kf)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stdout, "drill %s: %s\n", sc.Name, sc.Description)
	opts.Out, opts.TimeScale, opts.HealFirst, opts.WANLatency = dir, f.timeScale, f.healFirst, f.wan
	opts.Events = func(e drill.Event) { printEvent(stderr, e) }
	out, err := drill.Run(ctx, nil, sc, opts)
	return printOutcome(stdout, out, err)
}

// kubeDrillOptions are the options of a drill (or a stage) of scenario sc
// on the topology t (the scenario's when nil) of lab name on Kubernetes,
// run from this host: where the lab is, its objects, and where its faults
// are recorded.
func kubeDrillOptions(sc *drill.Scenario, t *topology.Topology, name string, bf *backendFlags, kf *kubeFlags) (drill.Options, error) {
	if t == nil {
		var err error
		if t, err = sc.ResolveTopology(); err != nil {
			return drill.Options{}, err
		}
	}
	name = cmp.Or(name, lab.DefaultName)
	_, kopts, err := kf.objects(name, t)
	if err != nil {
		return drill.Options{}, err
	}
	via, err := bf.reach()
	if err != nil {
		return drill.Options{}, err
	}
	c, cfg, err := bf.connectConfig(name)
	if err != nil {
		return drill.Options{}, err
	}
	// The load and the record reader run here: the gateway must know
	// them from the hall.
	if kopts.Trusted, err = kube.LocalAddr(cfg); err != nil {
		return drill.Options{}, err
	}
	store, err := kubeStore(name)
	if err != nil {
		return drill.Options{}, err
	}
	return drill.Options{Lab: name, Topology: t, Store: store,
		Env: &drill.KubeEnv{Cluster: c, Options: kopts, Kubeconfig: bf.kubeconfig, Via: via}}, nil
}

func printEvent(w io.Writer, e drill.Event) {
	at := fmt.Sprintf("t+%5.1fs/%.0fs", e.At.Seconds(), e.Total.Seconds())
	if e.Kind == drill.EventMoney && (e.Money.OK || !e.Money.Readable) {
		// News only: a check that holds is not, and no quorum
		// answering during a fault is expected.
		return
	}
	if e.Kind != drill.EventProgress {
		fmt.Fprintf(w, "%s  %s\n", at, e.Message)
		return
	}
	fmt.Fprintf(w, "%s  %-34s %7.0f transfers/s   ok %d  fail %d  unknown %d\n", at, e.Step, e.OKPerSec, e.OK, e.Fail, e.Unknown)
}

func newDrillListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the built-in scenarios",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			for _, name := range drill.BuiltinScenarios() {
				sc, err := drill.BuiltinScenario(name)
				if err != nil {
					return err
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", name, sc.Duration().Round(time.Second), sc.Description)
			}
			return tw.Flush()
		},
	}
}

func newDrillShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show SCENARIO|FILE",
		Short: "Show a scenario's plan: load, faults over time, expectations",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sc, err := drill.ResolveScenario(args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%s: %s\nsource: %s\ntopology: %s\nload: %d users, %.0f transfers/s; warmup %s, settle %s; %s in all\n\n",
				sc.Name, sc.Description, sc.Source, sc.Topology, sc.Load.Users, sc.Load.Rate, sc.Warmup, sc.Settle, sc.Duration())
			fmt.Fprintln(w, "steps (times from the end of the warmup):")
			for _, p := range sc.Timeline() {
				fmt.Fprintf(w, "  at %-6s %s for %s\n", p.At, p.Desc, p.For)
			}
			fmt.Fprintln(w, "\nexpectations (not scaled by --time-scale):")
			for _, l := range sc.Expect.Lines() {
				fmt.Fprintln(w, "  "+l)
			}
			return nil
		},
	}
}

func newDrillCompareCmd() *cobra.Command {
	var (
		f     drillFlags
		topos []string
	)
	cmd := &cobra.Command{
		Use:   "compare SCENARIO --topology A --topology B",
		Short: "Run a scenario on several topologies and show them side by side",
		Long: `Run the scenario once per topology, each on a lab of its own (NAME-1, NAME-2,
...), and print RTO, lost, unknown and seconds unavailable side by side; the
reports are in subdirectories of --out.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(topos) < 2 {
				return fmt.Errorf("compare: give at least two --topology, e.g. --topology three-city-five-dc --topology two-city-three-dc")
			}
			sc, err := drill.ResolveScenario(args[0])
			if err != nil {
				return err
			}
			base := f.out
			if base == "" {
				base = "fibercut-report/" + time.Now().Format("20060102-150405") + "-compare-" + sc.Name
			}
			var reports []verify.Report
			passed := true
			for i, name := range topos {
				t, err := topology.Resolve(name)
				if err != nil {
					return err
				}
				g := f
				g.name = fmt.Sprintf("%s-%d", strings.TrimSuffix(f.name, "-"), i+1)
				out, err := runDrill(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), sc, t, g, base+"/"+t.Name)
				if out == nil {
					return err
				}
				reports = append(reports, out.Report)
				passed = passed && out.Report.Passed
				// Each lab is removed once measured: two labs side by side
				// would share the two cores and skew the second.
				if cli, err := lab.Connect(cmd.Context()); err == nil {
					lab.Down(cmd.Context(), cli, g.name, lab.DownOptions{})
					cli.Close()
				}
			}
			printComparison(cmd.OutOrStdout(), reports)
			if !passed {
				return &exitError{code: 1, err: errors.New("expectations did not hold on every topology")}
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringArrayVar(&topos, "topology", nil, "topology to run on (repeat)")
	return cmd
}

// printComparison prints the main numbers of drills of one scenario on
// several topologies, one column each.
func printComparison(w io.Writer, reps []verify.Report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "\n")
	row := func(name string, f func(verify.Report) string) {
		fmt.Fprint(tw, name)
		for _, r := range reps {
			fmt.Fprint(tw, "\t"+f(r))
		}
		fmt.Fprintln(tw)
	}
	row("", func(r verify.Report) string { return r.Topology })
	main := func(r verify.Report) (verify.FaultRTO, bool) { return r.RTO.Main() }
	row("RTO", func(r verify.Report) string {
		m, ok := main(r)
		switch {
		case !ok:
			return "-"
		case !m.Outage.Recovered:
			return "not recovered"
		case m.Outage.AfterHeal:
			return fmt.Sprintf("%.2f s (after heal)", m.Outage.RTO.Seconds())
		}
		return fmt.Sprintf("%.2f s", m.Outage.RTO.Seconds())
	})
	row("seconds unavailable", func(r verify.Report) string {
		m, ok := main(r)
		if !ok {
			return "-"
		}
		return fmt.Sprintf("%.2f s", m.Outage.LongestGap.Len().Seconds())
	})
	row("lost", func(r verify.Report) string { return fmt.Sprint(r.Check.Lost) })
	row("unknown (applied / not)", func(r verify.Report) string {
		return fmt.Sprintf("%d / %d", r.Check.UnknownApplied, r.Check.UnknownNotFound)
	})
	row("passed", func(r verify.Report) string { return fmt.Sprint(r.Passed) })
	tw.Flush()
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// runDrillTUI runs the drill by its schedule, drawn in the stage
// dashboard; logs go to a file meanwhile. Leaving the dashboard (q) before
// the end stops the drill, which still heals and reports.
func runDrillTUI(ctx context.Context, cli client.APIClient, sc *drill.Scenario, opts drill.Options) (*drill.Outcome, error) {
	logFile, err := os.CreateTemp("", "fibercut-drill-*.log")
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(logFile, nil)))
	defer slog.SetDefault(prev)
	t := opts.Topology
	if t == nil {
		if t, err = sc.ResolveTopology(); err != nil {
			return nil, err
		}
	}
	sb := tui.NewScoreboard(50)
	opts.Events, opts.OnOp = sb.Event, sb.AddOp
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		out *drill.Outcome
		err error
	}
	done := make(chan result, 1)
	m := tui.New(tui.Options{Topology: t, Scoreboard: sb, Lang: tui.EN, Title: sc.Name, Dashboard: true, ReportDir: opts.Out,
		AmbiguousWide: tui.AmbiguousWideFromEnv()})
	p := tea.NewProgram(m, tea.WithContext(ctx))
	go func() {
		out, err := drill.Run(ctx, cli, sc, opts)
		done <- result{out, err}
		if out == nil {
			p.Quit() // no verdict to show: leave the screen and say why
		}
	}()
	if _, err := p.Run(); err != nil && ctx.Err() == nil {
		cancel()
		<-done
		return nil, err
	}
	cancel()
	r := <-done
	return r.out, r.err
}
