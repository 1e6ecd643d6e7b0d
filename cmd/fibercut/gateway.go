package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"

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
			drop, err := demoapp.ParseDropAudience(os.Getenv(demoapp.EnvTestDropAudience))
			if err != nil {
				return err
			}
			cfg := demoapp.GatewayConfig{Lab: os.Getenv(lab.EnvLab), Version: buildVersion(), Topology: t, Peers: peers,
				Record: os.Getenv(lab.EnvGatewayRecord), DropAudience: drop}
			if v := os.Getenv(lab.EnvGatewayTrusted); v != "" {
				if cfg.Trusted, err = netip.ParseAddr(v); err != nil {
					return fmt.Errorf("%s=%q: want the WAN bridge's address: %w", lab.EnvGatewayTrusted, v, err)
				}
			}
			if v := os.Getenv(lab.EnvAudienceMax); v != "" {
				if cfg.AudienceMax, err = strconv.Atoi(v); err != nil || cfg.AudienceMax < 1 {
					return fmt.Errorf("%s=%q: want a number of accounts, 1 or more", lab.EnvAudienceMax, v)
				}
			}
			demoapp.TuneGC()
			if cfg.Limits, err = demoapp.ParseClientLimits(os.Getenv(lab.EnvClientLimits)); err != nil {
				return fmt.Errorf("%s: %w", lab.EnvClientLimits, err)
			}
			return demoapp.RunGateway(cmd.Context(), cfg)
		},
	}
}

// gatewayURL returns the URL of the named lab's gateway, as seen from the host.
func gatewayURL(ctx context.Context, name string) (string, error) {
	cli, l, err := connectLab(ctx, name)
	if err != nil {
		return "", err
	}
	defer cli.Close()
	if l.Gateway == nil || l.Gateway.State != "running" {
		return "", fmt.Errorf("lab %q has no running gateway; run `fibercut lab up --name %s`", name, name)
	}
	return l.Gateway.URL(), nil
}
