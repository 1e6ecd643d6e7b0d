package faults

// The holder: a detached process that delays the packets a delay fault
// queues, where the kernel has no netem. The fault's rules send a DC's
// egress to an NFQUEUE queue, always with bypass; the holder, bound to
// that queue in the DC's namespace, gives each packet its verdict after
// the delay. It is the calling program itself, started again with the
// environment variable holderEnv (as the watchdog is).
//
// The failsafe is the kernel's: the rules' set elements expire at the
// fault's end, so the delay ends on time whatever the holder does; and a
// queue with no holder bound lets packets pass (bypass), so a killed
// holder un-delays the link at once instead of blackholing it. The holder
// ends itself once the fault is over, healed or forgotten.

import (
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/fibercut/fibercut/nfqueue"
)

// holderEnv carries a holder's orders, as JSON.
const holderEnv = "FIBERCUT_FAULTS_HOLDER"

// holderOrders: the queues of one fault, in the namespaces of its DCs.
type holderOrders struct {
	Store       string        `json:"store"`
	ID          string        `json:"id"`
	Incarnation string        `json:"incarnation"`
	Delay       time.Duration `json:"delay"`
	Jitter      time.Duration `json:"jitter"`
	// DCs maps each DC to the pid of its container's first process,
	// whose network namespace the holder enters.
	DCs map[string]int `json:"dcs"`
}

// The holder's queues: each fault has its own number, the same in every
// namespace (queues are per namespace), so two delay faults on one DC
// never share one. Numbers repeat after queueSpan faults.
const (
	queueBase = 0xfc00
	queueSpan = 1024
)

// queueFor is the queue number of fault id ("f12").
func queueFor(id string) uint16 {
	n, _ := strconv.Atoi(id[1:])
	return uint16(queueBase + n%queueSpan)
}

// holdMargin: a holder stays this long past its fault's end (the kernel
// stops queueing at the end; what is still held is released).
const holdMargin = time.Second

func init() {
	if v := os.Getenv(holderEnv); v != "" {
		os.Exit(runHolder(v))
	}
}

// spawnHolder starts the holder of rec and returns once its queues are
// bound in every DC of dcs.
func (in *Injector) spawnHolder(ctx context.Context, rec Record, dcs map[string]int) (*Process, error) {
	return spawnDetached(ctx, holderEnv, holderOrders{Store: in.store.Path(), ID: rec.ID, Incarnation: rec.Lab,
		Delay: rec.Spec.Delay, Jitter: rec.Spec.Jitter, DCs: dcs})
}

// runHolder is the holder process: it binds the fault's queue in every DC,
// says it is armed, then delays packets until the fault is over.
func runHolder(v string) int {
	var o holderOrders
	if err := json.Unmarshal([]byte(v), &o); err != nil {
		return 2
	}
	report := os.NewFile(3, "armed")
	queues, err := bindQueues(o)
	if err != nil {
		fmt.Fprintln(report, err)
		return 1
	}
	fmt.Fprintln(report, armedLine)
	report.Close()
	runtime.GOMAXPROCS(1) // one thread runs it: none spins at real-time priority looking for work
	realtime()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		defer cancel()
		waitOver(ctx, NewStore(o.Store), o.ID, o.Incarnation)
	}()
	g, gctx := errgroup.WithContext(ctx)
	for _, q := range queues {
		g.Go(func() error {
			defer q.Close()
			return newDelayer(q, o.Delay, o.Jitter).run(gctx)
		})
	}
	if err := g.Wait(); err != nil {
		return 1
	}
	return 0
}

// realtime moves every thread of the holder to the real-time class
// (SCHED_FIFO) at the lowest priority: a packet due is released when due,
// not after the lab's busy processes have had their slice. The holder
// sleeps between packets, and the kernel keeps 5 % of every second for
// other classes whatever a real-time thread does. Threads the runtime
// starts later inherit the class. Best effort: where the process's cgroup
// has no real-time budget the kernel refuses, and the holder runs as any
// other process.
func realtime() {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return
	}
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 1}
	for _, t := range tasks {
		if tid, err := strconv.Atoi(t.Name()); err == nil {
			unix.SchedSetAttr(tid, &attr, 0)
		}
	}
}

// bindQueues binds the fault's queue in the namespace of every DC.
func bindQueues(o holderOrders) ([]*nfqueue.Queue, error) {
	var out []*nfqueue.Queue
	fail := func(err error) ([]*nfqueue.Queue, error) {
		for _, q := range out {
			q.Close()
		}
		return nil, err
	}
	for _, dc := range slices.Sorted(maps.Keys(o.DCs)) {
		path := "/proc/" + strconv.Itoa(o.DCs[dc]) + "/ns/net"
		ns, err := netns.GetFromPath(path)
		if err != nil {
			return fail(fmt.Errorf("faults: enter network namespace of dc %s (%s): %w", dc, path, err))
		}
		q, err := openHolderQueue(queueFor(o.ID), ns)
		ns.Close() // the socket keeps the namespace
		if err != nil {
			return fail(fmt.Errorf("faults: dc %s: %w", dc, err))
		}
		out = append(out, q)
	}
	return out, nil
}

// openHolderQueue binds queue num in namespace ns as every holder does:
// the flow's headers copied, fail-open when full, large packets whole.
func openHolderQueue(num uint16, ns netns.NsHandle) (*nfqueue.Queue, error) {
	return nfqueue.Open(nfqueue.Config{Queue: num, NetNS: int(ns), CopyRange: flowHeaderBytes,
		MaxLen: holderMaxQueued, FailOpen: true, GSO: true, ReadBuffer: holderReadBuffer})
}

const (
	// flowHeaderBytes of each packet are copied to the holder: the IPv4
	// header (up to 60 bytes with options) and the ports after it.
	flowHeaderBytes = 64
	// holderMaxQueued bounds the packets the kernel holds for one queue;
	// past it they pass undelayed (fail-open). 50 ms at 100,000 packets
	// a second is 5,000.
	holderMaxQueued = 65536
	// holderReadBuffer holds some 20,000 packet messages.
	holderReadBuffer = 4 << 20
)

// waitOver returns when fault id is over, healed or forgotten: its record
// gone from the store or of another incarnation, or its end (plus
// holdMargin) passed.
func waitOver(ctx context.Context, store *Store, id, incarnation string) {
	for {
		st, err := store.Load()
		if err == nil {
			i := slices.IndexFunc(st.Records, func(r Record) bool { return r.ID == id })
			if i < 0 || st.Records[i].Lab != incarnation {
				return
			}
			if u := st.Records[i].Until; !u.IsZero() && time.Now().After(u.Add(holdMargin)) {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// packetQueue is what a delayer needs of a bound queue (nfqueue.Queue).
type packetQueue interface {
	Receive() ([]nfqueue.Packet, error)
	Verdict(id uint32, v nfqueue.Verdict) error
	VerdictBatch(id uint32, v nfqueue.Verdict) error
	SetReadDeadline(time.Time) error
}

// delayer holds each packet of one queue for the delay, plus a jitter
// drawn uniformly from ±jitter, then accepts it. Packets of one flow
// (addresses, protocol, ports) leave in the order they came, as netem
// keeps them when its jitter would reorder them.
type delayer struct {
	q             packetQueue
	delay, jitter time.Duration
	rand          *rand.Rand

	mu   sync.Mutex
	held heldHeap
	seq  uint64
	last map[flowKey]time.Time // the latest release time given to each flow
	wake chan struct{}
	now  func() time.Time

	// early is how long before its due time a packet is released: the
	// mean of how late the release loop's timer wakes ([delayer.noteLate]).
	early time.Duration
}

// maxEarly bounds early: a holder descheduled for a while must not
// release the next packets that much sooner.
const maxEarly = 2 * time.Millisecond

// noteLate folds one measure of how late the timer woke into early, as a
// moving average over about eight wakes: on a busy machine the release
// loop runs some time after its timer fires, and releasing early by the
// average puts the mean release on the due time. It is never more than a
// quarter of the delay, so a short delay is never released at once.
func (d *delayer) noteLate(late time.Duration) {
	d.early += (late - d.early) / 8
	d.early = min(max(d.early, 0), maxEarly, d.delay/4)
}

func newDelayer(q packetQueue, delay, jitter time.Duration) *delayer {
	return &delayer{q: q, delay: delay, jitter: jitter, rand: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		last: map[flowKey]time.Time{}, wake: make(chan struct{}, 1), now: time.Now}
}

type heldPacket struct {
	due time.Time
	seq uint64 // arrival order: ties leave in it
	id  uint32
}

type heldHeap []heldPacket

func (h heldHeap) Len() int { return len(h) }
func (h heldHeap) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].seq < h[j].seq
}
func (h heldHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *heldHeap) Push(x any)   { *h = append(*h, x.(heldPacket)) }
func (h *heldHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// run delays packets until ctx ends, then releases every packet it
// still holds, and those the kernel queued that it has not read, and
// returns. A receive error ends it too (and is returned).
func (d *delayer) run(ctx context.Context) error {
	recvErr := make(chan error, 1)
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		recvErr <- d.receive()
	}()
	err := d.release(ctx, recvErr)
	d.q.SetReadDeadline(time.Now()) // ends the receiver
	<-recvDone
	d.mu.Lock()
	for d.held.Len() > 0 {
		p := heap.Pop(&d.held).(heldPacket)
		d.q.Verdict(p.id, nfqueue.Accept)
	}
	d.mu.Unlock()
	d.q.VerdictBatch(^uint32(0), nfqueue.Accept) // what is still in the kernel's queue
	return err
}

// receive takes packets in and schedules each one's release.
func (d *delayer) receive() error {
	for {
		ps, err := d.q.Receive()
		if err != nil {
			return err
		}
		d.mu.Lock()
		for _, p := range ps {
			now := d.now()
			due := now.Add(d.delay)
			if d.jitter > 0 {
				due = due.Add(time.Duration(d.rand.Int64N(int64(2*d.jitter)+1)) - d.jitter)
			}
			k := flowOf(p.Payload)
			if l, ok := d.last[k]; ok && l.After(due) {
				due = l // never overtake the flow's previous packet
			}
			if len(d.last) > maxFlows {
				clear(d.last)
			}
			d.last[k] = due
			d.seq++
			heap.Push(&d.held, heldPacket{due: due, seq: d.seq, id: p.ID})
		}
		d.mu.Unlock()
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
}

// maxFlows bounds the flows whose last release time is remembered.
const maxFlows = 100_000

// release gives each held packet its verdict when it is due, less early.
// Without jitter packets fall due in the order they came, which is the
// order of their ids: the packets due at once get one verdict for all
// (a batch verdict accepts every packet up to an id).
func (d *delayer) release(ctx context.Context, recvErr <-chan error) error {
	timer := newReleaseTimer()
	defer timer.Stop()
	batch := d.jitter == 0
	for {
		d.mu.Lock()
		var wait time.Duration = time.Hour
		var last uint32
		due := 0
		for d.held.Len() > 0 {
			if w := d.held[0].due.Sub(d.now()) - d.early; w > 0 {
				wait = w
				break
			}
			p := heap.Pop(&d.held).(heldPacket)
			if batch {
				last = p.id
				due++
				continue
			}
			if err := d.q.Verdict(p.id, nfqueue.Accept); err != nil {
				d.mu.Unlock()
				return err
			}
		}
		var err error
		switch {
		case due == 1:
			err = d.q.Verdict(last, nfqueue.Accept)
		case due > 1:
			err = d.q.VerdictBatch(last, nfqueue.Accept)
		}
		d.mu.Unlock()
		if err != nil {
			return err
		}
		timer.Reset(wait)
		target := d.now().Add(wait)
		select {
		case <-ctx.Done():
			return nil
		case err := <-recvErr:
			if ctx.Err() != nil {
				return nil
			}
			return err
		case <-d.wake:
		case <-timer.C:
			d.mu.Lock()
			d.noteLate(d.now().Sub(target))
			d.mu.Unlock()
		}
	}
}

// flowKey identifies a flow: protocol, addresses and, for TCP and UDP,
// ports.
type flowKey [13]byte

// flowOf reads a packet's flow from its first bytes (an IPv4 header);
// anything else is one flow.
func flowOf(b []byte) flowKey {
	var k flowKey
	if len(b) < 20 || b[0]>>4 != 4 {
		return k
	}
	k[0] = b[9]
	copy(k[1:9], b[12:20])
	ihl := int(b[0]&0x0f) * 4
	if (b[9] == syscall.IPPROTO_TCP || b[9] == syscall.IPPROTO_UDP) && len(b) >= ihl+4 {
		copy(k[9:13], b[ihl:ihl+4])
	}
	return k
}
