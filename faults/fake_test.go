package faults

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fibercut/fibercut/lab"
)

// fakeBackend is the container side of a lab in memory: DC states and, per
// DC, what the fibercut table and qdisc hold. A powered-on DC gets a new,
// empty namespace, as a container does.
type fakeBackend struct {
	mu   sync.Mutex
	lab  *lab.Lab
	ns   map[string]*fakeNS
	fail map[string]error // addFault in these DCs fails
	// onPause, when set, runs inside Pause (to look at the store while a
	// fault is being applied).
	onPause func()
	// failShares is how many of the next SetCPUShares calls fail.
	failShares int
	// inspectErr, when set, is what Inspect returns: an engine or a
	// cluster that does not answer.
	inspectErr error
}

type fakeNS struct {
	faults map[string]fakeFault // by fault id
	qdisc  *qdiscSpec
}

type fakeFault struct {
	adds  []setAdd
	until time.Time // zero: never expires
}

func newFakeBackend(l *lab.Lab) *fakeBackend {
	b := &fakeBackend{lab: l, ns: map[string]*fakeNS{}, fail: map[string]error{}}
	for _, d := range l.DCs {
		b.ns[d.ID] = &fakeNS{faults: map[string]fakeFault{}}
	}
	return b
}

func (b *fakeBackend) Inspect(context.Context) (*lab.Lab, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inspectErr != nil {
		return nil, b.inspectErr
	}
	c := *b.lab
	c.DCs = slices.Clone(b.lab.DCs)
	return &c, nil
}

func (b *fakeBackend) setState(dc, state string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, _ := b.lab.DC(dc)
	d.State = state
}

func (b *fakeBackend) state(dc string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, _ := b.lab.DC(dc)
	return d.State
}

func (b *fakeBackend) PowerOff(_ context.Context, d lab.DC) error {
	b.setState(d.ID, "exited")
	return nil
}

func (b *fakeBackend) PowerOn(_ context.Context, d lab.DC) error {
	if b.state(d.ID) == "running" {
		return nil
	}
	b.mu.Lock()
	b.ns[d.ID] = &fakeNS{faults: map[string]fakeFault{}}
	b.mu.Unlock()
	b.setState(d.ID, "running")
	return nil
}

func (b *fakeBackend) Pause(_ context.Context, d lab.DC, _ time.Time) error {
	if b.onPause != nil {
		b.onPause()
	}
	b.setState(d.ID, "paused")
	return nil
}

func (b *fakeBackend) Resume(_ context.Context, d lab.DC) error {
	if b.state(d.ID) == "paused" {
		b.setState(d.ID, "running")
	}
	return nil
}

func (b *fakeBackend) SetCPUShares(_ context.Context, d lab.DC, shares int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failShares > 0 {
		b.failShares--
		return fmt.Errorf("fake: update of dc %s refused", d.ID)
	}
	if dc, ok := b.lab.DC(d.ID); ok {
		dc.CPUShares = shares
	}
	return nil
}

func (b *fakeBackend) shares(dc string) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, _ := b.lab.DC(dc)
	return d.CPUShares
}

func (b *fakeBackend) Namespace(d lab.DC) (Namespace, error) {
	if s := b.state(d.ID); s != "running" {
		return nil, fmt.Errorf("fake: dc %s is %s", d.ID, s)
	}
	return &fakeHandle{b: b, dc: d.ID}, nil
}

// fakeHandle is a Namespace of the fake.
type fakeHandle struct {
	b  *fakeBackend
	dc string
}

func (h *fakeHandle) ns() *fakeNS { return h.b.ns[h.dc] }

func (h *fakeHandle) addFault(id string, adds []setAdd, timeout time.Duration) error {
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	if err := h.b.fail[h.dc]; err != nil {
		return err
	}
	f := fakeFault{adds: adds}
	if timeout > 0 {
		f.until = time.Now().Add(timeout)
	}
	h.ns().faults[id] = f
	return nil
}

func (h *fakeHandle) removeFaults(ids ...string) error {
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	for _, id := range ids {
		delete(h.ns().faults, id)
	}
	return nil
}

func (h *fakeHandle) faultIDs() ([]string, error) {
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	var ids []string
	for id := range h.ns().faults {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

func (h *fakeHandle) dropTable() (bool, error) {
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	had := len(h.ns().faults) > 0
	h.ns().faults = map[string]fakeFault{}
	return had, nil
}

func (h *fakeHandle) addQdisc(q qdiscSpec) error {
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	if h.ns().qdisc != nil {
		return fmt.Errorf("fake: dc %s already has a qdisc", h.dc)
	}
	h.ns().qdisc = &q
	return nil
}

func (h *fakeHandle) removeQdisc() (bool, error) {
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	had := h.ns().qdisc != nil
	h.ns().qdisc = nil
	return had, nil
}

func (h *fakeHandle) Close() {}

// inForce describes what the kernel would enforce now, a line per DC and
// fault: "hz-a f1 drop_in=[10.0.0.14]", "hz-a qdisc", "sz-a paused".
func (b *fakeBackend) inForce() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	var out []string
	for _, d := range b.lab.DCs {
		if d.State != "running" {
			out = append(out, d.ID+" "+d.State)
			continue
		}
		ns := b.ns[d.ID]
		for id, f := range ns.faults {
			if !f.until.IsZero() && !now.Before(f.until) {
				continue
			}
			var sets []string
			for _, a := range f.adds {
				sets = append(sets, fmt.Sprintf("%s=%v", a.Set, a.Addrs))
			}
			sort.Strings(sets)
			out = append(out, d.ID+" "+id+" "+strings.Join(sets, " "))
		}
		if ns.qdisc != nil {
			out = append(out, d.ID+" qdisc")
		}
	}
	sort.Strings(out)
	return out
}
