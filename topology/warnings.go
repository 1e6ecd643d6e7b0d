package topology

import (
	"fmt"
	"time"
)

// electionRTTs is how many of the largest round trip between two members
// an election timeout should be at least: etcd's tuning guide puts it at
// about ten, so that a heartbeat late by a few round trips does not start
// an election.
const electionRTTs = 10

// MaxRoundTrip returns the largest round trip over one link of t (twice
// its one-way latency), and the link.
func (t *Topology) MaxRoundTrip() (time.Duration, Link) {
	var rtt time.Duration
	var worst Link
	for _, l := range t.Links {
		if 2*l.Latency > rtt {
			rtt, worst = 2*l.Latency, l
		}
	}
	return rtt, worst
}

// Warnings lists what is valid in t but likely to hurt a drill, a sentence
// each: an election timeout below electionRTTs times the largest round
// trip, where members would call elections while the leader is alive.
func (t *Topology) Warnings() []string {
	var out []string
	rtt, l := t.MaxRoundTrip()
	if want := electionRTTs * rtt; rtt > 0 && time.Duration(t.Ledger.ElectionMS)*time.Millisecond < want {
		out = append(out, fmt.Sprintf("ledger.election_ms: %d is below %d × the largest round trip (%s, link %s–%s at %s one way) = %d ms, etcd's rule of thumb: members may call elections while the leader is alive; raise it to at least %d",
			t.Ledger.ElectionMS, electionRTTs, FormatDuration(rtt), l.A, l.B, FormatDuration(l.Latency), want.Milliseconds(), want.Milliseconds()))
	}
	return out
}
