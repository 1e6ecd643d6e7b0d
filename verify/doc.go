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
package verify
