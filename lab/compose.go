package lab

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/goccy/go-yaml"

	"github.com/fibercut/fibercut/topology"
)

// ComposeOptions says which lab a compose file describes.
type ComposeOptions struct {
	Name     string             // lab name; DefaultName when empty
	Topology *topology.Topology // the default topology when nil
	// WAN and Mgmt are the two networks' subnets: /24s, or larger, that no
	// other network on the host uses. Compose needs them fixed.
	WAN, Mgmt netip.Prefix
	// Image is the node image the file names and builds ("fibercut-node:compose"
	// when empty), from a Dockerfile beside the file.
	Image string
}

// ComposeDockerfile builds the node image for a compose lab from a static
// fibercut binary placed beside it: the image `lab up` imports, as a build.
const ComposeDockerfile = `# The fibercut node image: the static binary alone. Build it first:
#   CGO_ENABLED=0 go build -o fibercut ./cmd/fibercut   (from the repository root,
#   then copy it here)
FROM scratch
COPY fibercut /fibercut
LABEL ` + LabelImage + `=node
ENV ` + EnvDataDir + `=` + DataDir + `
ENTRYPOINT ["/fibercut"]
CMD ["node"]
`

// Compose writes a docker-compose file (format 2.4, which docker-compose
// 1.29 reads) for the same lab [Up] would make: the same container,
// network and volume names, labels, addresses and environment, so that
// `fibercut lab status`, `fault` and `load` work on it as on a lab
// made by `lab up`. Only the subnets are fixed, and the image is built
// from [ComposeDockerfile] rather than imported ([Up] on such a lab
// replaces its containers, their image being another).
func Compose(opts ComposeOptions) ([]byte, error) {
	name, topo, topoYAML, err := labIdentity(opts.Name, opts.Topology)
	if err != nil {
		return nil, err
	}
	for _, p := range []struct {
		flag string
		p    netip.Prefix
	}{{"WAN", opts.WAN}, {"management", opts.Mgmt}} {
		if !p.p.IsValid() || !p.p.Addr().Is4() || p.p.Bits() > 24 {
			return nil, fmt.Errorf("lab: compose: %s subnet %v: want an IPv4 prefix of /24 or larger, such as 10.208.0.0/24", p.flag, p.p)
		}
	}
	if opts.WAN.Overlaps(opts.Mgmt) {
		return nil, fmt.Errorf("lab: compose: WAN subnet %s and management subnet %s overlap", opts.WAN, opts.Mgmt)
	}
	wan := Network{Kind: NetWAN, Name: networkName(name, NetWAN), Subnet: opts.WAN.Masked(), Gateway: Network{Subnet: opts.WAN.Masked()}.hostAddr(1)}
	mgmt := Network{Kind: NetMgmt, Name: networkName(name, NetMgmt), Subnet: opts.Mgmt.Masked(), Gateway: Network{Subnet: opts.Mgmt.Masked()}.hostAddr(1)}
	img := Image{Ref: cmpOr(opts.Image, "fibercut-node:compose")}

	var services yaml.MapSlice
	volumes := yaml.MapSlice{}
	for _, s := range specs(name, topo, string(topoYAML), img, wan, mgmt, 0, 0, false, nil, nil) {
		svc := composeService{
			ContainerName: s.name, Hostname: cmpOr(s.labels[LabelDC], s.labels[LabelRole]),
			Image: img.Ref, Command: s.cmd, CapAdd: []string{"NET_ADMIN"},
			Labels:   s.labels,
			Networks: yaml.MapSlice{{Key: "wan", Value: composeEndpoint{IPv4: s.wanIP.String(), Aliases: []string{s.wanAlias}}}},
		}
		if s.mgmt != nil {
			svc.Networks = append(svc.Networks, yaml.MapItem{Key: "mgmt", Value: composeEndpoint{IPv4: s.mgmtIP.String(), Aliases: []string{s.mgmtAlias}}})
		}
		for _, e := range s.env {
			// Compose substitutes $VARIABLES in values; "$$" is a "$".
			svc.Environment = append(svc.Environment, strings.ReplaceAll(e, "$", "$$"))
		}
		if s.volume != "" {
			key := s.labels[LabelDC] + "-data"
			svc.Volumes = []string{key + ":" + DataDir}
			volumes = append(volumes, yaml.MapItem{Key: key, Value: composeVolume{Name: s.volume, Labels: s.labels}})
		}
		if s.publish != 0 {
			svc.Ports = []string{fmt.Sprint(s.publish)}
		}
		// Every service builds the image (from cache after the first), so
		// that none tries to pull it: there may be no registry.
		svc.Build = &composeBuild{Context: ".", Dockerfile: "Dockerfile"}
		key := cmpOr(s.labels[LabelDC], s.labels[LabelRole])
		services = append(services, yaml.MapItem{Key: key, Value: svc})
	}
	file := composeFile{
		Version:  "2.4",
		Services: services,
		Networks: yaml.MapSlice{
			{Key: "wan", Value: composeNetwork{Name: wan.Name, Driver: "bridge",
				IPAM:   composeIPAM{Config: []composeSubnet{{Subnet: wan.Subnet.String(), Gateway: wan.Gateway.String()}}},
				Labels: map[string]string{LabelLab: name, LabelNet: NetWAN, LabelTopology: strings.ReplaceAll(string(topoYAML), "$", "$$")}}},
			{Key: "mgmt", Value: composeNetwork{Name: mgmt.Name, Driver: "bridge",
				IPAM:   composeIPAM{Config: []composeSubnet{{Subnet: mgmt.Subnet.String(), Gateway: mgmt.Gateway.String()}}},
				Labels: map[string]string{LabelLab: name, LabelNet: NetMgmt}}},
		},
		Volumes: volumes,
	}
	body, err := yaml.MarshalWithOptions(file, yaml.UseLiteralStyleIfMultiline(true), yaml.IndentSequence(true))
	if err != nil {
		return nil, fmt.Errorf("lab: compose: %w", err)
	}
	head := fmt.Sprintf("# fibercut lab %q, topology %s, for docker-compose 1.29 (file format 2.4).\n"+
		"# Made by `fibercut lab compose`; see labs/compose/README.md. Put a static\n"+
		"# fibercut binary beside this file, then: docker-compose up -d --build\n", name, topo.Name)
	return append([]byte(head), body...), nil
}

type composeFile struct {
	Version  string        `yaml:"version"`
	Services yaml.MapSlice `yaml:"services"`
	Networks yaml.MapSlice `yaml:"networks"`
	Volumes  yaml.MapSlice `yaml:"volumes"`
}

type composeService struct {
	Build         *composeBuild     `yaml:"build,omitempty"`
	Image         string            `yaml:"image"`
	ContainerName string            `yaml:"container_name"`
	Hostname      string            `yaml:"hostname"`
	Command       []string          `yaml:"command"`
	CapAdd        []string          `yaml:"cap_add"`
	Labels        map[string]string `yaml:"labels"`
	Environment   []string          `yaml:"environment"`
	Networks      yaml.MapSlice     `yaml:"networks"`
	Volumes       []string          `yaml:"volumes,omitempty"`
	Ports         []string          `yaml:"ports,omitempty"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

type composeEndpoint struct {
	IPv4    string   `yaml:"ipv4_address"`
	Aliases []string `yaml:"aliases"`
}

type composeNetwork struct {
	Name   string            `yaml:"name"`
	Driver string            `yaml:"driver"`
	IPAM   composeIPAM       `yaml:"ipam"`
	Labels map[string]string `yaml:"labels"`
}

type composeIPAM struct {
	Config []composeSubnet `yaml:"config"`
}

type composeSubnet struct {
	Subnet  string `yaml:"subnet"`
	Gateway string `yaml:"gateway"`
}

type composeVolume struct {
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels"`
}

func cmpOr(s ...string) string {
	if i := slices.IndexFunc(s, func(v string) bool { return v != "" }); i >= 0 {
		return s[i]
	}
	return ""
}

// Files of a compose lab directory.
const (
	ComposeFile       = "docker-compose.yml"
	ComposeDockerName = "Dockerfile"
	ComposeBinary     = "fibercut" // the static binary the Dockerfile copies
)

// WriteComposeDir writes a compose lab into dir (created if need be): the
// compose file, the Dockerfile and, when binary is not empty, a copy of that
// static fibercut binary. It refuses a dynamic binary, which could not run
// in the scratch image. It returns the paths written.
func WriteComposeDir(dir string, opts ComposeOptions, binary string) ([]string, error) {
	body, err := Compose(opts)
	if err != nil {
		return nil, err
	}
	if binary != "" {
		static, err := IsStatic(binary)
		if err != nil {
			return nil, err
		}
		if !static {
			return nil, fmt.Errorf("lab: compose: %s is dynamically linked and cannot run in the scratch image; build it with CGO_ENABLED=0: %w", binary, ErrDynamicBinary)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lab: compose: %w", err)
	}
	files := map[string][]byte{ComposeFile: body, ComposeDockerName: []byte(ComposeDockerfile)}
	var written []string
	for _, n := range []string{ComposeFile, ComposeDockerName} {
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, files[n], 0o644); err != nil {
			return written, fmt.Errorf("lab: compose: %w", err)
		}
		written = append(written, p)
	}
	if binary != "" {
		p := filepath.Join(dir, ComposeBinary)
		if err := copyFile(binary, p, 0o755); err != nil {
			return written, fmt.Errorf("lab: compose: copy the binary: %w", err)
		}
		written = append(written, p)
	}
	return written, nil
}

func copyFile(from, to string, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(to), ".fibercut-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), to)
}
