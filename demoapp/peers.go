package demoapp

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"
)

// resolveEvery bounds how often a node looks up its peers' names: a
// request from an unknown address can make it look them up again, at most
// this often, so strangers cannot make it resolve more.
const resolveEvery = time.Second

// peerNames tells which peer a request comes from when peers go by name:
// it keeps the addresses their names resolved to, and looks them up again
// when a request comes from an address it does not know (a peer that
// restarted with a new address).
type peerNames struct {
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	now    func() time.Time

	mu    sync.Mutex
	at    time.Time             // of the last lookup
	addrs map[netip.Addr]string // address → DC
}

func newPeerNames() *peerNames {
	return &peerNames{
		lookup: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
		},
		now: time.Now,
	}
}

// dcOf returns the DC among peers (but self) whose name resolves to a.
func (r *peerNames) dcOf(a netip.Addr, peers map[string]Peer, self string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if dc, ok := r.addrs[a]; ok {
		return dc, true
	}
	if now := r.now(); r.addrs == nil || now.Sub(r.at) >= resolveEvery {
		r.at = now
		r.addrs = r.resolve(peers, self)
	}
	dc, ok := r.addrs[a]
	return dc, ok
}

// resolve looks up every named peer at once, each for at most half a
// second; a name that does not resolve counts for nothing.
func (r *peerNames) resolve(peers map[string]Peer, self string) map[netip.Addr]string {
	ctx, cancel := context.WithTimeout(context.Background(), resolveEvery/2)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	out := map[netip.Addr]string{}
	for dc, p := range peers {
		if dc == self || p.Host == "" {
			continue
		}
		wg.Go(func() {
			as, err := r.lookup(ctx, p.Host)
			if err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, a := range as {
				out[a.Unmap()] = dc
			}
		})
	}
	wg.Wait()
	return out
}
