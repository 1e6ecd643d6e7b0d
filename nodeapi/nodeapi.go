// Package nodeapi is the contract between the lab and the processes it
// runs in its containers: the environment a node and the gateway read, the
// ports they listen on, and the health endpoint's JSON with the probes that
// read it. The lab (which writes the environment) and demoapp (which reads
// it) share it here, so that demoapp needs nothing of Docker. It needs no
// privileges: the probes are HTTP clients.
package nodeapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// The node contract: what `fibercut node` reads from its environment and
// where it serves its health endpoint.
const (
	EnvLab      = "FIBERCUT_LAB"
	EnvDC       = "FIBERCUT_DC"
	EnvCity     = "FIBERCUT_CITY"
	EnvTopology = "FIBERCUT_TOPOLOGY" // topology YAML
	EnvDataDir  = "FIBERCUT_DATA"
	EnvPeers    = "FIBERCUT_PEERS" // "hz-a=10.200.0.10,hz-b=10.200.0.11,...": every DC's WAN address
	// EnvGatewayRecord is where the gateway serves its audience record:
	// its management address and GatewayRecordPort.
	EnvGatewayRecord = "FIBERCUT_GATEWAY_RECORD"
	// EnvGatewayTrusted is the lab's host as the gateway sees it: the WAN
	// bridge's address.
	EnvGatewayTrusted = "FIBERCUT_GATEWAY_TRUSTED"
	// EnvAudienceMax bounds the accounts the hall may open per drill.
	EnvAudienceMax = "FIBERCUT_AUDIENCE_MAX"
	// EnvClientLimits sets the gateway's per-address rates
	// (demoapp.ParseClientLimits).
	EnvClientLimits = "FIBERCUT_CLIENT_LIMITS"

	NodePort = 7100
	// LedgerPeerPort and LedgerClientPort are a DC's ledger member's.
	LedgerPeerPort   = 2380
	LedgerClientPort = 2379
	GatewayPort      = 8080
	// GatewayRecordPort serves the gateway's audience record on its
	// management address only: never published, not on the WAN.
	GatewayRecordPort = 8081
	HealthPath        = "/healthz"
	// GatewayStatusPath is where the gateway says which DCs it sees as
	// healthy ([GatewayDC]).
	GatewayStatusPath = "/api/status"
	DataDir           = "/data"
)

// Health is what a node's health endpoint answers.
type Health struct {
	Lab     string `json:"lab"`
	DC      string `json:"dc"`
	City    string `json:"city"`
	Version string `json:"version,omitempty"`
	// Ledger is the state of the DC's ledger member: "ok" when the DC can
	// commit, otherwise why not ("starting", "no quorum"). Empty for nodes
	// without a ledger (the gateway).
	Ledger string `json:"ledger,omitempty"`
	// Leader is the DC of the ledger's leader, as this DC sees it.
	Leader string `json:"leader,omitempty"`
}

// LedgerOK is the Ledger value of a DC that can commit.
const LedgerOK = "ok"

// GatewayDC is one DC as the gateway sees it: the gateway sends users only
// to the DCs it sees as healthy.
type GatewayDC struct {
	DC      string `json:"dc"`
	City    string `json:"city"`
	Healthy bool   `json:"healthy"`
}

var healthClient = &http.Client{
	Timeout: 500 * time.Millisecond,
	Transport: &http.Transport{
		Proxy:             nil, // lab addresses are never behind a proxy
		DialContext:       (&net.Dialer{Timeout: 300 * time.Millisecond}).DialContext,
		DisableKeepAlives: true,
	},
}

// ProbeHealth asks the node at addr for its health and checks that it is the
// expected DC of the expected lab.
func ProbeHealth(ctx context.Context, addr netip.Addr, lab, dc string) error {
	if !addr.IsValid() {
		return fmt.Errorf("no address")
	}
	return ProbeHealthAt(ctx, netip.AddrPortFrom(addr, NodePort), lab, dc)
}

// ProbeHealthAt is [ProbeHealth] for a node listening on another port.
func ProbeHealthAt(ctx context.Context, ap netip.AddrPort, lab, dc string) error {
	return ProbeHealthHost(ctx, ap.String(), lab, dc)
}

// ProbeHealthHost is ProbeHealthAt for a node that goes by name: hostPort
// is "host:port".
func ProbeHealthHost(ctx context.Context, hostPort, lab, dc string) error {
	h, err := fetchHealth(ctx, hostPort)
	if err != nil {
		return err
	}
	if h.DC != dc || h.Lab != lab {
		return fmt.Errorf("health: answered as dc %q of lab %q", h.DC, h.Lab)
	}
	if h.Ledger != "" && h.Ledger != LedgerOK {
		return fmt.Errorf("ledger: %s", h.Ledger)
	}
	return nil
}

// FetchHealth returns what the node at addr answers on its health endpoint.
func FetchHealth(ctx context.Context, addr netip.Addr) (Health, error) {
	return fetchHealth(ctx, netip.AddrPortFrom(addr, NodePort).String())
}

func fetchHealth(ctx context.Context, hostPort string) (Health, error) {
	var h Health
	err := getJSON(ctx, "health", "http://"+hostPort+HealthPath, &h)
	return h, err
}

// FetchGatewayView returns which DCs the gateway at ap sees as healthy.
func FetchGatewayView(ctx context.Context, ap netip.AddrPort) ([]GatewayDC, error) {
	var v []GatewayDC
	err := getJSON(ctx, "gateway status", "http://"+ap.String()+GatewayStatusPath, &v)
	return v, err
}

// getJSON decodes the JSON answer to a GET of url into out; what names the
// endpoint in errors.
func getJSON(ctx context.Context, what, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := healthClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d", what, resp.StatusCode)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
