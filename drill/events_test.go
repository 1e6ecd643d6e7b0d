package drill

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestFeedDeliversFromOneGoroutineWithoutBlocking sends from many
// goroutines to a consumer that is slow and checks for overlap: the
// consumer is never entered twice at once, sends never wait for it, every
// event but progress arrives in order, and progress is merged, never
// reordered past news.
func TestFeedDeliversFromOneGoroutineWithoutBlocking(t *testing.T) {
	var (
		inside  atomic.Int32
		overlap atomic.Bool
		mu      sync.Mutex
		got     []Event
	)
	release := make(chan struct{})
	f := newFeed(func(e Event) {
		if inside.Add(1) > 1 {
			overlap.Store(true)
		}
		<-release // a consumer stuck until the senders are done
		mu.Lock()
		got = append(got, e)
		mu.Unlock()
		inside.Add(-1)
	})
	const senders, each = 8, 200
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for i := range each {
				f.send(Event{Kind: EventProgress, OK: int64(i)})
				f.send(Event{Kind: EventFaultInForce, Message: fmt.Sprintf("%d/%d", s, i)})
			}
		})
	}
	sent := make(chan struct{})
	go func() { wg.Wait(); close(sent) }()
	select {
	case <-sent:
	case <-time.After(30 * time.Second):
		t.Fatal("senders blocked on a consumer that does not take events")
	}
	close(release)
	f.send(Event{Kind: EventVerdict, Message: "verdict"})
	f.close()
	if overlap.Load() {
		t.Error("the consumer was called from two goroutines at once")
	}
	faults := map[int]int{}
	for i, e := range got {
		switch e.Kind {
		case EventFaultInForce:
			var s, n int
			fmt.Sscanf(e.Message, "%d/%d", &s, &n)
			if prev, ok := faults[s]; ok && n != prev+1 {
				t.Fatalf("sender %d: event %d after %d", s, n, prev)
			}
			faults[s] = n
		case EventVerdict:
			if i != len(got)-1 {
				t.Errorf("verdict delivered at %d of %d", i, len(got))
			}
		}
	}
	for s := range senders {
		if faults[s] != each-1 {
			t.Errorf("sender %d: last fault event delivered %d, want %d", s, faults[s], each-1)
		}
	}
	f.send(Event{Kind: EventNote}) // after close: dropped, no panic
}
