package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/fibercut/fibercut/demoapp"
	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/topology"
)

func newGatewayCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "gateway",
		Short: "Run the entry layer (inside the lab's gateway container; started by `lab up`)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := topology.Parse(lab.EnvTopology, []byte(os.Getenv(lab.EnvTopology)))
			if err != nil {
				return err
			}
			peers, err := demoapp.ParsePeers(os.Getenv(lab.EnvPeers), t)
			if err != nil {
				return err
			}
			return demoapp.RunGateway(cmd.Context(), demoapp.GatewayConfig{
				Lab: os.Getenv(lab.EnvLab), Version: buildVersion(), Topology: t, Peers: peers,
			})
		},
	}
}
