package faults

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// TestWANHolderEndsWhenTheClusterIsGone checks the Kubernetes holder's
// last resort: a cluster taken down under it (its lab still recorded, so
// neither the lab nor the record says to end) must not leave it running
// for ever, while a cluster that answers keeps it.
func TestWANHolderEndsWhenTheClusterIsGone(t *testing.T) {
	l := fakeLab(t)
	for i := range l.DCs {
		l.DCs[i].State = "exited" // nothing to arm: no namespace is entered
	}
	store := NewStore(filepath.Join(t.TempDir(), "faults.json"))
	self := Self()
	if err := store.Update(func(st *State) error {
		st.WAN = &WAN{Lab: l.WAN.ID, Started: time.Now(), Owner: &self, Holder: &self}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	holder := func(b *fakeBackend) *wanHolder {
		return &wanHolder{
			backend:     b,
			orders:      wanOrders{Store: store.Path(), Lab: l.Name, Incarnation: l.WAN.ID},
			arms:        map[string]*wanArm{},
			answered:    time.Now(),
			unreachable: 300 * time.Millisecond,
		}
	}

	// Answering, the holder runs until it is told to end.
	answering := newFakeBackend(l)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	holder(answering).run(ctx)
	cancel()
	if ctx.Err() == nil {
		t.Fatal("the holder of a lab whose cluster answers ended on its own")
	}

	// Gone, it ends by itself, long before its context would.
	gone := newFakeBackend(l)
	gone.inspectErr = errors.New("dial tcp 10.251.0.1:6443: connect: connection refused")
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	holder(gone).run(ctx)
	if ctx.Err() != nil {
		t.Fatal("the holder went on for 30 s with no answer from the cluster, 100 times its limit")
	}
	if st, err := store.Load(); err != nil || st.WAN == nil {
		t.Fatalf("the record was gone (%v, %v): the test did not isolate the silence", st.WAN, err)
	}
}
