package drill

import (
	"context"
	"fmt"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// TestNotCommittedNow: a reset tries a page again only on the errors of a
// cluster between leaders, as the client returns them (wrapped too), and
// gives up at once on any other.
func TestNotCommittedNow(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{rpctypes.ErrTimeout, true},
		{fmt.Errorf("delete: %w", rpctypes.ErrLeaderChanged), true},
		{rpctypes.ErrNoLeader, true},
		{rpctypes.ErrGRPCTimeoutDueToLeaderFail, true},
		{rpctypes.ErrCompacted, false},
		{rpctypes.ErrNoSpace, false},
		{context.Canceled, false},
		{fmt.Errorf("dial: connection refused"), false},
	} {
		if got := notCommittedNow(c.err); got != c.want {
			t.Errorf("notCommittedNow(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
