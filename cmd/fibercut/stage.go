package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/docker/docker/client"
	"github.com/spf13/cobra"

	"github.com/fibercut/fibercut/drill"
	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/nodeapi"
	"github.com/fibercut/fibercut/topology"
	"github.com/fibercut/fibercut/tui"
)

func newStageCmd() *cobra.Command {
	var (
		name, audienceURL, lang, replay, out, binary, wan string
		maxFor                                            time.Duration
		speed                                             float64
		noLoad, wide                                      bool
		bf                                                backendFlags
		kf                                                kubeFlags
	)
	cmd := &cobra.Command{
		Use:   "stage [SCENARIO] [--no-load] | --replay DIR",
		Short: "The live conference dashboard: a QR code for the hall, a map, a cut on one key, the verdict",
		Long: `Bring the lab up (or use it), clear the ledger, start the scenario's background
load (default atec-2018's: 64 virtual users at 400/s) unless --no-load, show the
join screen with the audience's QR code, then the dashboard. The hall's transfers
(recorded by the gateway) are checked with the load's, and counted apart; with
--no-load they are all there is, and no recovery time is measured. Keys: space dashboard · c cut the
scenario's first fault (3-2-1; esc cancels) · h heal all · 1-9 isolate the n-th
DC · l isolate the leader's DC · f QR code · z presenter mode · L 中文/English ·
enter finish: heal, converge, verify, verdict · q or ctrl+c heal, then quit ·
? help. Bounded by --max.

With --replay DIR, a report directory of an earlier drill (history.jsonl,
report.json) is played back through the same screens: to rehearse, no lab
needed.

With --backend kubernetes the lab is on the cluster --kubeconfig names, run
from this host as ` + "`drill run --backend kubernetes`" + ` is (labs/kube/cluster's). The
QR code then gives the gateway pod's address, which only this host and the
cluster reach: give the hall's with --audience-url (a NodePort or
LoadBalancer Service: --gateway-service).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, ok := tui.ParseLang(lang)
			if !ok {
				return fmt.Errorf("--lang %q: give zh or en", lang)
			}
			if replay != "" {
				if len(args) > 0 {
					return fmt.Errorf("stage --replay plays a report directory; it takes no scenario (got %q)", args[0])
				}
				return runReplay(cmd.Context(), replay, speed, l, wide)
			}
			scenario := "atec-2018"
			if len(args) == 1 {
				scenario = args[0]
			}
			if err := checkWANFlag(wan); err != nil {
				return err
			}
			isKube, err := bf.kubernetes(cmd, "binary")
			if err != nil {
				return err
			}
			if !isKube {
				if err := refuseOn(cmd, backendDocker, kubeFlagNames); err != nil {
					return err
				}
			}
			f := stageFlags{name: name, scenario: scenario, audienceURL: audienceURL,
				lang: l, out: out, binary: binary, max: maxFor, noLoad: noLoad, wide: wide, wan: wan}
			if isKube {
				f.bf, f.kf = &bf, &kf
			}
			return runStage(cmd.Context(), cmd.OutOrStdout(), f)
		},
	}
	addLabNameFlag(cmd, &name)
	cmd.Flags().StringVar(&audienceURL, "audience-url", "", "the URL the QR code gives the hall (default: this host's address and the gateway's published port)")
	cmd.Flags().StringVar(&lang, "lang", "zh", "language of the screens: zh or en (L switches)")
	cmd.Flags().DurationVar(&maxFor, "max", 30*time.Minute, "the longest the stage runs (and its load)")
	cmd.Flags().BoolVar(&noLoad, "no-load", false, "run no background load: only the hall's transfers")
	cmd.Flags().StringVar(&wan, "wan-latency", "on", "put the topology's link latencies on the WAN (on), or run at bridge speed (off)")
	cmd.Flags().BoolVar(&wide, "ambiguous-wide", tui.AmbiguousWideFromEnv(), "the terminal draws box drawing and symbols two columns wide (CJK fonts and locales): draw them in ASCII (default: RUNEWIDTH_EASTASIAN=1)")
	cmd.Flags().StringVar(&replay, "replay", "", "play back a report directory instead of running a lab")
	cmd.Flags().Float64Var(&speed, "speed", 4, "with --replay: how many times faster than the drill ran")
	cmd.Flags().StringVar(&out, "out", "", "report directory (default ./fibercut-report/<time>-<scenario>)")
	cmd.Flags().StringVar(&binary, "binary", "", "static fibercut binary for the node image (default: this one, rebuilt statically if needed)")
	bf.add(cmd)
	kf.add(cmd)
	return cmd
}

type stageFlags struct {
	name, scenario, audienceURL, out, binary string
	lang                                     tui.Lang
	max                                      time.Duration
	noLoad, wide                             bool
	wan                                      string
	// bf and kf, when set, put the lab on Kubernetes.
	bf *backendFlags
	kf *kubeFlags
}

// runReplay plays a report directory through the dashboard.
func runReplay(ctx context.Context, dir string, speed float64, lang tui.Lang, wide bool) error {
	sb := tui.NewScoreboard(50)
	r, err := tui.LoadReplay(dir, speed, sb)
	if err != nil {
		return err
	}
	t, err := topology.Builtin(cmp.Or(r.Report().Topology, topology.Default))
	if err != nil {
		return fmt.Errorf("stage --replay: the report's topology %q is not a built-in one: %w", r.Report().Topology, err)
	}
	m := tui.New(tui.Options{Topology: t, Scoreboard: sb, Replay: r, Lang: lang, Dashboard: true, AmbiguousWide: wide,
		Title: "replay · " + cmp.Or(r.Report().Scenario, dir), ReportDir: dir})
	_, err = tea.NewProgram(m, tea.WithContext(ctx)).Run()
	return err
}

// runStage runs a drill session driven by the dashboard's keys.
func runStage(ctx context.Context, stdout io.Writer, f stageFlags) error {
	sc, err := drill.ResolveScenario(f.scenario)
	if err != nil {
		return err
	}
	dir := cmp.Or(f.out, filepath.Join("fibercut-report", time.Now().Format("20060102-150405")+"-stage-"+sc.Name))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// The dashboard owns the terminal: logs go to a file.
	logFile, err := os.Create(filepath.Join(dir, "stage.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	slog.SetDefault(slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo})))
	ctx, cancel := context.WithTimeout(ctx, f.max)
	defer cancel()
	opts := drill.Options{Lab: f.name, Binary: f.binary}
	var cli client.APIClient // none on Kubernetes
	if f.bf != nil {
		if opts, err = kubeDrillOptions(sc, nil, f.name, f.bf, f.kf); err != nil {
			return err
		}
	} else {
		if cli, err = lab.Connect(ctx); err != nil {
			return err
		}
		defer cli.Close()
	}
	what := "starting the load"
	if f.noLoad {
		what = "no load (--no-load)"
	}
	fmt.Fprintf(stdout, "stage %s: bringing the lab up, clearing the ledger, %s…\n", sc.Name, what)
	sb := tui.NewScoreboard(50)
	opts.Out, opts.LoadFor, opts.NoLoad, opts.WANLatency, opts.Events, opts.OnOp = dir, f.max, f.noLoad, f.wan, sb.Event, sb.AddOp
	s, err := drill.Start(ctx, cli, sc, opts)
	if err != nil {
		return err
	}
	ctrl := &tui.SessionController{Session: s}
	// Whatever ends the stage (q, ctrl+c, --max, a crash of the screen),
	// the session's faults are healed and the load stopped.
	defer s.Stop(context.WithoutCancel(ctx))
	url, note := f.audienceURL, "--audience-url"
	if url == "" {
		url, note = defaultAudienceURL(s.Lab(), f.bf != nil)
	}
	m := tui.New(tui.Options{Topology: s.Lab().Topology, Scoreboard: sb, Controller: ctrl, Roles: ctrl.Roles, Audience: ctrl.Audience, Lang: f.lang, Title: sc.Name, AmbiguousWide: f.wide,
		AudienceURL: url, AudienceNote: note, ReportDir: dir})
	if _, err := tea.NewProgram(m, tea.WithContext(ctx)).Run(); err != nil && ctx.Err() == nil {
		return err
	}
	if out := ctrl.Outcome(); out != nil {
		fmt.Fprintln(stdout, out.Report.Summary())
		fmt.Fprintf(stdout, "report: %s/report.html\n", out.Dir)
	} else {
		fmt.Fprintf(stdout, "stage ended without a verdict (enter gives one); log in %s\n", logFile.Name())
	}
	return nil
}

// defaultAudienceURL is the host's first non-loopback IPv4 address outside
// Docker's bridges, and the gateway's published port, and says so. On
// Kubernetes (onKube), where nothing is published on this host, it is the
// gateway pod's address.
func defaultAudienceURL(l *lab.Lab, onKube bool) (string, string) {
	if g := l.Gateway; onKube && g != nil && g.WANIP.IsValid() {
		return "http://" + net.JoinHostPort(g.WANIP.String(), strconv.Itoa(nodeapi.GatewayPort)) + "/",
			"the gateway pod's address, not reachable by the hall: set --audience-url" // fits 80 columns
	}
	port := 0
	if l.Gateway != nil {
		port = l.Gateway.HostPort
	}
	host := "127.0.0.1"
	if ifs, err := net.Interfaces(); err == nil {
	find:
		for _, ifc := range ifs {
			if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 || len(ifc.Name) >= 2 && (ifc.Name[:2] == "br" || ifc.Name[:2] == "ve" || ifc.Name[:2] == "do") {
				continue
			}
			addrs, _ := ifc.Addrs()
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
					host = ipn.IP.String()
					break find
				}
			}
		}
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(port)) + "/", "this host's address and the gateway's published port; set --audience-url for the venue's"
}
