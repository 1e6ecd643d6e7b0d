package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sync/errgroup"

	"github.com/fibercut/fibercut/topology"
)

// Reach says whether one DC (or the client) could open TCP connections to
// another DC's WAN address.
type Reach string

// Outcomes of a [Probe].
const (
	ReachOK    Reach = "ok"    // every try connected
	ReachCut   Reach = "cut"   // no try connected
	ReachLossy Reach = "lossy" // some tries connected, some did not
	ReachDown  Reach = "down"  // the source DC is not running, so it was not probed
)

// MatrixClient is the From of the probes made from fibercut's own network
// namespace (normally the host's): it stands for the users and the entry
// layer, outside every DC.
const MatrixClient = "client"

// Matrix defaults and limits; see [MatrixOptions].
const (
	DefaultMatrixTries   = 4
	DefaultMatrixTimeout = 250 * time.Millisecond
	maxMatrixTries       = 100
	maxMatrixTimeout     = 30 * time.Second
	maxMatrixParallel    = 64 // probes (ordered pairs) running at once
)

// Probe is the outcome of connecting Tries times from one DC (or the client)
// to another DC's WAN address at [NodePort].
type Probe struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Reach Reach  `json:"reach"`
	// OK is how many of the Tries connects completed the TCP handshake.
	OK    int `json:"ok"`
	Tries int `json:"tries"`
	// RTT is the median round-trip time of the successful handshakes as the
	// kernel measured it (TCP_INFO; where it has none, the time the connect
	// took), nanoseconds in JSON; 0 when none succeeded.
	RTT time.Duration `json:"rtt,omitempty"`
	// TopologyRTT is the round trip the topology gives the pair: twice
	// its link's one-way latency (0 for the client, or no link).
	TopologyRTT time.Duration `json:"topology_rtt,omitempty"`
	// Err is the last error of a failed try, if any.
	Err string `json:"err,omitempty"`
}

// MatrixDC is one DC as the matrix saw it.
type MatrixDC struct {
	ID    string `json:"dc"`
	City  string `json:"city"`
	State string `json:"state"` // Docker's container state, or StateMissing
}

// Matrix is the reachability of every DC from every other DC and from the
// client, over the lab's WAN network. See [Lab.Matrix].
type Matrix struct {
	Lab string `json:"lab"`
	// Cities in display order.
	Cities []string `json:"cities"`
	// DCs in the topology's order.
	DCs []MatrixDC `json:"dcs"`
	// Probes has one entry for every ordered pair of distinct DCs, From in
	// the order of DCs, then To in the order of DCs.
	Probes []Probe `json:"probes"`
	// Client has one probe from [MatrixClient] to every DC, in the order of
	// DCs.
	Client []Probe `json:"client"`
	// Tries and Timeout are the options the probes ran with, defaults
	// applied (Timeout in nanoseconds in JSON).
	Tries   int           `json:"tries"`
	Timeout time.Duration `json:"timeout"`
}

// MatrixOptions configure [Lab.Matrix].
type MatrixOptions struct {
	// Tries is how many connects each probe makes, one after the other;
	// DefaultMatrixTries when 0, at most 100.
	Tries int
	// Timeout bounds each connect; DefaultMatrixTimeout when 0, at most 30 s.
	Timeout time.Duration
}

// classify turns ok successes out of tries into a [Reach].
func classify(ok, tries int) Reach {
	switch {
	case tries == 0:
		return ReachDown
	case ok == tries:
		return ReachOK
	case ok == 0:
		return ReachCut
	default:
		return ReachLossy
	}
}

// Matrix probes the reachability of every DC from every other running DC,
// from inside the source DC's network namespace, and from the client (the
// network namespace fibercut runs in, normally the host's), by opening TCP
// connections to each DC's WAN address at [NodePort]. A completed handshake
// counts as reached: the node need not answer anything. Each probe connects
// opts.Tries times one after the other, with opts.Timeout each; up to 64
// probes run at once, so a matrix of up to eight DCs takes about
// Tries×Timeout at worst.
//
// Probes from a DC that is not running are [ReachDown] and not made. The
// inventory must be fresh (see [Inspect]): the pids of restarted containers
// change. Entering a DC's namespace needs root (CAP_SYS_ADMIN); without it
// Matrix returns an error instead of a matrix of cuts.
func (l *Lab) Matrix(ctx context.Context, opts MatrixOptions) (*Matrix, error) {
	if opts.Tries == 0 {
		opts.Tries = DefaultMatrixTries
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultMatrixTimeout
	}
	if opts.Tries < 1 || opts.Tries > maxMatrixTries {
		return nil, fmt.Errorf("lab: matrix: %d tries: use 1 to %d", opts.Tries, maxMatrixTries)
	}
	if opts.Timeout < 0 || opts.Timeout > maxMatrixTimeout {
		return nil, fmt.Errorf("lab: matrix: timeout %s: use more than 0 and at most %s", opts.Timeout, maxMatrixTimeout)
	}
	m := &Matrix{Lab: l.Name, Cities: l.cityNames(), Tries: opts.Tries, Timeout: opts.Timeout}
	for _, d := range l.DCs {
		m.DCs = append(m.DCs, MatrixDC{ID: d.ID, City: d.City, State: d.State})
	}
	m.Probes = make([]Probe, 0, len(l.DCs)*(len(l.DCs)-1))
	for _, from := range l.DCs {
		for _, to := range l.DCs {
			if from.ID != to.ID {
				p := Probe{From: from.ID, To: to.ID}
				if k, ok := l.link(from.ID, to.ID); ok {
					p.TopologyRTT = 2 * k.Latency
				}
				m.Probes = append(m.Probes, p)
			}
		}
	}
	m.Client = make([]Probe, len(l.DCs))
	for i, to := range l.DCs {
		m.Client[i] = Probe{From: MatrixClient, To: to.ID}
	}

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(maxMatrixParallel)
	for i := range m.Probes {
		p := &m.Probes[i]
		from, _ := l.DC(p.From)
		to, _ := l.DC(p.To)
		if from.State != "running" || from.Pid == 0 {
			p.Reach = ReachDown
			p.Err = "not running (" + from.State + ")"
			continue
		}
		nsPath := "/proc/" + strconv.Itoa(from.Pid) + "/ns/net"
		dial := func(ctx context.Context, addr string, timeout time.Duration) (net.Conn, time.Duration, error) {
			return dialInNetns(ctx, nsPath, addr, timeout)
		}
		g.Go(func() error { return probe(gctx, p, dial, to.WANIP, opts) })
	}
	for i := range m.Client {
		p := &m.Client[i]
		to, _ := l.DC(p.To)
		g.Go(func() error { return probe(gctx, p, dialHost, to.WANIP, opts) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return m, nil
}

// cityNames returns the lab's cities in display order: the topology's, or,
// without one, in the order the DCs name them.
func (l *Lab) cityNames() []string {
	var names []string
	if l.Topology != nil {
		for _, c := range l.Topology.Cities {
			names = append(names, c.Name)
		}
	}
	for _, d := range l.DCs {
		if !slices.Contains(names, d.City) {
			names = append(names, d.City)
		}
	}
	return names
}

// dialFunc connects to addr and says how long the connect took.
type dialFunc func(ctx context.Context, addr string, timeout time.Duration) (net.Conn, time.Duration, error)

// probe fills p by connecting opts.Tries times to to's WAN address. It returns
// an error only when probing cannot go on: the context ended, or a network
// namespace cannot be entered for lack of privilege or a stale inventory.
func probe(ctx context.Context, p *Probe, dial dialFunc, to netip.Addr, opts MatrixOptions) error {
	if !to.IsValid() {
		// A DC without a container has no address: nothing can reach it.
		p.Tries, p.Reach, p.Err = opts.Tries, ReachCut, "no WAN address"
		return nil
	}
	addr := netip.AddrPortFrom(to, NodePort).String()
	var rtts []time.Duration
	for range opts.Tries {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("lab: probe %s→%s: %w", p.From, p.To, err)
		}
		conn, rtt, err := dial(ctx, addr, opts.Timeout)
		var nerr *netnsError
		switch {
		case errors.As(err, &nerr) && errors.Is(err, fs.ErrNotExist) && nerr.op == "open":
			// The source's process ended since the inventory was taken.
			p.Tries, p.OK, p.Reach, p.Err = 0, 0, ReachDown, err.Error()
			return nil
		case errors.As(err, &nerr) && errors.Is(err, fs.ErrPermission):
			return fmt.Errorf("lab: probe %s→%s: %w (entering a DC's network namespace needs root, CAP_SYS_ADMIN)", p.From, p.To, err)
		case errors.As(err, &nerr):
			return fmt.Errorf("lab: probe %s→%s: %w", p.From, p.To, err)
		case err != nil:
			if ctx.Err() != nil {
				return fmt.Errorf("lab: probe %s→%s: %w", p.From, p.To, ctx.Err())
			}
			p.Err = err.Error()
		default:
			if k, ok := handshakeRTT(conn); ok {
				rtt = k
			}
			conn.Close()
			p.OK++
			rtts = append(rtts, rtt)
		}
		p.Tries++
	}
	p.Reach = classify(p.OK, p.Tries)
	p.RTT = median(rtts)
	return nil
}

// median returns the median of ds (the mean of the middle two for an even
// count), or 0 when ds is empty. It sorts ds.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	n := len(ds)
	if n%2 == 1 {
		return ds[n/2]
	}
	return (ds[n/2-1] + ds[n/2]) / 2
}

// dialHost connects to addr from the host's network namespace.
func dialHost(ctx context.Context, addr string, timeout time.Duration) (net.Conn, time.Duration, error) {
	d := net.Dialer{Timeout: timeout}
	start := time.Now()
	conn, err := d.DialContext(ctx, "tcp", addr)
	return conn, time.Since(start), err
}

// errSameNetns means a namespace path led back to the caller's own
// namespace: the pid no longer belongs to the container it was taken from.
var errSameNetns = errors.New("is the host's own network namespace (inventory stale? inspect the lab again)")

// netnsError is a failure to enter or leave a network namespace, as opposed
// to a failed connect.
type netnsError struct {
	op, path string
	err      error
}

func (e *netnsError) Error() string {
	return "network namespace " + e.path + ": " + e.op + ": " + e.err.Error()
}

func (e *netnsError) Unwrap() error { return e.err }

// dialInNetns connects over TCP to addr from inside the network namespace at
// nsPath (such as /proc/PID/ns/net) and returns the connection and how long
// the connect took. The socket is created in that namespace and stays there;
// the caller closes it. Failures to enter or leave the namespace are
// *netnsError.
//
// The work happens on a goroutine of its own, locked to its OS thread while
// the thread is in the other namespace. If the thread cannot be switched
// back, it stays locked so that it ends with the goroutine and no other code
// ever runs in the wrong namespace.
func dialInNetns(ctx context.Context, nsPath, addr string, timeout time.Duration) (net.Conn, time.Duration, error) {
	type result struct {
		conn net.Conn
		rtt  time.Duration
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		conn, rtt, restored, err := dialLocked(ctx, nsPath, addr, timeout)
		if restored {
			runtime.UnlockOSThread()
		}
		ch <- result{conn, rtt, err}
	}()
	r := <-ch
	return r.conn, r.rtt, r.err
}

// dialLocked is dialInNetns on a goroutine locked to its thread. restored is
// false when the thread may be left in the target namespace.
func dialLocked(ctx context.Context, nsPath, addr string, timeout time.Duration) (conn net.Conn, rtt time.Duration, restored bool, err error) {
	target, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, 0, true, &netnsError{"open", nsPath, err}
	}
	defer target.Close()
	orig, err := netns.Get()
	if err != nil {
		return nil, 0, true, &netnsError{"open own", "of this thread", err}
	}
	defer orig.Close()
	if orig.Equal(target) {
		return nil, 0, true, &netnsError{"check", nsPath, errSameNetns}
	}
	// setns(2) changes nothing when it fails: the thread is still at home.
	if err := netns.Set(target); err != nil {
		return nil, 0, true, &netnsError{"enter", nsPath, err}
	}
	d := net.Dialer{Timeout: timeout}
	start := time.Now()
	conn, err = d.DialContext(ctx, "tcp", addr)
	rtt = time.Since(start)
	if rerr := netns.Set(orig); rerr != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, 0, false, &netnsError{"return from", nsPath, rerr}
	}
	return conn, rtt, true, err
}

// Get returns the probe from one DC, or from [MatrixClient], to another.
func (m *Matrix) Get(from, to string) (Probe, bool) {
	list := m.Probes
	if from == MatrixClient {
		list = m.Client
	}
	for _, p := range list {
		if p.From == from && p.To == to {
			return p, true
		}
	}
	return Probe{}, false
}

// Diff lists the probes whose Reach differs between m and other, one line
// each such as "hz-a→sh-a: ok → cut", in m's order followed by probes only
// other has. A probe missing on one side shows as "none".
func (m *Matrix) Diff(other *Matrix) []string {
	if other == nil {
		other = &Matrix{}
	}
	var out []string
	line := func(from, to string, a, b Reach) string {
		none := func(r Reach) string {
			if r == "" {
				return "none"
			}
			return string(r)
		}
		return from + "→" + to + ": " + none(a) + " → " + none(b)
	}
	all := func(x *Matrix) []Probe { return slices.Concat(x.Probes, x.Client) }
	for _, p := range all(m) {
		q, _ := other.Get(p.From, p.To)
		if q.Reach != p.Reach {
			out = append(out, line(p.From, p.To, p.Reach, q.Reach))
		}
	}
	for _, q := range all(other) {
		if _, ok := m.Get(q.From, q.To); !ok {
			out = append(out, line(q.From, q.To, "", q.Reach))
		}
	}
	return out
}

// link returns the topology's link between two DCs of l.
func (l *Lab) link(a, b string) (topology.Link, bool) {
	if l.Topology == nil {
		return topology.Link{}, false
	}
	return l.Topology.Link(a, b)
}

// Format writes the matrix as a table grouped by city: one row per source
// DC and a last row for the client, one column per destination DC. A cell is
// the probe's Reach ("lossy" with the count of connects that succeeded), "-"
// on the diagonal; withRTT adds the median connect time and, in
// parentheses, the round trip the topology gives the link, where a
// connect succeeded.
func (m *Matrix) Format(w io.Writer, withRTT bool) error {
	const gap = 2
	const minCell = len(ReachLossy)
	type group struct {
		city string
		dcs  []string
	}
	var groups []group
	for _, c := range m.Cities {
		groups = append(groups, group{city: c})
	}
	for _, d := range m.DCs {
		i := slices.IndexFunc(groups, func(g group) bool { return g.city == d.City })
		if i < 0 {
			groups = append(groups, group{city: d.City})
			i = len(groups) - 1
		}
		groups[i].dcs = append(groups[i].dcs, d.ID)
	}
	groups = slices.DeleteFunc(groups, func(g group) bool { return len(g.dcs) == 0 })
	var order []string
	for _, g := range groups {
		order = append(order, g.dcs...)
	}

	cell := func(from, to string) string {
		if from == to {
			return "-"
		}
		p, ok := m.Get(from, to)
		if !ok {
			return "?"
		}
		s := string(p.Reach)
		if p.Reach == ReachLossy {
			s += " " + strconv.Itoa(p.OK) + "/" + strconv.Itoa(p.Tries)
		}
		if withRTT && p.RTT > 0 {
			s += " " + formatRTT(p.RTT)
			if p.TopologyRTT > 0 {
				s += " (" + formatRTT(p.TopologyRTT) + ")"
			}
		}
		return s
	}
	sources := append(slices.Clone(order), MatrixClient)
	cells := map[[2]string]string{}
	width := map[string]int{}
	for _, to := range order {
		width[to] = max(len(to), minCell)
		for _, from := range sources {
			c := cell(from, to)
			cells[[2]string{from, to}] = c
			width[to] = max(width[to], len(c))
		}
		width[to] += gap
	}
	// A city's name spans its columns; widen the last one if it does not fit.
	for _, g := range groups {
		span := 0
		for _, id := range g.dcs {
			span += width[id]
		}
		if need := len(g.city) + gap; span < need {
			width[g.dcs[len(g.dcs)-1]] += need - span
		}
	}
	cityW, dcW := len(MatrixClient), 0
	for _, g := range groups {
		cityW = max(cityW, len(g.city))
		for _, id := range g.dcs {
			dcW = max(dcW, len(id))
		}
	}
	cityW += gap
	dcW += gap
	const corner = `from \ to`
	if need := len(corner) + gap; cityW+dcW < need {
		dcW = need - cityW
	}

	var b strings.Builder
	pad := func(s string, n int) { b.WriteString(s + strings.Repeat(" ", max(n-len(s), 0))) }
	var out strings.Builder
	flush := func() { // ends the line in b
		out.WriteString(strings.TrimRight(b.String(), " ") + "\n")
		b.Reset()
	}

	pad("", cityW+dcW)
	for _, g := range groups {
		span := 0
		for _, id := range g.dcs {
			span += width[id]
		}
		pad(g.city, span)
	}
	flush()
	pad(corner, cityW+dcW)
	for _, id := range order {
		pad(id, width[id])
	}
	flush()
	for _, g := range groups {
		for i, from := range g.dcs {
			label := ""
			if i == 0 {
				label = g.city
			}
			pad(label, cityW)
			pad(from, dcW)
			for _, to := range order {
				pad(cells[[2]string{from, to}], width[to])
			}
			flush()
		}
	}
	pad(MatrixClient, cityW+dcW)
	for _, to := range order {
		pad(cells[[2]string{MatrixClient, to}], width[to])
	}
	flush()
	if _, err := io.WriteString(w, out.String()); err != nil {
		return fmt.Errorf("lab: write matrix: %w", err)
	}
	return nil
}

// formatRTT writes d in milliseconds, with two decimals below 1 ms and one
// above: "0.04ms", "12.5ms".
func formatRTT(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms < 0.005:
		return "<0.01ms"
	case ms < 1:
		return strconv.FormatFloat(ms, 'f', 2, 64) + "ms"
	}
	return strconv.FormatFloat(ms, 'f', 1, 64) + "ms"
}
