package faults

// The baseline WAN latency: the distance between the cities, in every lab
// by default (lab up --wan-latency off skips it). Each DC holds the
// packets each other DC sends it for that link's one-way latency (the
// topology's), so a round trip takes twice it, as
// between real cities: 2 ms within one, 10 ms Hangzhou–Shanghai, 30 ms to
// Shenzhen.
//
// It works as a delay fault does without netem (holder.go), but for the
// lab's whole life: in each DC's namespace, a chain "wan" of the fibercut
// table queues the packets from each peer, with bypass, to the queue of
// its latency; one process, the WAN holder, bound to those queues in every
// DC, gives each packet its verdict after that latency (the packets of one
// queue wait alike, so those due at once share one verdict). The chain
// comes after the input chain, whose cuts drop first; the delay faults'
// chain is on output, so their delays add to it, and when they are healed
// the link returns to the baseline, not to zero.
//
// The packets are held where they arrive, not where they leave: a packet
// held in its sender's namespace still counts against its socket's TCP
// Small Queues budget (netem orphans the packets it delays; a queue
// cannot), so a connection crawls: 0.4 MB/s over a 15 ms link, measured,
// against hundreds of MB/s at the receiver. A member rejoining after a
// cut then caught up for tens of seconds, or never.
//
// The holder keeps it up: when a DC's container starts again (a power
// fault, a restart), it puts the chain in the new namespace and binds the
// queue there (on Kubernetes, where it enters the DC pods' namespaces from
// this host as the faults do, it finds a new pod within wanResyncKube); it
// ends when the lab goes (on Kubernetes also when the cluster has not
// answered for wanUnreachable), or the record of it does, and
// on SIGTERM it removes its chains. Killed, it fails open like any
// holder: the links carry traffic at once, undelayed, until the next lab
// up or drill run starts another.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"

	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/lab/kube"
	"github.com/fibercut/fibercut/nfqueue"
)

const (
	// wanChainName is the baseline's chain in the fibercut table.
	wanChainName = "wan"
	// wanQueue is the baseline's first queue, in every DC's namespace,
	// one a latency (wanClass): below the faults' (queueBase onwards).
	wanQueue uint16 = queueBase - 0x100
	// wanEnv carries a WAN holder's orders, as JSON.
	wanEnv = "FIBERCUT_FAULTS_WAN"
	// wanResync is how often the holder reads the lab from the engine,
	// besides when the engine says a DC started or died.
	wanResync = 10 * time.Second
	// wanResyncKube is how often a holder of a lab on Kubernetes reads
	// the lab: it has no engine's events to follow.
	wanResyncKube = time.Second
	// wanUnreachable is how long a holder of a lab on Kubernetes goes on
	// without an answer from the cluster (taken down with the lab in it,
	// say) before it ends, failing open.
	wanUnreachable = time.Minute
	// wanStop bounds how long a holder asked to end has to do so.
	wanStop = 5 * time.Second
)

// WAN is the lab's baseline WAN latency, as recorded in its store.
type WAN struct {
	Lab     string    `json:"lab"` // the incarnation of the lab
	Started time.Time `json:"started"`
	// Owner is the process that started it; Holder the process that
	// delays the packets.
	Owner  *Process `json:"owner,omitempty"`
	Holder *Process `json:"holder,omitempty"`
}

// Held reports whether its holder runs, and so whether the links are
// delayed.
func (w *WAN) Held() bool { return w != nil && w.Holder != nil && w.Holder.Alive() }

// wanOrders is what a WAN holder is started for.
type wanOrders struct {
	Store       string `json:"store"`
	Lab         string `json:"lab"`
	Incarnation string `json:"incarnation"`
	// Kube, when set, says the lab is on Kubernetes, not Docker.
	Kube *kubeOrders `json:"kube,omitempty"`
}

func init() {
	if v := os.Getenv(wanEnv); v != "" {
		os.Exit(runWAN(v))
	}
}

// LoadWAN returns the lab's baseline WAN latency as recorded, nil when
// there is none (it is off) or it belongs to another incarnation of the
// lab.
func LoadWAN(store *Store, l *lab.Lab) (*WAN, error) {
	st, err := store.Load()
	if err != nil {
		return nil, err
	}
	if st.WAN == nil || st.WAN.Lab != l.WAN.ID {
		return nil, nil
	}
	return st.WAN, nil
}

// StartWAN puts the topology's link latencies on the WAN of l, a lab of
// the Docker engine, both directions of every link, and returns once every
// running DC's WAN ingress is delayed. A live holder of this incarnation
// of the lab is kept; a dead one is replaced. It needs root, to enter the
// DCs' namespaces. [Injector.SetWAN] does it on any backend.
func StartWAN(ctx context.Context, l *lab.Lab, store *Store) (*WAN, error) {
	return startWAN(ctx, l, store, nil)
}

// startWAN is StartWAN on a lab on Docker (kube nil) or Kubernetes.
func startWAN(ctx context.Context, l *lab.Lab, store *Store, kube *kubeOrders) (*WAN, error) {
	var out *WAN
	err := store.locked(func() error {
		st, err := store.Load()
		if err != nil {
			return err
		}
		if w := st.WAN; w.Held() && w.Lab == l.WAN.ID {
			out = w
			return nil
		}
		if st.WAN != nil {
			stopProcess(st.WAN.Holder)
		}
		// Intent first: a holder of a lost start finds its record.
		self := Self()
		w := &WAN{Lab: l.WAN.ID, Started: time.Now(), Owner: &self}
		if err := store.modify(func(st *State) error { st.WAN = w; return nil }); err != nil {
			return err
		}
		p, err := spawnDetached(ctx, wanEnv, wanOrders{Store: store.Path(), Lab: l.Name, Incarnation: l.WAN.ID, Kube: kube})
		if err != nil {
			store.modify(func(st *State) error { st.WAN = nil; return nil })
			return fmt.Errorf("faults: baseline WAN latency (needs root; --wan-latency off runs the lab without it): %w", err)
		}
		w.Holder = p
		out = w
		return store.modify(func(st *State) error { st.WAN = w; return nil })
	})
	return out, err
}

// SetWAN puts the baseline WAN latency on l, a lab of the Docker engine
// ("on"), takes it off ("off") or leaves it as it is (""), and returns it:
// nil when off, and for "" the record as it is (see [WAN.Held]).
func SetWAN(ctx context.Context, l *lab.Lab, store *Store, mode string) (*WAN, error) {
	return setWAN(ctx, l, store, mode, nil)
}

// SetWAN is [SetWAN] on the injector's lab, whatever its backend, with
// its store.
func (in *Injector) SetWAN(ctx context.Context, mode string) (*WAN, error) {
	return setWAN(ctx, in.Lab(), in.store, mode, in.kube)
}

func setWAN(ctx context.Context, l *lab.Lab, store *Store, mode string, kube *kubeOrders) (*WAN, error) {
	switch mode {
	case "on":
		return startWAN(ctx, l, store, kube)
	case "off":
		_, err := StopWAN(ctx, store, l)
		return nil, err
	case "":
		return LoadWAN(store, l)
	}
	return nil, fmt.Errorf("faults: WAN latency %q: want on, off, or \"\" to leave the lab as it is", mode)
}

// StopWAN takes the baseline WAN latency off the lab: it ends the holder,
// which removes its chains, and forgets the record. With l (as inspected
// now: it enters each running DC's namespace by pid), it also removes the
// chains a killed holder left (they let packets pass, but are the
// baseline's); without, the lab is being taken down. It reports
// whether there was a baseline to stop.
func StopWAN(ctx context.Context, store *Store, l *lab.Lab) (bool, error) {
	var had bool
	err := store.locked(func() error {
		st, err := store.Load()
		if err != nil {
			return err
		}
		if st.WAN != nil {
			had = true
			stopProcess(st.WAN.Holder)
		}
		var errs []error
		if l != nil {
			for _, d := range l.DCs {
				if d.State != "running" {
					continue
				}
				c, err := openNS(d)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				removed, err := c.removeWAN()
				had = had || removed
				errs = append(errs, err)
				c.Close()
			}
		}
		if st.WAN != nil {
			errs = append(errs, store.modify(func(st *State) error { st.WAN = nil; return nil }))
		}
		return errors.Join(errs...)
	})
	return had, err
}

// stopProcess asks p to end and waits until it has, killing it after
// wanStop.
func stopProcess(p *Process) {
	if p == nil || !p.Alive() {
		return
	}
	p.Stop()
	for deadline := time.Now().Add(wanStop); p.Alive(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			syscall.Kill(p.PID, syscall.SIGKILL)
		}
	}
}

// wanChain queues arriving packets to the WAN holder: after the input
// chain, whose drops come first.
func wanChain() *nftables.Chain {
	accept := nftables.ChainPolicyAccept
	return &nftables.Chain{Name: wanChainName, Table: table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityRef(*nftables.ChainPriorityFilter + 5), Policy: &accept}
}

// wanTag is the comment on the baseline's rules.
func wanTag() []byte { return ruleTag(wanChainName) }

// wanClass is the peers of a DC at one latency: they share a queue,
// wanQueue plus the class's index, whose packets all wait as long, so
// they fall due in the order they came.
type wanClass struct {
	latency time.Duration
	peers   []netip.Addr
}

// wanClasses groups the other DCs of the lab whose link to dc has a
// latency by that latency, nearest first.
func wanClasses(l *lab.Lab, dc string) []wanClass {
	var out []wanClass
	for _, p := range l.DCs {
		link, ok := l.Topology.Link(dc, p.ID)
		if p.ID == dc || !p.WANIP.Is4() || !ok || link.Latency <= 0 {
			continue
		}
		i := slices.IndexFunc(out, func(c wanClass) bool { return c.latency == link.Latency })
		if i < 0 {
			out = append(out, wanClass{latency: link.Latency})
			i = len(out) - 1
		}
		out[i].peers = append(out[i].peers, p.WANIP)
	}
	slices.SortFunc(out, func(a, b wanClass) int { return cmp.Compare(a.latency, b.latency) })
	for _, c := range out {
		slices.SortFunc(c.peers, netip.Addr.Compare)
	}
	return out
}

// putWAN makes the wan chain queue the WAN ingress from the peers of each
// class to the class's queue, in place of what it held, in one atomic
// batch.
func (c *nsConn) putWAN(classes []wanClass) error {
	ch := wanChain()
	had, err := c.hasChain(wanChainName)
	if err != nil {
		return err
	}
	c.nft.AddTable(table)
	if had {
		// Replaced whole: one left by an older fibercut hooked output.
		c.nft.FlushChain(ch)
		c.nft.DelChain(ch)
	}
	c.nft.AddChain(ch)
	iif := ifname(expr.MetaKeyIIFNAME, c.wan)
	for i, cl := range classes {
		for _, ip := range cl.peers {
			from := []expr.Any{&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ip.AsSlice()}}
			c.rule(ch, wanTag(), iif, ipv4(), load(saddr), from, toQueue(wanQueue+uint16(i)))
		}
	}
	if err := c.nft.Flush(); err != nil {
		return fmt.Errorf("faults: put the WAN latency's rules in dc %s: %w", c.dc, err)
	}
	return nil
}

// removeWAN deletes the wan chain, if there is one, and says whether there
// was.
func (c *nsConn) removeWAN() (bool, error) {
	if ok, err := c.hasTable(); err != nil || !ok {
		return false, err
	}
	if ok, err := c.hasChain(wanChainName); err != nil || !ok {
		return false, err
	}
	c.nft.FlushChain(wanChain())
	c.nft.DelChain(wanChain())
	if err := c.nft.Flush(); err != nil {
		return false, fmt.Errorf("faults: remove the WAN latency's rules in dc %s: %w", c.dc, err)
	}
	return true, nil
}

// runWAN is the WAN holder process: it delays every running DC's WAN
// ingress, says it is armed, then keeps it so as DCs stop and start, until
// the lab or its record goes or it is asked to end.
func runWAN(v string) int {
	var o wanOrders
	if err := json.Unmarshal([]byte(v), &o); err != nil {
		return 2
	}
	report := os.NewFile(3, "armed")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer stop()
	h := &wanHolder{orders: o, arms: map[string]*wanArm{}, unreachable: wanUnreachable}
	if o.Kube != nil {
		cs, _, err := kube.Connect(o.Kube.Kubeconfig)
		if err != nil {
			fmt.Fprintln(report, err)
			return 1
		}
		h.backend = newKubeBackend(kube.NewCluster(cs, o.Lab), ViaHost) // it holds from this host
	} else {
		cli, err := lab.Connect(ctx)
		if err != nil {
			fmt.Fprintln(report, err)
			return 1
		}
		defer cli.Close()
		h.cli, h.backend = cli, NewDockerBackend(cli, o.Lab)
	}
	defer h.close()
	l, err := h.inspect(ctx)
	if err == nil {
		h.answered = time.Now()
		err = h.sync(ctx, l)
	}
	if err != nil {
		fmt.Fprintln(report, err)
		return 1
	}
	fmt.Fprintln(report, armedLine)
	report.Close()
	runtime.GOMAXPROCS(1) // as a fault's holder: one thread, at real-time priority
	realtime()
	h.run(ctx)
	return 0
}

// wanHolder delays the WAN ingress of the lab's running DCs.
type wanHolder struct {
	backend Backend
	// cli is the Docker engine whose events say when a DC starts or
	// dies; nil on Kubernetes, where the holder reads the lab every
	// wanResyncKube.
	cli    client.APIClient
	orders wanOrders
	// answered is when the engine last gave the lab; on Kubernetes the
	// holder ends once it has not for unreachable (wanUnreachable).
	answered    time.Time
	unreachable time.Duration
	arms        map[string]*wanArm // by DC
}

// wanArm is the holder's hold on one DC: its queue, bound in the
// namespace of one container process.
type wanArm struct {
	pid   int
	ns    string // the namespace's identity (device and inode)
	wanIP netip.Addr
	// peers is what the arm's rules delay: each peer's address, with its
	// latency. On Kubernetes a pod's address changes as it restarts.
	peers  map[netip.Addr]time.Duration
	cancel context.CancelFunc
	done   chan struct{}
}

// errLabGone: the lab the holder was started for is no more.
var errLabGone = errors.New("faults: the lab is gone")

func (h *wanHolder) inspect(ctx context.Context) (*lab.Lab, error) {
	l, err := h.backend.Inspect(ctx)
	if errors.Is(err, lab.ErrNoLab) || (err == nil && l.WAN.ID != h.orders.Incarnation) {
		return nil, errLabGone
	}
	return l, err
}

// run keeps the DCs delayed until ctx ends, the lab goes, or the record
// of this holder does.
func (h *wanHolder) run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer cancel()
		h.waitRecord(ctx)
	}()
	if h.cli == nil {
		t := time.NewTicker(wanResyncKube)
		defer t.Stop()
		for !h.resync(ctx) {
			if time.Since(h.answered) > h.unreachable {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		return
	}
	for ctx.Err() == nil {
		evs, errs := h.cli.Events(ctx, events.ListOptions{Filters: filters.NewArgs(
			filters.Arg("type", string(events.ContainerEventType)),
			filters.Arg("label", lab.LabelLab+"="+h.orders.Lab),
			filters.Arg("event", string(events.ActionStart)),
			filters.Arg("event", string(events.ActionDie)),
		)})
		resync := time.NewTicker(wanResync)
		if h.resync(ctx) {
			resync.Stop()
			return
		}
	watch:
		for {
			select {
			case <-ctx.Done():
				break watch
			case <-evs:
			case <-resync.C:
			case <-errs:
				// The engine went away or restarted: follow it again.
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
				break watch
			}
			if h.resync(ctx) {
				resync.Stop()
				return
			}
		}
		resync.Stop()
	}
}

// resync reads the lab and arms or disarms its DCs; true when the lab is
// gone.
func (h *wanHolder) resync(ctx context.Context) bool {
	l, err := h.inspect(ctx)
	if errors.Is(err, errLabGone) {
		return true
	}
	if err == nil {
		h.answered = time.Now()
		h.sync(ctx, l) // what fails is tried again at the next event or resync
	}
	return false
}

// waitRecord returns once the store no longer records this process as
// the lab's WAN holder.
func (h *wanHolder) waitRecord(ctx context.Context) {
	store := NewStore(h.orders.Store)
	for {
		st, err := store.Load()
		if err == nil {
			w := st.WAN
			if w == nil || w.Lab != h.orders.Incarnation || (w.Holder != nil && w.Holder.PID != os.Getpid()) {
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

// sync arms every running DC whose container process it does not hold
// yet, disarms those that stopped, and arms again those with a peer at an
// address their rules do not delay.
func (h *wanHolder) sync(ctx context.Context, l *lab.Lab) error {
	var errs []error
	for _, d := range l.DCs {
		a := h.arms[d.ID]
		running := d.State == "running" && d.Pid > 0
		if a != nil && (!running || a.pid != d.Pid || !a.delays(wanClasses(l, d.ID))) {
			a.stop()
			delete(h.arms, d.ID)
			a = nil
		}
		if running && a == nil {
			a, err := h.arm(ctx, l, d)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			h.arms[d.ID] = a
		}
	}
	return errors.Join(errs...)
}

// arm binds the WAN queues in d's namespace, then puts the rules that
// feed them (with bypass, so the order only decides who sees the first
// packet), and delays their packets until the arm is stopped.
func (h *wanHolder) arm(ctx context.Context, l *lab.Lab, d lab.DC) (*wanArm, error) {
	classes := wanClasses(l, d.ID)
	path := "/proc/" + strconv.Itoa(d.Pid) + "/ns/net"
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("faults: enter network namespace of dc %s (%s; needs root): %w", d.ID, path, err)
	}
	nsID := ns.UniqueId()
	var queues []*nfqueue.Queue
	closeAll := func() {
		for _, q := range queues {
			q.Close()
		}
	}
	for i := range classes {
		q, err := openHolderQueue(wanQueue+uint16(i), ns)
		if err != nil {
			closeAll()
			ns.Close()
			return nil, fmt.Errorf("faults: dc %s: %w", d.ID, err)
		}
		queues = append(queues, q)
	}
	c, err := newNSConn(d.ID, ns, d.WANIP) // takes ns over
	if err == nil {
		err = c.putWAN(classes)
		c.Close()
	}
	if err != nil {
		closeAll()
		return nil, err
	}
	actx, cancel := context.WithCancel(ctx)
	a := &wanArm{pid: d.Pid, ns: nsID, wanIP: d.WANIP, peers: map[netip.Addr]time.Duration{}, cancel: cancel, done: make(chan struct{})}
	for _, c := range classes {
		for _, p := range c.peers {
			a.peers[p] = c.latency
		}
	}
	var wg sync.WaitGroup
	for i, q := range queues {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer q.Close()
			newDelayer(q, classes[i].latency, 0).run(actx) // a receive error (the namespace went) ends it too
		}()
	}
	go func() {
		wg.Wait()
		close(a.done)
	}()
	return a, nil
}

// delays reports whether the arm's rules delay every peer of classes at
// its latency. A peer that went (a pod being replaced) stays in the rules
// until it comes back at another address: arming again releases the held
// packets early, so it is done only when needed.
func (a *wanArm) delays(classes []wanClass) bool {
	for _, c := range classes {
		for _, p := range c.peers {
			if l, ok := a.peers[p]; !ok || l != c.latency {
				return false
			}
		}
	}
	return true
}

// stop releases what the arm holds and closes its queue.
func (a *wanArm) stop() {
	a.cancel()
	<-a.done
}

// close releases every DC and removes the wan chain from the namespaces
// still there: a holder that ends leaves no rule behind.
func (h *wanHolder) close() {
	for dc, a := range h.arms {
		a.stop()
		ns, err := netns.GetFromPath("/proc/" + strconv.Itoa(a.pid) + "/ns/net")
		if err != nil {
			continue // gone with its container
		}
		if ns.UniqueId() != a.ns { // the pid is another process's now
			ns.Close()
			continue
		}
		if c, err := newNSConn(dc, ns, a.wanIP); err == nil { // takes ns over
			c.removeWAN()
			c.Close()
		}
	}
}
