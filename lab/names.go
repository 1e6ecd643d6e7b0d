package lab

import (
	"fmt"
	"regexp"

	"github.com/fibercut/fibercut/nodeapi"
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

// The node contract is package nodeapi's; the lab writes it.
const (
	EnvLab            = nodeapi.EnvLab
	EnvDC             = nodeapi.EnvDC
	EnvCity           = nodeapi.EnvCity
	EnvTopology       = nodeapi.EnvTopology
	EnvDataDir        = nodeapi.EnvDataDir
	EnvPeers          = nodeapi.EnvPeers
	EnvGatewayRecord  = nodeapi.EnvGatewayRecord
	EnvGatewayTrusted = nodeapi.EnvGatewayTrusted
	EnvAudienceMax    = nodeapi.EnvAudienceMax
	EnvClientLimits   = nodeapi.EnvClientLimits

	NodePort          = nodeapi.NodePort
	GatewayPort       = nodeapi.GatewayPort
	GatewayRecordPort = nodeapi.GatewayRecordPort
	HealthPath        = nodeapi.HealthPath
	DataDir           = nodeapi.DataDir
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
