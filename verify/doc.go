// Package verify holds what a drill proves things from: the history of every
// client operation, one JSON object per line.
//
// It holds the history format: the [Header] that opens a file, the [Op]
// lines that follow, a [Writer] that records them from many goroutines on
// one monotonic [Clock], [ReadHistory] that reads a saved history back, and
// [Classify], the rule that turns an HTTP answer into an [Outcome]. It reads
// the ledger's [FinalState] after a drill ([ReadFinalState], saved beside
// the history with [SaveState]) and checks the history against it
// ([CheckHistory]); the recovery-time analysis and the reports read the
// same files, so a saved drill can be checked again offline.
//
// # Checking money
//
// [CheckHistory] is Jepsen's bank test, in one pass over the history and
// one over each part of the state. It returns one [Check] per invariant,
// under stable names ([CheckMoneyConserved] … [CheckAccountsPresent]):
//
//   - money conserved: the balances sum to accounts × the initial balance,
//     and there is one balance per account;
//   - no negative balance, in the ledger or in any ok answer;
//   - every ok transfer present (RPO = 0), with the acknowledged payee and
//     amount;
//   - none applied twice: no key committed at two revisions or created by
//     two answers (applying a transfer twice to balances while storing its
//     key once shows in the replay);
//   - none present that was never issued: every stored transfer was asked
//     for, with its payee and amount, by an account the history opened;
//   - replay equals final balances: initial balances plus every stored
//     transfer give the ledger's balances exactly;
//   - all members agree: every member's hash of the key space at the
//     state's revision is the same;
//   - failed transfers absent: a key every attempt of which was told
//     "nothing applied" is not stored;
//   - every opened account present.
//
// A transfer whose outcome the client never learnt is settled from the
// state (Result.UnknownApplied, UnknownNotFound) and is never counted lost.
//
// # Recovery time and reports
//
// [AnalyzeRTO] measures each [FaultWindow] from the moment it was in force,
// counting only transfers, a commit being an ok transfer at its completion
// (fail and unknown outcomes never count). Against the pre-fault rate (the
// 5 s before the fault) it reports, per fault ([FaultRTO]): the headline
// RTO, the first 100 ms bucket from which the rate over every 1 s window
// stays at 90 % of that rate for 5 s (the exact rule is on [AnalyzeRTO]),
// or "not recovered" with the time observed; the first success; the gap
// without commits at the cut and the longest one; the per-user outage
// ([UserOutage]) of users homed in the cut DCs and elsewhere; and the same
// from the heal, with any [Brownout] it caused. [Timeline] buckets the
// transfers for charts.
//
// [WriteReport] writes a [Report] as report.json, report.md, a
// self-contained report.html (inline CSS and SVG, no script, no URL) and
// timeline.png, the same chart drawn with image/png; [Report.Summary] is
// the few lines a drill prints last.
//
// # Outcomes
//
// An operation is ok (the service acknowledged it), fail (the service said
// nothing was applied) or unknown (a timeout, a dropped connection, an error
// that may or may not have been applied). An unknown outcome is never
// counted as a failure: it is settled later from the ledger's final state.
//
// # Time
//
// Invoke and Complete are durations since the history's base instant, read
// from one monotonic clock in the recording process ([Writer.Clock]); the
// header keeps the wall-clock time of that instant for humans. Lines are
// written as operations complete; Seq gives the order of invocation.
//
// # Privileges
//
// None: it reads and writes files, and [ReadFinalState] reads the ledger
// through an etcd client.
//
// # Example
//
//	w, err := verify.NewWriter(f, verify.Header{Lab: "fibercut", Users: 64, Rate: 1000})
//	if err != nil {
//		return err
//	}
//	clock := w.Clock()
//	seq, invoke := clock.Begin()
//	status, err := send(ctx)
//	op := verify.Op{Seq: seq, Kind: verify.KindTransfer, Invoke: invoke, Complete: clock.Since(),
//		Status: status, Outcome: verify.Classify(status, err, false)}
//	if err := w.Append(op); err != nil {
//		return err
//	}
//	return w.Close()
//
// After the drill, with the faults healed:
//
//	st, err := verify.ReadFinalState(ctx, cli, members, demoapp.InitialBalanceFen)
//	if err != nil {
//		return err
//	}
//	res := verify.CheckHistory(header, ops, st)
//	for _, c := range res.Checks {
//		fmt.Printf("%v %s: %s\n", c.OK, c.Name, c.Detail)
//	}
//	rep := verify.Report{Scenario: "atec-2018", Faults: windows, Check: res,
//		RTO: verify.AnalyzeRTO(ops, windows, verify.RTOOptions{}), Timeline: verify.Timeline(ops, 0)}
//	files, err := verify.WriteReport(dir, rep)
//	fmt.Println(rep.Summary())
package verify
