package demoapp

import (
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// The gateway's defences against a hall of strangers. Its public port
// faces a conference Wi-Fi: every request is small, every connection
// bounded in time, every client in rate, and the hall in size. The lab's
// own host (the load generator, the speaker's tools) is trusted: it comes
// from the WAN bridge's address, which no phone can have.
const (
	// Server timeouts of the public port (and of the nodes).
	serverReadHeaderTimeout = 5 * time.Second
	serverReadTimeout       = 5 * time.Second // a whole request, body included
	serverWriteTimeout      = 10 * time.Second
	serverIdleTimeout       = 30 * time.Second
	serverMaxHeaderBytes    = 8 << 10
	// MaxGatewayConns bounds the public port's open connections
	// (netutil.LimitListener: past it, new ones wait in the backlog).
	MaxGatewayConns = 4096

	// Per client address: account openings and transfers (reads are not
	// limited: the page polls its balance).
	OpensPerSecond     = 0.5
	OpensBurst         = 5
	TransfersPerSecond = 10
	TransfersBurst     = 20

	// DefaultAudienceMax is how many accounts the hall may open per drill
	// (GatewayConfig.AudienceMax).
	DefaultAudienceMax = 10_000

	// maxGatewayUsers bounds what the gateway remembers of accounts (their
	// home and serving DC); past it, accounts are looked up on each call.
	maxGatewayUsers = 200_000
	// maxLimited bounds the client addresses whose rates are tracked;
	// past it the table starts again empty.
	maxLimited = 100_000
)

// Rate is a token bucket: PerSecond requests a second on average, Burst at
// once.
type Rate struct {
	PerSecond float64
	Burst     int
}

// ClientLimits are the per-address rates of the gateway's public API.
// The defaults suit a hall whose phones each have their own address (a
// venue's Wi-Fi); behind a tunnel or proxy the whole hall shares one
// address, and the speaker raises them or turns them off (`lab up
// --client-limits`).
type ClientLimits struct {
	Off       bool // no per-address limits (the other defences stay)
	Opens     Rate
	Transfers Rate
}

// DefaultClientLimits: 5 openings at once then one every 2 s, 20
// transfers at once then 10 a second.
var DefaultClientLimits = ClientLimits{Opens: Rate{OpensPerSecond, OpensBurst}, Transfers: Rate{TransfersPerSecond, TransfersBurst}}

// ParseClientLimits reads "off", or a comma-separated list of
// opens=RATE/BURST and transfers=RATE/BURST (RATE a second, more than 0;
// BURST a whole number, 1 or more); what the list leaves out keeps its
// default. "" is the defaults.
func ParseClientLimits(s string) (ClientLimits, error) {
	lim := DefaultClientLimits
	if s == "" {
		return lim, nil
	}
	if s == "off" {
		lim.Off = true
		return lim, nil
	}
	const valid = `want "off" or opens=RATE/BURST,transfers=RATE/BURST, e.g. opens=20/200,transfers=500/1000 (RATE a second, BURST at once)`
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		var r *Rate
		switch name {
		case "opens":
			r = &lim.Opens
		case "transfers":
			r = &lim.Transfers
		}
		if !ok || r == nil || seen[name] {
			return ClientLimits{}, fmt.Errorf("client limits %q: %q: %s", s, part, valid)
		}
		seen[name] = true
		perSecond, burst, ok := strings.Cut(val, "/")
		ps, err1 := strconv.ParseFloat(perSecond, 64)
		b, err2 := strconv.Atoi(burst)
		if !ok || err1 != nil || err2 != nil || !(ps > 0) || math.IsInf(ps, 0) || b < 1 {
			return ClientLimits{}, fmt.Errorf("client limits %q: %s: %q is not RATE/BURST with RATE > 0 and BURST ≥ 1: %s", s, name, val, valid)
		}
		*r = Rate{ps, b}
	}
	return lim, nil
}

// String is the form ParseClientLimits reads.
func (c ClientLimits) String() string {
	if c.Off {
		return "off"
	}
	f := func(r Rate) string {
		return strconv.FormatFloat(r.PerSecond, 'g', -1, 64) + "/" + strconv.Itoa(r.Burst)
	}
	return "opens=" + f(c.Opens) + ",transfers=" + f(c.Transfers)
}

// limiter holds a token bucket per client address.
type limiter struct {
	every rate.Limit
	burst int

	mu      sync.Mutex
	clients map[netip.Addr]*rate.Limiter
}

// newLimiter is r's bucket for each address; off lets every request
// through.
func newLimiter(r Rate, off bool) *limiter {
	if off {
		return &limiter{every: rate.Inf}
	}
	return &limiter{every: rate.Limit(r.PerSecond), burst: r.Burst, clients: map[netip.Addr]*rate.Limiter{}}
}

// wait says how long the client must wait before its next request; 0 lets
// it through now (and spends a token).
func (l *limiter) wait(client netip.Addr, now time.Time) time.Duration {
	if l.every == rate.Inf {
		return 0
	}
	l.mu.Lock()
	lim, ok := l.clients[client]
	if !ok {
		if len(l.clients) >= maxLimited {
			l.clients = map[netip.Addr]*rate.Limiter{}
		}
		lim = rate.NewLimiter(l.every, l.burst)
		l.clients[client] = lim
	}
	l.mu.Unlock()
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now) // a refused request spends nothing
		return d
	}
	return 0
}

// clientAddr is the address a request came from.
func clientAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// trusted reports whether a request comes from the lab's own host.
func (g *gateway) trusted(r *http.Request) bool {
	return g.cfg.Trusted.IsValid() && clientAddr(r) == g.cfg.Trusted
}

// limited wraps a public handler with a client's rate: past it the answer
// is 429 with Retry-After, and nothing is applied. The lab's host is not
// limited.
func (g *gateway) limited(l *limiter, what string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !g.trusted(r) {
			if d := l.wait(clientAddr(r), time.Now()); d > 0 {
				secs := int(math.Ceil(d.Seconds()))
				w.Header().Set("Retry-After", strconv.Itoa(secs))
				writeJSON(w, http.StatusTooManyRequests, ErrorResponse{Error: fmt.Sprintf(
					"too many %s from your address: retry in %d s (nothing was applied)", what, secs)})
				return
			}
		}
		next(w, r)
	}
}

// hardened returns a server for a port strangers reach: every phase of a
// request bounded in time, headers in size.
func hardened(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: serverReadHeaderTimeout, ReadTimeout: serverReadTimeout,
		WriteTimeout: serverWriteTimeout, IdleTimeout: serverIdleTimeout, MaxHeaderBytes: serverMaxHeaderBytes}
}
