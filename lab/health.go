package lab

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fibercut/fibercut/nodeapi"
)

// Health is what a node's health endpoint answers ([nodeapi.Health]).
type Health = nodeapi.Health

// LedgerOK is the Ledger value of a DC that can commit.
const LedgerOK = nodeapi.LedgerOK

// ProbeHealth asks the node at addr for its health and checks that it is the
// expected DC of the expected lab.
func ProbeHealth(ctx context.Context, addr netip.Addr, lab, dc string) error {
	return nodeapi.ProbeHealth(ctx, addr, lab, dc)
}

// ProbeHealthAt is [ProbeHealth] for a node listening on another port.
func ProbeHealthAt(ctx context.Context, ap netip.AddrPort, lab, dc string) error {
	return nodeapi.ProbeHealthAt(ctx, ap, lab, dc)
}

// FetchHealth returns what the node at addr answers on its health endpoint.
func FetchHealth(ctx context.Context, addr netip.Addr) (Health, error) {
	return nodeapi.FetchHealth(ctx, addr)
}

// CheckHealth probes every running DC over the management network, and the
// gateway over the WAN, and sets their Health.
func (l *Lab) CheckHealth(ctx context.Context) {
	var wg sync.WaitGroup
	if gw := l.Gateway; gw != nil {
		wg.Go(func() {
			gw.Health = "ok"
			if err := ProbeHealthAt(ctx, netip.AddrPortFrom(gw.WANIP, GatewayPort), l.Name, RoleGateway); err != nil {
				gw.Health = err.Error()
			}
		})
	}
	for i := range l.DCs {
		d := &l.DCs[i]
		if d.State != "running" {
			d.Health = "down (" + d.State + ")"
			continue
		}
		wg.Go(func() {
			if err := ProbeHealth(ctx, d.MgmtIP, l.Name, d.ID); err != nil {
				d.Health = err.Error()
				return
			}
			d.Health = "ok"
		})
	}
	wg.Wait()
}

// WaitHealthy polls every DC's health endpoint until all answer or timeout
// passes; then it returns an error naming the DCs that did not answer.
func (l *Lab) WaitHealthy(ctx context.Context, timeout time.Duration) error {
	return l.waitHealthy(ctx, timeout, nil)
}

// waitHealthy is WaitHealthy, but does not wait for the DCs in skip.
func (l *Lab) waitHealthy(ctx context.Context, timeout time.Duration, skip []string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		fail []string
	)
	for i := range l.DCs {
		d := &l.DCs[i]
		if slices.Contains(skip, d.ID) {
			continue
		}
		wg.Go(func() {
			tick := time.NewTicker(25 * time.Millisecond)
			defer tick.Stop()
			for {
				err := ProbeHealth(ctx, d.MgmtIP, l.Name, d.ID)
				if err == nil {
					d.Health = "ok"
					return
				}
				d.Health = err.Error()
				select {
				case <-ctx.Done():
					mu.Lock()
					fail = append(fail, d.ID+" ("+d.Container+" at "+d.MgmtIP.String()+":"+strconv.Itoa(NodePort)+": "+err.Error()+")")
					mu.Unlock()
					return
				case <-tick.C:
				}
			}
		})
	}
	if gw := l.Gateway; gw != nil {
		wg.Go(func() {
			for {
				// The gateway is ready when it answers and sees every DC
				// that is up as healthy: before that it sends new users
				// only to the DCs it has seen.
				err := ProbeHealthAt(ctx, netip.AddrPortFrom(gw.WANIP, GatewayPort), l.Name, RoleGateway)
				if err == nil {
					err = gatewaySeesAll(ctx, netip.AddrPortFrom(gw.WANIP, GatewayPort), l.DCs, skip)
				}
				if err == nil {
					gw.Health = "ok"
					return
				}
				gw.Health = err.Error()
				select {
				case <-ctx.Done():
					mu.Lock()
					fail = append(fail, "gateway ("+gw.Container+": "+err.Error()+")")
					mu.Unlock()
					return
				case <-time.After(25 * time.Millisecond):
				}
			}
		})
	}
	wg.Wait()
	if len(fail) > 0 {
		return fmt.Errorf("lab %q: %d of %d DCs did not answer within %s: %s; see `docker logs CONTAINER`",
			l.Name, len(fail), len(l.DCs), timeout, strings.Join(fail, ", "))
	}
	return nil
}

// gatewaySeesAll returns an error naming the DCs, other than those in skip,
// that the gateway at ap does not see as healthy.
func gatewaySeesAll(ctx context.Context, ap netip.AddrPort, dcs []DC, skip []string) error {
	view, err := nodeapi.FetchGatewayView(ctx, ap)
	if err != nil {
		return err
	}
	healthy := map[string]bool{}
	for _, d := range view {
		healthy[d.DC] = d.Healthy
	}
	var not []string
	for _, d := range dcs {
		if !slices.Contains(skip, d.ID) && !healthy[d.ID] {
			not = append(not, d.ID)
		}
	}
	if len(not) > 0 {
		return fmt.Errorf("does not yet see %s as healthy", strings.Join(not, ", "))
	}
	return nil
}
