// Package tui is the live dashboard of a drill, for the stage and for game
// days: what it shows is computed from the drill's typed events and the
// load's operations with verify's own functions, so that every number on
// screen is the report's number.
//
// It holds, so far, the parts that need no terminal: the [Scoreboard],
// which gathers a drill as it happens and answers what the screen shows
// (transfers per second, the RTO stopwatch, the money, the event log), and
// [QR], the audience's QR code drawn in half blocks. The bubbletea screens
// (`fibercut stage`) are built on them.
//
// It needs no privileges.
//
// # Example
//
//	sb := tui.NewScoreboard(64)
//	out, err := drill.Run(ctx, cli, sc, drill.Options{Events: sb.Event, OnOp: sb.AddOp})
//	...
//	w := sb.Stopwatch()
//	fmt.Println("RTO", w.Elapsed, "recovered", w.Stopped)
package tui
