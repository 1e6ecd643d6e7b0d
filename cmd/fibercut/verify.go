package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fibercut/fibercut/verify"
)

func newVerifyCmd() *cobra.Command {
	var (
		statePath string
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "verify HISTORY [HISTORY...] --state STATE",
		Short: "Check a drill's history against the ledger's final state: no money lost",
		Long: `Check a history of client operations (written by "fibercut load" or a drill)
against the ledger's final state (state.json, read from etcd after the drill),
as Jepsen's bank test does: money conserved, no negative balance, every
transfer acknowledged ok present (RPO = 0), none applied twice, none present
that was never issued, the replay of the stored transfers equal to the final
balances, every ledger member holding the same data, definite failures absent,
every opened account present. Transfers whose outcome the client never learnt
(timeouts) are settled from the state and counted, never as lost.

A drill writes two histories: the load's (history.jsonl) and the hall's,
recorded by the gateway (audience.jsonl). Give both: they are checked
together, and the hall's is counted apart.

Exit status: 0 when every check holds, 1 when one does not or a history is
cut short (no end record: its complete ops are still checked), 2 when a file
is missing or is not a history or a state.`,
		Example: `  fibercut verify drill/history.jsonl drill/audience.jsonl --state drill/state.json
  fibercut verify history.jsonl --state state.json --json | jq .lost`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var h verify.Header
			var ops []verify.Op
			var truncated []error
			for i, path := range args {
				hi, more, err := readHistoryFile(path)
				switch {
				case errors.Is(err, verify.ErrTruncated):
					// Cut short: the ops before are sound, and checked,
					// but a history that may lack ops proves nothing.
					fmt.Fprintf(cmd.ErrOrStderr(), "%v; checking its %d complete ops\n", err, len(more))
					truncated = append(truncated, err)
				case err != nil:
					return &exitError{code: 2, err: err}
				}
				if i == 0 {
					h = hi
				}
				ops = append(ops, more...)
			}
			st, err := verify.LoadState(statePath)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			res := verify.CheckHistory(h, ops, st)
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(res); err != nil {
					return err
				}
			} else {
				printVerifyResult(out, strings.Join(args, " + "), len(ops), statePath, st, res)
			}
			if !res.Valid {
				return &exitError{code: 1, err: fmt.Errorf("verify: %d of %d checks failed", failedChecks(res), len(res.Checks))}
			}
			if len(truncated) > 0 {
				return &exitError{code: 1, err: fmt.Errorf("verify: the checks hold on what was read, but %w", errors.Join(truncated...))}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&statePath, "state", "", "the ledger's final state (state.json, written by the drill)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	_ = cmd.MarkFlagRequired("state")
	return cmd
}

// readHistoryFile reads the history at path, naming the file in errors. As
// with [verify.ReadHistory], an error wrapping [verify.ErrTruncated] comes
// with every complete op.
func readHistoryFile(path string) (verify.Header, []verify.Op, error) {
	f, err := os.Open(path)
	if err != nil {
		return verify.Header{}, nil, fmt.Errorf("history: %w", err)
	}
	defer f.Close()
	h, ops, err := verify.ReadHistory(f)
	if err != nil {
		return h, ops, fmt.Errorf("history %s: %w", path, err)
	}
	return h, ops, nil
}

func printVerifyResult(w io.Writer, historyPath string, nOps int, statePath string, st verify.FinalState, res verify.Result) {
	fmt.Fprintf(w, "history %s: %d ops\n", historyPath, nOps)
	fmt.Fprintf(w, "state   %s: revision %d, %d accounts, %d transfers, %d members\n",
		statePath, st.Revision, len(st.Accounts), len(st.Transfers), len(st.Members))
	fmt.Fprintln(w)
	for _, c := range res.Checks {
		mark := "✓"
		if !c.OK {
			mark = "✗"
		}
		fmt.Fprintf(w, "%s %s: %s\n", mark, c.Name, c.Detail)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "transfers: %d acknowledged, %d lost, %d failed, unknown: %d applied, %d not found; %d never issued\n",
		res.Acknowledged, res.Lost, res.Failed, res.UnknownApplied, res.UnknownNotFound, res.Invented)
	for _, t := range res.Sources {
		fmt.Fprintf(w, "  of which %s: %d accounts opened, %d acknowledged, %d lost, %d failed, unknown: %d applied, %d not found\n",
			t.Source, t.Opened, t.Acknowledged, t.Lost, t.Failed, t.UnknownApplied, t.UnknownNotFound)
	}
	if res.Valid {
		fmt.Fprintln(w, "VALID: no money lost, nothing applied twice, the members agree")
	} else {
		fmt.Fprintf(w, "INVALID: %d of %d checks failed\n", failedChecks(res), len(res.Checks))
	}
}

func failedChecks(res verify.Result) int {
	n := 0
	for _, c := range res.Checks {
		if !c.OK {
			n++
		}
	}
	return n
}
