package main

import (
	"github.com/spf13/cobra"

	"github.com/fibercut/fibercut/demoapp"
)

func newNodeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "node",
		Short: "Run a datacenter node (inside a lab container; started by `lab up`)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := demoapp.NodeConfigFromEnv()
			if err != nil {
				return err
			}
			cfg.Version = buildVersion()
			demoapp.TuneGC()
			return demoapp.RunNode(cmd.Context(), cfg)
		},
	}
}
