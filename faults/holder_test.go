package faults

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fibercut/fibercut/nfqueue"
)

// fakeQueue hands the delayer a fixed list of packets, then blocks until
// its deadline is set, and records every verdict.
type fakeQueue struct {
	packets  []nfqueue.Packet
	given    bool
	stop     chan struct{}
	stopOnce sync.Once

	mu       sync.Mutex
	verdicts []uint32
	batches  [][]uint32    // the packets of each verdict
	all      chan struct{} // closed once every packet has a verdict
}

func (q *fakeQueue) Receive() ([]nfqueue.Packet, error) {
	if !q.given {
		q.given = true
		return q.packets, nil
	}
	<-q.stop
	return nil, context.Canceled
}

func (q *fakeQueue) Verdict(id uint32, v nfqueue.Verdict) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.accept(id, v)
	return nil
}

func (q *fakeQueue) accept(id uint32, v nfqueue.Verdict) {
	if v == nfqueue.Accept {
		q.verdicts = append(q.verdicts, id)
		q.batches = append(q.batches, []uint32{id})
	}
	if len(q.verdicts) == len(q.packets) && q.all != nil {
		close(q.all)
		q.all = nil
	}
}

// VerdictBatch gives the verdict to every packet up to id that has none,
// as the kernel does.
func (q *fakeQueue) VerdictBatch(id uint32, v nfqueue.Verdict) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	var batch []uint32
	for _, p := range q.packets {
		if p.ID <= id && !slices.Contains(q.verdicts, p.ID) {
			batch = append(batch, p.ID)
		}
	}
	if len(batch) == 0 {
		return nil
	}
	q.verdicts = append(q.verdicts, batch[:len(batch)-1]...)
	q.accept(batch[len(batch)-1], v)
	q.batches[len(q.batches)-1] = batch
	return nil
}

func (q *fakeQueue) SetReadDeadline(time.Time) error {
	q.stopOnce.Do(func() { close(q.stop) })
	return nil
}

// ipv4UDP is the first bytes of a UDP packet from port sport to 10.0.0.2.
func ipv4UDP(sport byte) []byte {
	b := make([]byte, 28)
	b[0] = 0x45
	b[9] = 17
	copy(b[12:16], []byte{10, 0, 0, 1})
	copy(b[16:20], []byte{10, 0, 0, 2})
	b[21] = sport
	b[23] = 53
	return b
}

// TestDelayerKeepsFlowOrder gives 200 packets of four flows a jitter as
// large as the delay: every packet is accepted once, and each flow's
// packets leave in the order they came.
func TestDelayerKeepsFlowOrder(t *testing.T) {
	q := &fakeQueue{stop: make(chan struct{}), all: make(chan struct{})}
	flowOfID := map[uint32]byte{}
	for i := range 200 {
		flow := byte(i % 4)
		q.packets = append(q.packets, nfqueue.Packet{ID: uint32(i + 1), Payload: ipv4UDP(flow)})
		flowOfID[uint32(i+1)] = flow
	}
	all := q.all
	d := newDelayer(q, 2*time.Millisecond, 2*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		t.Fatal("not every packet got its verdict")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.verdicts) != 200 {
		t.Fatalf("%d verdicts for 200 packets", len(q.verdicts))
	}
	last := map[byte]uint32{}
	seen := map[uint32]bool{}
	for _, id := range q.verdicts {
		if seen[id] {
			t.Fatalf("packet %d accepted twice", id)
		}
		seen[id] = true
		f := flowOfID[id]
		if id < last[f] {
			t.Fatalf("flow %d: packet %d left after packet %d", f, id, last[f])
		}
		last[f] = id
	}
}

// TestDelayerReleasesAllWhenStopped stops a delayer whose packets are
// not due for an hour: it accepts every one before returning, so that
// nothing waits in the kernel for a holder that is gone.
func TestDelayerReleasesAllWhenStopped(t *testing.T) {
	q := &fakeQueue{stop: make(chan struct{})}
	for i := range 10 {
		q.packets = append(q.packets, nfqueue.Packet{ID: uint32(i + 1)})
	}
	d := newDelayer(q, time.Hour, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	for {
		d.mu.Lock()
		n := d.held.Len()
		d.mu.Unlock()
		if n == 10 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	q.mu.Lock()
	early := len(q.verdicts)
	q.mu.Unlock()
	if early != 0 {
		t.Fatalf("%d packets released before their hour", early)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(q.verdicts) != 10 {
		t.Fatalf("%d of 10 held packets released when stopped", len(q.verdicts))
	}
}

func TestFlowOf(t *testing.T) {
	if flowOf(ipv4UDP(1)) == flowOf(ipv4UDP(2)) {
		t.Error("two source ports are one flow")
	}
	if a, b := ipv4UDP(1), ipv4UDP(1); flowOf(a) != flowOf(b) {
		t.Error("two packets of one flow differ")
	}
	if flowOf([]byte{0x60, 0, 0}) != (flowKey{}) || flowOf(nil) != (flowKey{}) {
		t.Error("a non-IPv4 or short packet is not the catch-all flow")
	}
}

func TestQueueFor(t *testing.T) {
	if queueFor("f1") == queueFor("f2") || queueFor("f1") != queueFor("f1025") || queueFor("f7") != queueBase+7 {
		t.Errorf("queueFor: f1 %d, f2 %d, f1025 %d, f7 %d", queueFor("f1"), queueFor("f2"), queueFor("f1025"), queueFor("f7"))
	}
}

// TestDelayerEarlyFollowsLateness: early settles on the timer's mean
// lateness, and stays within [0, maxEarly] whatever is measured.
func TestDelayerEarlyFollowsLateness(t *testing.T) {
	d := newDelayer(nil, 15*time.Millisecond, 0)
	for range 200 {
		d.noteLate(700 * time.Microsecond)
	}
	if d.early < 690*time.Microsecond || d.early > 700*time.Microsecond {
		t.Fatalf("early after 200 wakes 0.7 ms late = %v, want about 0.7 ms", d.early)
	}
	for range 50 {
		d.noteLate(time.Second) // descheduled
	}
	if d.early != maxEarly {
		t.Fatalf("early after wakes a second late = %v, want the bound %v", d.early, maxEarly)
	}
	for range 200 {
		d.noteLate(-time.Millisecond)
	}
	if d.early != 0 {
		t.Fatalf("early after wakes ahead of time = %v, want 0", d.early)
	}
	short := newDelayer(nil, time.Millisecond, 0)
	for range 50 {
		short.noteLate(time.Second)
	}
	if short.early != short.delay/4 {
		t.Fatalf("early of a 1 ms delay after wakes a second late = %v, want a quarter of the delay", short.early)
	}
}

// TestDelayerReleasesEarly freezes the delayer's clock: a packet due in
// 1 ms never becomes due, so it leaves only because early covers it.
func TestDelayerReleasesEarly(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		early    time.Duration
		released bool
	}{{0, false}, {time.Millisecond, true}, {maxEarly, true}} {
		q := &fakeQueue{stop: make(chan struct{}), packets: []nfqueue.Packet{{ID: 1, Payload: ipv4UDP(1)}}, all: make(chan struct{})}
		all := q.all
		d := newDelayer(q, time.Millisecond, 0)
		d.now = func() time.Time { return t0 }
		d.early = tc.early
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.run(ctx) }()
		// Released: at once, whatever the machine's load; a bound of 10 s
		// only stops a broken delayer. Not released: the frozen clock never
		// makes it due, so a tenth of a second shows it.
		wait := 100 * time.Millisecond
		if tc.released {
			wait = 10 * time.Second
		}
		var released bool
		select {
		case <-all:
			released = true
		case <-time.After(wait):
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if released != tc.released {
			t.Errorf("early %v: released before its time %v, want %v", tc.early, released, tc.released)
		}
	}
}

// TestDelayerBatchesWithoutJitter: without jitter packets fall due in the
// order of their ids, and those due at once leave on one batch verdict;
// with jitter each gets its own.
func TestDelayerBatchesWithoutJitter(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	for _, jitter := range []time.Duration{0, time.Nanosecond} {
		q := &fakeQueue{stop: make(chan struct{}), all: make(chan struct{})}
		for i := range 5 {
			q.packets = append(q.packets, nfqueue.Packet{ID: uint32(i + 1), Payload: ipv4UDP(byte(i))})
		}
		all := q.all
		d := newDelayer(q, 0, jitter)
		d.now = func() time.Time { return t0 }
		d.early = maxEarly // the jitter's ±1 ns is due at once too
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.run(ctx) }()
		select {
		case <-all:
		case <-time.After(30 * time.Second):
			t.Fatalf("jitter %v: not every packet got its verdict", jitter)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		q.mu.Lock()
		batches := q.batches
		q.mu.Unlock()
		want := 1
		if jitter > 0 {
			want = 5
		}
		if len(batches) != want {
			t.Errorf("jitter %v: %d verdicts %v for 5 packets due at once, want %d", jitter, len(batches), batches, want)
		}
		if jitter == 0 && len(batches) == 1 && !slices.Equal(batches[0], []uint32{1, 2, 3, 4, 5}) {
			t.Errorf("batch verdict took %v, want packets 1 to 5", batches[0])
		}
	}
}
