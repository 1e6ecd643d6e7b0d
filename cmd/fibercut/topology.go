package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/fibercut/fibercut/topology"
)

func newTopologyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topology",
		Short: "Show, list and validate topologies (cities, datacenters, links)",
	}
	cmd.AddCommand(newTopologyShowCmd(), newTopologyListCmd(), newTopologyValidateCmd())
	return cmd
}

func newTopologyShowCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show [NAME|FILE]",
		Short: "Show a topology and which losses its ledger survives",
		Long: `Show a built-in topology by name, or the topology in a file; without an
argument, the default (` + topology.Default + `).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := topology.Resolve(firstArg(args))
			if err != nil {
				return err
			}
			if asJSON {
				return printTopologyJSON(cmd.OutOrStdout(), t)
			}
			printTopology(cmd.OutOrStdout(), t)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON: the topology, its source and the survival of each loss")
	return cmd
}

func newTopologyListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the built-in topologies",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			for _, name := range topology.BuiltinNames() {
				t, err := topology.Builtin(name)
				if err != nil {
					return err
				}
				if name == topology.Default {
					name += " (default)"
				}
				fmt.Fprintf(w, "%s\t%s\n", name, t.Description)
			}
			return w.Flush()
		},
	}
}

func newTopologyValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE",
		Short: "Check a topology file and report its first problem with file:line:column",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := topology.Load(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%s, %s, %s)\n", args[0],
				count(len(t.Cities), "city", "cities"),
				count(len(t.Datacenters), "datacenter", "datacenters"),
				count(len(t.Links), "link", "links"))
			for _, w := range t.Warnings() {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: warning: %s\n", args[0], w)
			}
			return nil
		},
	}
}

func firstArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// printTopology writes the human-readable form of t. Chinese names come last
// on their lines: tabwriter counts them as one column wide.
func printTopology(out io.Writer, t *topology.Topology) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "name:\t%s\n", t.Name)
	if t.Description != "" {
		fmt.Fprintf(w, "description:\t%s\n", t.Description)
	}
	fmt.Fprintf(w, "source:\t%s\n", t.Source)
	fmt.Fprintf(w, "ledger:\ttick %dms, election timeout %dms\n", t.Ledger.TickMS, t.Ledger.ElectionMS)
	fmt.Fprintf(w, "faults:\tdefault duration %s\n", topology.FormatDuration(t.Faults.Duration))
	w.Flush()

	fmt.Fprintf(out, "\ncities and datacenters:\n")
	w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, c := range t.Cities {
		fmt.Fprintf(w, "  %s\t\t%s\t%s\n", c.Name, c.EN, c.ZH)
		for _, dc := range t.DCsIn(c.Name) {
			fmt.Fprintf(w, "    %s\tunit weight %d\t%s\t%s\n", dc.ID, dc.UnitWeight, dc.EN, dc.ZH)
		}
	}
	w.Flush()

	if len(t.Links) > 0 {
		fmt.Fprintf(out, "\nlinks (one-way latency, bandwidth):\n")
		w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		for _, l := range t.Links {
			fmt.Fprintf(w, "  %s – %s\t%s\t%s\n", l.A, l.B, topology.FormatDuration(l.Latency), bandwidth(l.BandwidthBits))
		}
		w.Flush()
	}

	fmt.Fprintf(out, "\nsurvival (one ledger member per datacenter):\n")
	for _, loss := range t.Survival() {
		fmt.Fprintf(out, "  %s\n", loss)
	}
}

func bandwidth(bits int64) string {
	s := topology.FormatBandwidth(bits)
	if bits == 0 {
		return s
	}
	return s + "/s"
}

// topologyJSON is what "topology show --json" prints.
type topologyJSON struct {
	Source   string             `json:"source"`
	Topology *topology.Topology `json:"topology"`
	Survival []topology.Loss    `json:"survival"`
}

func printTopologyJSON(out io.Writer, t *topology.Topology) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(topologyJSON{Source: t.Source, Topology: t, Survival: t.Survival()})
}
