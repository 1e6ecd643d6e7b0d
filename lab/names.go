package lab

import (
	"fmt"
	"regexp"
)

// DefaultName is the lab name used when none is given.
const DefaultName = "default"

// Labels fibercut puts on every object it creates. Only objects carrying
// LabelLab are ever changed or removed.
const (
	LabelLab      = "fibercut.lab"      // lab name, on every object
	LabelCity     = "fibercut.city"     // city of a DC container
	LabelDC       = "fibercut.dc"       // DC id of a container or volume
	LabelRole     = "fibercut.role"     // "dc" for DC containers
	LabelNet      = "fibercut.net"      // "wan" or "mgmt" on networks
	LabelTopology = "fibercut.topology" // the topology as YAML, on the WAN network
	LabelImage    = "fibercut.image"    // on the node image
)

// Roles of containers.
const (
	RoleDC      = "dc"
	RoleGateway = "gateway" // the entry layer, outside every DC
)

// Network kinds.
const (
	NetWAN  = "wan"
	NetMgmt = "mgmt"
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

	NodePort    = 7100
	GatewayPort = 8080
	// GatewayRecordPort serves the gateway's audience record on its
	// management address only: never published, not on the WAN.
	GatewayRecordPort = 8081
	HealthPath        = "/healthz"
	DataDir           = "/data"
)

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,19}$`)

// ValidateName reports whether name can name a lab: it becomes part of
// container, network and volume names.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("lab: invalid lab name %q: use 1-20 lowercase letters, digits or '-', starting with a letter", name)
	}
	return nil
}

// WANName is the DNS name that resolves, through Docker's embedded DNS, to a
// DC's WAN address only. The bare DC id is also the container's hostname,
// which Docker registers on every network the container joins, so it may
// resolve to the management address: peers must use WANName (or the WAN IP
// from the inventory) so that their traffic crosses the links faults cut.
func WANName(dc string) string { return dc + ".wan" }

// MgmtName resolves to a DC's management address only.
func MgmtName(dc string) string { return dc + ".mgmt" }

func containerName(lab, dc string) string { return "fibercut-" + lab + "-" + dc }
func volumeName(lab, dc string) string    { return "fibercut-" + lab + "-" + dc + "-data" }
func networkName(lab, kind string) string { return "fibercut-" + lab + "-" + kind }
