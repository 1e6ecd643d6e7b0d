package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fibercut/fibercut/demoapp"
	"github.com/fibercut/fibercut/verify"
)

func newLoadCmd() *cobra.Command {
	var (
		name, target, historyPath string
		cfg                       demoapp.LoadConfig
	)
	cmd := &cobra.Command{
		Use:   "load",
		Short: "Send transfers between virtual users through the gateway, recording every one",
		Long: `Open one account per virtual user through the lab's gateway, then send
transfers between random pairs of them at the target rate, and write every
request to a history file: when it was sent and answered (one monotonic clock),
and whether it was ok, failed (nothing applied) or unknown (a timeout: it may
have been applied). Progress goes to stderr every second, a summary to stdout.

Sending stops after --for, after --max-ops requests, or on Ctrl-C; requests in
flight may then complete, up to --timeout, and the history is flushed.`,
		Example: `  fibercut load --url http://10.200.0.5:8080 --users 64 --rate 1000 --for 30s --retry`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if target == "" {
				u, err := gatewayURL(cmd.Context(), name)
				if err != nil {
					return err
				}
				target = u
			}
			cfg.BaseURL = target
			if err := cfg.Validate(); err != nil {
				return err
			}
			f, err := os.Create(historyPath)
			if err != nil {
				return fmt.Errorf("load: history: %w", err)
			}
			h := verify.Header{Target: target, Users: cfg.Users, Rate: cfg.Rate}
			if cmd.Flags().Changed("name") {
				h.Lab = name
			}
			hw, err := verify.NewWriter(f, h)
			if err != nil {
				f.Close()
				return fmt.Errorf("load: history %s: %w", historyPath, err)
			}
			cfg.History = hw
			stderr := cmd.ErrOrStderr()
			cfg.Progress = func(p demoapp.LoadProgress) {
				fmt.Fprintf(stderr, "%6.1fs  ops %-8d ok/s %-7.0f unknown %-6d fail %d\n",
					p.Elapsed.Seconds(), p.Ops, p.OKPerSec, p.Unknown, p.Fail)
			}
			stats, runErr := demoapp.RunLoad(cmd.Context(), cfg)
			closeErr := hw.Close()
			if err := f.Close(); closeErr == nil && err != nil {
				closeErr = fmt.Errorf("load: history %s: %w", historyPath, err)
			}
			printLoadStats(cmd.OutOrStdout(), stats, historyPath)
			return errors.Join(runErr, closeErr)
		},
	}
	addLabNameFlag(cmd, &name)
	cmd.Flags().StringVar(&target, "url", "", "the gateway's base URL (default: the lab's gateway)")
	cmd.Flags().BoolVar(&cfg.NoBatch, "no-batch", false, "ask the DCs to commit each transfer alone (no group commit)")
	cmd.Flags().IntVar(&cfg.Users, "users", 64, "virtual users, one account each, at most one request in flight each")
	cmd.Flags().Float64Var(&cfg.Rate, "rate", 1000, "target transfers per second, all users together")
	cmd.Flags().DurationVar(&cfg.Duration, "for", 30*time.Second, "how long to send transfers, once the accounts are open")
	cmd.Flags().StringVar(&historyPath, "history", "history.jsonl", "file to write the history to (replaced if it exists)")
	cmd.Flags().DurationVar(&cfg.Timeout, "timeout", 2*time.Second, "per request; a request that times out has an unknown outcome")
	cmd.Flags().BoolVar(&cfg.Retry, "retry", false, fmt.Sprintf("resend a transfer whose outcome is unknown, with the same key (up to %d attempts)", demoapp.LoadMaxAttempts))
	cmd.Flags().Int64Var(&cfg.Seed, "seed", 0, "seed for payees and amounts (0: pick one and print it)")
	cmd.Flags().Int64Var(&cfg.MaxOps, "max-ops", 0, "stop after this many requests (0: rate × duration × 1.1 + users)")
	return cmd
}

// printLoadStats prints the summary of a load run.
func printLoadStats(w io.Writer, s demoapp.LoadStats, historyPath string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "history\t%s: %d ops\n", historyPath, s.Ops())
	fmt.Fprintf(tw, "stopped\t%s, after %s (transfers for %s)\n", s.Stopped, s.Duration.Round(time.Millisecond), s.TransferDuration.Round(time.Millisecond))
	fmt.Fprintf(tw, "accounts\t%d opened (opens: %s)\n", s.Accounts, loadOutcomes(s.Opens))
	fmt.Fprintf(tw, "transfers\t%s; %d retries, %d replayed\n", loadOutcomes(s.Transfers), s.Retries, s.Replayed)
	if s.Reads.Total() > 0 {
		fmt.Fprintf(tw, "reads\t%s\n", loadOutcomes(s.Reads))
	}
	fmt.Fprintf(tw, "committed\t%.1f transfers/s\n", s.CommittedPerSec)
	l := s.Latency
	fmt.Fprintf(tw, "latency\tp50 %s  p90 %s  p99 %s  max %s (ok transfers)\n", loadLatency(l.P50), loadLatency(l.P90), loadLatency(l.P99), loadLatency(l.Max))
	fmt.Fprintf(tw, "seed\t%d\n", s.Seed)
	tw.Flush()
}

func loadOutcomes(c demoapp.OutcomeCounts) string {
	return fmt.Sprintf("%d ok, %d fail, %d unknown", c.OK, c.Fail, c.Unknown)
}

// loadLatency rounds d for humans: µs below a millisecond, then 0.1 ms.
func loadLatency(d time.Duration) string {
	if d < time.Millisecond {
		return d.Round(time.Microsecond).String()
	}
	return d.Round(100 * time.Microsecond).String()
}
