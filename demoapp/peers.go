package demoapp

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
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

	// addrs maps address → DC as of the last lookup; a request from a
	// known address reads it without waiting for anything.
	addrs  atomic.Pointer[map[netip.Addr]string]
	flight singleflight.Group // one lookup at a time
	at     time.Time          // of the last lookup; only the flight touches it
}

func newPeerNames() *peerNames {
	return &peerNames{
		lookup: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
		},
		now: time.Now,
	}
}

// dcOf returns the DC among peers (but self) whose name resolves to a. An
// unknown address makes the names be looked up again, at most once every
// resolveEvery; requests from unknown addresses meanwhile share that one
// lookup, and requests from known ones never wait for it.
func (r *peerNames) dcOf(a netip.Addr, peers map[string]Peer, self string) (string, bool) {
	if m := r.addrs.Load(); m != nil {
		if dc, ok := (*m)[a]; ok {
			return dc, true
		}
	}
	v, _, _ := r.flight.Do("resolve", func() (any, error) {
		if now := r.now(); r.addrs.Load() == nil || now.Sub(r.at) >= resolveEvery {
			r.at = now
			m := r.resolve(peers, self)
			r.addrs.Store(&m)
		}
		return r.addrs.Load(), nil
	})
	m, _ := v.(*map[netip.Addr]string)
	if m == nil {
		return "", false
	}
	dc, ok := (*m)[a]
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
