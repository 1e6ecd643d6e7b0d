package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docker/docker/client"
	"github.com/spf13/cobra"

	"github.com/fibercut/fibercut/demoapp"
	"github.com/fibercut/fibercut/faults"
	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/lab/kube"
	"github.com/fibercut/fibercut/topology"
)

// defaultLabName is the lab used when --name is not given: $FIBERCUT_LAB, or
// lab.DefaultName.
func defaultLabName() string {
	if n := os.Getenv("FIBERCUT_LAB"); n != "" {
		return n
	}
	return lab.DefaultName
}

func addLabNameFlag(cmd *cobra.Command, name *string) {
	cmd.Flags().StringVar(name, "name", defaultLabName(), "name of the lab (default from $FIBERCUT_LAB)")
}

// connectLab connects to the Docker engine and reads the named lab's
// inventory; the caller closes the client.
func connectLab(ctx context.Context, name string) (*client.Client, *lab.Lab, error) {
	cli, err := lab.Connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	l, err := lab.Inspect(ctx, cli, name)
	if err != nil {
		cli.Close()
		return nil, nil, err
	}
	return cli, l, nil
}

func newLabCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Bring a Docker lab of cities and datacenters up, inspect it, take it down",
	}
	cmd.AddCommand(newLabUpCmd(), newLabStatusCmd(), newLabDownCmd(), newLabListCmd(), newLabMatrixCmd(), newLabComposeCmd(), newLabManifestsCmd())
	return cmd
}

func newLabUpCmd() *cobra.Command {
	var (
		name, topo, binary string
		timings            bool
		timeout            time.Duration
		gatewayPort        int
		gatewayBind        string
		audienceMax        int
		clientLimits       string
		wanLatency         string
		bf                 backendFlags
		kf                 kubeFlags
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Create the lab (or complete it) and wait until every datacenter answers",
		Long: `Create the lab's node image (from fibercut's own static binary, never pulled),
its WAN and management networks, and one container per datacenter, then wait
until every datacenter answers its health check. Running it again on a lab that
is up changes nothing; after a half-finished run it completes the lab.

The WAN gets the topology's link latencies (1ms within a city, 5ms
Hangzhou–Shanghai, 15ms to Shenzhen, one way, in the built-in topology),
held by a process that stays with the lab; --wan-latency off runs it at
bridge speed (and takes the latency off a lab that has it). As root.

With --backend kubernetes it applies the lab's objects (see ` + "`lab manifests`" + `) to
the cluster --kubeconfig names, then waits up to --ready-timeout (default 5m
there; 0 does not wait) for every DC's pod and the gateway to be ready. It needs
the rights to create a namespace and, in it, Services, ConfigMaps, StatefulSets
and Deployments.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := topology.Resolve(topo)
			if err != nil {
				return err
			}
			isKube, err := bf.kubernetes(cmd, "binary", "timings", "gateway-port", "gateway-bind", "audience-max", "wan-latency")
			if err != nil {
				return err
			}
			if clientLimits != "" {
				lim, err := demoapp.ParseClientLimits(clientLimits)
				if err != nil {
					return fmt.Errorf("--client-limits: %w", err)
				}
				clientLimits = lim.String()
			}
			if isKube {
				kf.clientLimits = clientLimits
				o, _, err := kf.objects(cmp.Or(name, lab.DefaultName), t)
				if err != nil {
					return err
				}
				c, err := bf.connect(name)
				if err != nil {
					return err
				}
				if !cmd.Flags().Changed("ready-timeout") {
					timeout = 5 * time.Minute
				}
				return labUpKube(cmd.Context(), cmd.OutOrStdout(), c, o, timeout)
			}
			if err := refuseOn(cmd, backendDocker, kubeFlagNames); err != nil {
				return err
			}
			bind, err := parseBind(gatewayBind)
			if err != nil {
				return err
			}
			if err := checkWANFlag(wanLatency); err != nil {
				return err
			}
			if audienceMax < 0 {
				return fmt.Errorf("--audience-max %d: give a number of accounts, 1 or more (0 keeps the gateway's)", audienceMax)
			}
			cli, err := lab.Connect(cmd.Context())
			if err != nil {
				return err
			}
			defer cli.Close()
			// Heal what dead processes left (faults of live processes
			// and kept ones stay, and Up leaves the DCs they hold).
			store, err := faults.OpenStore(cmp.Or(name, lab.DefaultName))
			if err != nil {
				return err
			}
			rep, hold, err := faults.BeforeUp(cmd.Context(), cli, cmp.Or(name, lab.DefaultName), store)
			if err != nil {
				return fmt.Errorf("healing what dead processes left in the lab: %w", err)
			}
			var tm lab.Timings
			l, err := lab.Up(cmd.Context(), cli, lab.UpOptions{
				Name: name, Topology: t, Binary: binary, ReadyTimeout: timeout, Timings: &tm, GatewayPort: gatewayPort, Leave: hold,
				GatewayBind: bind, AudienceMax: audienceMax, ClientLimits: clientLimits,
			})
			if err != nil {
				return err
			}
			wan, err := faults.SetWAN(cmd.Context(), l, store, wanLatency)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if !rep.Empty() {
				fmt.Fprintln(out, "healed what a dead fibercut process left in the lab:")
				printHealReport(out, rep)
			}
			if len(rep.Held) > 0 {
				fmt.Fprintln(out, "faults in force, left alone (heal with `fibercut fault heal ID`):")
				printFaults(out, rep.Held, time.Now(), false)
			}
			fmt.Fprintf(out, "lab %q is up: %d datacenters in %d cities (topology %s)\n",
				l.Name, len(l.DCs), len(l.Topology.Cities), l.Topology.Name)
			printLabTable(out, l)
			fmt.Fprintln(out, wanLine(wan, l))
			if timings {
				fmt.Fprintf(out, "\ntimings: binary %s, image %s, networks %s, containers %s, ready %s, total %s\n",
					ms(tm.Binary), ms(tm.Image), ms(tm.Networks), ms(tm.Containers), ms(tm.Ready), ms(tm.Total))
			}
			return nil
		},
	}
	addLabNameFlag(cmd, &name)
	cmd.Flags().StringVar(&topo, "topology", topology.Default, "built-in topology name or topology file")
	cmd.Flags().StringVar(&binary, "binary", "", "static fibercut binary for the node image (default: this one, rebuilt statically if needed)")
	cmd.Flags().BoolVar(&timings, "timings", false, "report how long each phase took")
	cmd.Flags().DurationVar(&timeout, "ready-timeout", 60*time.Second, "how long to wait for every datacenter to answer")
	cmd.Flags().IntVar(&gatewayPort, "gateway-port", 0, "host port for the audience page and API (default: a free port)")
	cmd.Flags().StringVar(&gatewayBind, "gateway-bind", "", "host address to publish the gateway on, e.g. the venue network's, or 127.0.0.1 behind a tunnel (default: every address; an existing gateway keeps its own)")
	cmd.Flags().IntVar(&audienceMax, "audience-max", 0, "accounts the hall may open per drill (default 10,000; an existing gateway keeps its own)")
	cmd.Flags().StringVar(&wanLatency, "wan-latency", "on", "put the topology's link latencies on the WAN (on) or take them off (off)")
	cmd.Flags().StringVar(&clientLimits, "client-limits", "", `per-address rates of the audience API: "off", or opens=RATE/BURST,transfers=RATE/BURST (default opens=0.5/5,transfers=10/20; behind a tunnel the hall shares one address: raise them; an existing gateway keeps its own)`)
	bf.add(cmd)
	kf.add(cmd)
	return cmd
}

// parseBind reads --gateway-bind: "" or an IPv4 address of this host.
func parseBind(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Errorf("--gateway-bind %q: give an IPv4 address of this host, e.g. 192.168.1.20 or 127.0.0.1", s)
	}
	return a, nil
}

func newLabStatusCmd() *cobra.Command {
	var (
		name   string
		asJSON bool
		bf     backendFlags
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each datacenter: city, container, addresses, state, health",
		Long: `Show each datacenter of the lab: city, container, WAN and management
addresses, container state and health (probed over the management network,
which faults never touch). Exits 1 when a datacenter is not healthy.

With --backend kubernetes it shows each DC's StatefulSet and pod: replicas,
phase, readiness, node and address, and why a pod does not run where the
cluster says.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			isKube, err := bf.kubernetes(cmd, "json")
			if err != nil {
				return err
			}
			if isKube {
				c, err := bf.connect(name)
				if err != nil {
					return err
				}
				return labStatusKube(cmd.Context(), cmd.OutOrStdout(), c, name)
			}
			cli, l, err := connectLab(cmd.Context(), name)
			if err != nil {
				return err
			}
			defer cli.Close()
			l.CheckHealth(cmd.Context())
			var wan *faults.WAN
			if store, err := faults.OpenStore(l.Name); err == nil {
				wan, _ = faults.LoadWAN(store, l) // unreadable: said as off
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				js := statusJSON{Lab: l, Topology: l.Topology.Name, WANLatency: wanStatusJSON{On: wan.Held(), Recorded: wan != nil}}
				if wan != nil && wan.Holder != nil {
					js.WANLatency.Holder = wan.Holder.PID
				}
				if err := enc.Encode(js); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(out, "lab %q  topology %s  wan %s  mgmt %s\n", l.Name, l.Topology.Name, l.WAN.Subnet, l.Mgmt.Subnet)
				printLabTable(out, l)
				fmt.Fprintln(out, wanLine(wan, l))
			}
			var bad []string
			for _, d := range l.DCs {
				if d.Health != "ok" {
					bad = append(bad, d.ID)
				}
			}
			if l.Gateway == nil || l.Gateway.Health != "ok" {
				bad = append(bad, "gateway")
			}
			if len(bad) > 0 {
				return &exitError{code: 1, err: fmt.Errorf("lab %q: not healthy: %s", l.Name, strings.Join(bad, ", "))}
			}
			return nil
		},
	}
	addLabNameFlag(cmd, &name)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON (docker)")
	bf.add(cmd)
	return cmd
}

type statusJSON struct {
	*lab.Lab
	Topology   string        `json:"topology"`
	WANLatency wanStatusJSON `json:"wan_latency"`
}

// wanStatusJSON is the baseline WAN latency in `lab status --json`: on
// when its holder runs; recorded but not on when the holder is gone.
type wanStatusJSON struct {
	On       bool `json:"on"`
	Recorded bool `json:"recorded"`
	Holder   int  `json:"holder_pid,omitempty"`
}

func newLabDownCmd() *cobra.Command {
	var (
		name     string
		keepData bool
		bf       backendFlags
	)
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Remove exactly what `lab up` created (found by label; works after a crash)",
		Long: `Remove exactly what ` + "`lab up`" + ` created, found by the label fibercut.lab=NAME, so
it works after a crash and from another shell.

With --backend kubernetes it deletes the lab's namespace fibercut-NAME, if it
carries that label, and waits until the cluster has removed everything in it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			isKube, err := bf.kubernetes(cmd, "keep-data")
			if err != nil {
				return err
			}
			if isKube {
				c, err := bf.connect(name)
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Minute)
				defer cancel()
				return labDownKube(ctx, cmd.OutOrStdout(), c, name)
			}
			cli, err := lab.Connect(cmd.Context())
			if err != nil {
				return err
			}
			defer cli.Close()
			// The WAN holder first: it would follow the containers away.
			if store, err := faults.OpenStore(name); err == nil {
				if _, err := faults.StopWAN(cmd.Context(), store, nil); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "fibercut: %v (its holder ends by itself once the lab is gone)\n", err)
				}
			}
			r, err := lab.Down(cmd.Context(), cli, name, lab.DownOptions{KeepData: keepData})
			if err == nil {
				// The faults went with the containers; so do their records.
				if store, serr := faults.OpenStore(name); serr == nil {
					err = store.Remove()
				}
			}
			out := cmd.OutOrStdout()
			if r.Empty() && err == nil {
				fmt.Fprintf(out, "lab %q: nothing to remove\n", name)
				return nil
			}
			fmt.Fprintf(out, "lab %q: removed %d containers, %d networks, %d volumes\n",
				name, len(r.Containers), len(r.Networks), len(r.Volumes))
			if keepData {
				fmt.Fprintln(out, "data volumes kept; `fibercut lab up` finds them again")
			}
			return err
		},
	}
	addLabNameFlag(cmd, &name)
	cmd.Flags().BoolVar(&keepData, "keep-data", false, "keep the datacenters' data volumes (docker)")
	bf.add(cmd)
	return cmd
}

func newLabListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the labs on this Docker engine",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cli, err := lab.Connect(cmd.Context())
			if err != nil {
				return err
			}
			defer cli.Close()
			names, err := lab.List(cmd.Context(), cli)
			if err != nil {
				return err
			}
			for _, n := range names {
				fmt.Fprintln(cmd.OutOrStdout(), n)
			}
			return nil
		},
	}
}

func newLabMatrixCmd() *cobra.Command {
	var (
		name        string
		asJSON, rtt bool
		tries       int
		timeout     time.Duration
		bf          backendFlags
	)
	cmd := &cobra.Command{
		Use:   "matrix",
		Short: "Probe which datacenters reach which, from inside their network namespaces (root)",
		Long: `Probe the reachability of every datacenter over the lab's WAN: from inside
each running datacenter's network namespace to every other datacenter, and from
this host ("client", standing for users and the entry layer), by opening TCP
connections to port 7100. A completed handshake counts as reached.

A cell is ok when every try connected, cut when none did, lossy N/M when N of M
did, and down when the source datacenter is not running (not probed). The
matrix is information, not an expectation: it exits 0 whatever it shows.
Entering the namespaces needs root (CAP_SYS_ADMIN).

With --backend kubernetes it probes the lab's DC pods from their network
namespaces on this host (labs/kube/cluster's nodes), and from this host.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			isKube, err := bf.kubernetes(cmd)
			if err != nil {
				return err
			}
			var l *lab.Lab
			if isKube {
				c, err := bf.connect(name)
				if err != nil {
					return err
				}
				if l, err = c.Lab(cmd.Context(), kube.OnHost); err != nil {
					return err
				}
			} else {
				cli, dl, err := connectLab(cmd.Context(), name)
				if err != nil {
					return err
				}
				defer cli.Close()
				l = dl
			}
			m, err := l.Matrix(cmd.Context(), lab.MatrixOptions{Tries: tries, Timeout: timeout})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(m)
			}
			fmt.Fprintf(out, "lab %q: TCP connects to port %d over the WAN, %d tries of %s per probe\n\n",
				l.Name, lab.NodePort, m.Tries, m.Timeout)
			return m.Format(out, rtt)
		},
	}
	addLabNameFlag(cmd, &name)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	cmd.Flags().BoolVar(&rtt, "rtt", false, "show the median handshake round-trip time of each probe, and the topology's in parentheses")
	cmd.Flags().IntVar(&tries, "tries", lab.DefaultMatrixTries, "connects per probe, one after the other (1-100)")
	cmd.Flags().DurationVar(&timeout, "timeout", lab.DefaultMatrixTimeout, "timeout of each connect")
	bf.add(cmd)
	return cmd
}

func printLabTable(w io.Writer, l *lab.Lab) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CITY\tDC\tCONTAINER\tWAN IP\tMGMT IP\tSTATE\tHEALTH")
	for _, d := range l.DCs {
		state := d.State
		if faults.CatchingUp(d) {
			state += fmt.Sprintf(", catching up at CPU weight %d", d.CPUShares)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.City, d.ID, d.Container, addrOrDash(d.WANIP.String()), addrOrDash(d.MgmtIP.String()), state, d.Health)
	}
	if gw := l.Gateway; gw != nil {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", "-", "gateway", gw.Container, addrOrDash(gw.WANIP.String()), "-", gw.State, gw.Health)
	}
	tw.Flush()
	if gw := l.Gateway; gw != nil {
		fmt.Fprintf(w, "\naudience page and API: %s", gw.URL())
		if gw.HostPort != 0 {
			fmt.Fprintf(w, "  (from other machines: http://THIS-HOST:%d)", gw.HostPort)
		}
		fmt.Fprintln(w)
	}
}

// checkWANFlag reads --wan-latency: "on" or "off".
func checkWANFlag(v string) error {
	if v != "on" && v != "off" {
		return fmt.Errorf("--wan-latency %q: want on (the default: the topology's link latencies) or off (bridge speed)", v)
	}
	return nil
}

// wanLine says whether the lab's links carry the topology's latencies.
func wanLine(w *faults.WAN, l *lab.Lab) string {
	switch {
	case w.Held():
		return fmt.Sprintf("WAN latency: on, the topology's, one way: %s (held by process %d)", l.Topology.LatencySummary(), w.Holder.PID)
	case w != nil:
		return "WAN latency: OFF: its holder is gone, so the links run undelayed; `fibercut lab up` starts it again"
	}
	return "WAN latency: off (the links run at bridge speed; `fibercut lab up` puts the topology's latencies on)"
}

func addrOrDash(s string) string {
	if s == "invalid IP" {
		return "-"
	}
	return s
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }

func newLabComposeCmd() *cobra.Command {
	var (
		name, topo, wan, mgmt, out, binary string
		noBinary                           bool
	)
	cmd := &cobra.Command{
		Use:   "compose",
		Short: "Write the lab as a docker-compose file, for a lab anyone can start with docker-compose",
		Long: `Write a docker-compose file (format 2.4, for docker-compose 1.29) describing
the same lab ` + "`lab up`" + ` makes: the same containers, networks, volumes, labels,
addresses and environment, so that lab status, matrix, fault and load work on it.
Compose needs fixed subnets: choose two /24s no other network on the host uses.

With --out DIR it writes DIR/docker-compose.yml, DIR/Dockerfile (a scratch image
holding the binary) and DIR/fibercut, a static copy of this binary; then
` + "`docker-compose up -d --build`" + ` in DIR starts the lab and ` + "`docker-compose down -v`" + `
removes it. Without --out it prints the compose file.

` + "`lab up`" + ` and ` + "`drill run`" + ` on a compose lab replace its containers with
fibercut's own image: manage a compose lab with docker-compose.`,
		Example: `  fibercut lab compose --out labs/compose/three-city-five-dc
  cd labs/compose/three-city-five-dc && docker-compose up -d --build
  fibercut lab status --name compose`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := topology.Resolve(topo)
			if err != nil {
				return err
			}
			opts := lab.ComposeOptions{Name: name, Topology: t}
			for _, p := range []struct {
				flag, v string
				dst     *netip.Prefix
			}{{"--wan", wan, &opts.WAN}, {"--mgmt", mgmt, &opts.Mgmt}} {
				if *p.dst, err = netip.ParsePrefix(p.v); err != nil {
					return fmt.Errorf("%s %q: want an IPv4 subnet such as 10.208.0.0/24", p.flag, p.v)
				}
			}
			if out == "" {
				body, err := lab.Compose(opts)
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(body)
				return err
			}
			if !noBinary && binary == "" {
				if binary, err = lab.NodeBinary(cmd.Context()); err != nil {
					return err
				}
			}
			if noBinary {
				binary = ""
			}
			files, err := lab.WriteComposeDir(out, opts, binary)
			for _, f := range files {
				fmt.Fprintln(cmd.OutOrStdout(), "wrote", f)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "start it with: cd %s && docker-compose up -d --build\n", out)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "compose", "name of the lab")
	cmd.Flags().StringVar(&topo, "topology", topology.Default, "built-in topology name or topology file")
	cmd.Flags().StringVar(&wan, "wan", "10.208.0.0/24", "WAN subnet")
	cmd.Flags().StringVar(&mgmt, "mgmt", "10.208.1.0/24", "management subnet")
	cmd.Flags().StringVar(&out, "out", "", "directory to write the compose lab into (default: print the compose file)")
	cmd.Flags().StringVar(&binary, "binary", "", "static fibercut binary to copy into --out (default: this one, rebuilt statically if needed)")
	cmd.Flags().BoolVar(&noBinary, "no-binary", false, "do not copy a binary into --out")
	return cmd
}
