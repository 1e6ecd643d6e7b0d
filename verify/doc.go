// Package verify holds what a drill proves things from: the history of every
// client operation, one JSON object per line.
//
// For now it holds the history format: the [Header] that opens a file, the
// [Op] lines that follow, a [Writer] that records them from many goroutines
// on one monotonic [Clock], [ReadHistory] that reads a saved history back,
// and [Classify], the rule that turns an HTTP answer into an [Outcome].
// The checkers (money conserved, nothing acknowledged lost, nothing applied
// twice), the recovery-time analysis and the reports come later and read
// the same files, so a saved history can be checked again offline.
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
// None: it reads and writes files.
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
package verify
