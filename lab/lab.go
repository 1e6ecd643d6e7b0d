package lab

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"
	"golang.org/x/sync/errgroup"

	"github.com/fibercut/fibercut/topology"
)

// ErrNoLab is returned when no lab of the given name exists.
var ErrNoLab = errors.New("no such lab")

// ErrTopologyMismatch is returned by [Up] when a lab of that name already runs
// another topology.
var ErrTopologyMismatch = errors.New("lab runs another topology")

// Container states beyond Docker's own ("running", "paused", "exited", ...).
const StateMissing = "missing"

// firstDCHost is the host number of the first DC on each /24: DC i of the
// topology gets .firstDCHost+i on both networks. Lower numbers are kept for
// the bridge gateway (.1) and the lab's entry layer.
const firstDCHost = 10

// Lab is the inventory of a running (or partly running) lab.
type Lab struct {
	Name     string             `json:"name"`
	Topology *topology.Topology `json:"-"`
	WAN      Network            `json:"wan"`
	Mgmt     Network            `json:"mgmt"`
	DCs      []DC               `json:"dcs"`
	// Gateway is the entry layer; nil when its container does not exist.
	Gateway *Gateway `json:"gateway,omitempty"`
}

// Gateway is the lab's entry layer: a container on the WAN, outside every
// DC, that serves the audience page and the API.
type Gateway struct {
	Container   string     `json:"container"`
	ContainerID string     `json:"container_id"`
	WANIP       netip.Addr `json:"wan_ip"`
	State       string     `json:"state"`
	// MgmtIP is its address on the management network, where it serves
	// the audience record; invalid for a lab made before it had one.
	MgmtIP netip.Addr `json:"mgmt_ip,omitzero"`
	// HostPort is where the gateway is published on the host, 0 if not.
	HostPort int    `json:"host_port,omitempty"`
	Health   string `json:"health,omitempty"`
}

// URL is the gateway's address on the WAN, reachable from the host.
func (g *Gateway) URL() string {
	return "http://" + netip.AddrPortFrom(g.WANIP, GatewayPort).String()
}

// RecordAddr is where the gateway serves its audience record, on the
// management network: faults never touch it.
func (g *Gateway) RecordAddr() string {
	return netip.AddrPortFrom(g.MgmtIP, GatewayRecordPort).String()
}

// DC is one datacenter of a lab: its container and addresses.
type DC struct {
	ID          string     `json:"dc"`
	City        string     `json:"city"`
	Container   string     `json:"container"`
	ContainerID string     `json:"container_id,omitempty"`
	WANIP       netip.Addr `json:"wan_ip"`
	MgmtIP      netip.Addr `json:"mgmt_ip"`
	// State is Docker's container state, or StateMissing.
	State string `json:"state"`
	// Pid is the container's init process on the host (0 when not running);
	// /proc/<Pid>/ns/net is its network namespace.
	Pid int `json:"pid,omitempty"`
	// Node is the Kubernetes node the DC's pod runs on; "" on Docker.
	Node string `json:"node,omitempty"`
	// CPUShares is the container's CPU weight (cgroup cpu.shares); 0 is
	// the engine's default, 1024.
	CPUShares int64 `json:"cpu_shares,omitempty"`
	// Health is "ok" when the node answered its health check, otherwise why
	// not. Empty until [Lab.CheckHealth].
	Health string `json:"health,omitempty"`
}

// DC returns the DC with the given id.
func (l *Lab) DC(id string) (*DC, bool) {
	for i := range l.DCs {
		if l.DCs[i].ID == id {
			return &l.DCs[i], true
		}
	}
	return nil, false
}

// Timings are the durations of the phases of [Up].
type Timings struct {
	Binary     time.Duration `json:"binary"`
	Image      time.Duration `json:"image"`
	Networks   time.Duration `json:"networks"`
	Containers time.Duration `json:"containers"`
	Ready      time.Duration `json:"ready"`
	Total      time.Duration `json:"total"`
}

// UpOptions configure [Up].
type UpOptions struct {
	// Name of the lab; DefaultName when empty.
	Name string
	// Topology to realise; the default built-in when nil.
	Topology *topology.Topology
	// Binary is a static fibercut binary for the node image; when empty,
	// [NodeBinary] finds or builds one.
	Binary string
	// ReadyTimeout bounds the wait for every DC to answer; 60 s when 0.
	ReadyTimeout time.Duration
	// Timings, when not nil, receives how long each phase took.
	Timings *Timings
	// GatewayPort is the host port the gateway (the audience page and the
	// API) is published on; 0 lets Docker pick a free one.
	GatewayPort int
	// NodeEnv adds "NAME=value" variables to every DC's node, GatewayEnv
	// to the gateway (tests).
	NodeEnv, GatewayEnv []string
	// GatewayBind is the host address the gateway's port is published on:
	// a venue's network, or 127.0.0.1 behind a tunnel or proxy. When not
	// set, a new gateway is published on every address and an existing
	// one keeps its own.
	GatewayBind netip.Addr
	// AudienceMax bounds the accounts the hall may open per drill; when 0
	// a new gateway takes its default (10,000) and an existing one keeps
	// what it was given.
	AudienceMax int
	// ClientLimits are a new gateway's per-address rates, in the form
	// demoapp.ParseClientLimits reads; "" takes its defaults, and an
	// existing gateway keeps what it was given.
	ClientLimits string
	// Leave lists DCs that a fault in force holds paused or powered off:
	// Up leaves their containers as they are and does not wait for them.
	Leave []string
	// PeersByName has the DCs find one another by their names on the WAN
	// ("hz-a.wan", from Docker's DNS) rather than by address, as they do
	// on Kubernetes (tests of that path).
	PeersByName bool
}

// Up creates the lab, or completes and repairs an existing one of the same
// name and topology, and returns when every DC answers its health check.
// Calling it on a lab that is fully up changes nothing.
func Up(ctx context.Context, cli client.APIClient, opts UpOptions) (*Lab, error) {
	start := time.Now()
	var tm Timings
	if opts.Timings == nil {
		opts.Timings = &tm
	}
	phase := func(d *time.Duration, t0 time.Time) { *d = time.Since(t0) }
	name, topo, topoYAML, err := labIdentity(opts.Name, opts.Topology)
	if err != nil {
		return nil, err
	}
	if err := checkTopology(ctx, cli, name, topo, string(topoYAML)); err != nil {
		return nil, err
	}

	t0 := time.Now()
	binary := opts.Binary
	if binary == "" {
		if binary, err = NodeBinary(ctx); err != nil {
			return nil, err
		}
	}
	phase(&opts.Timings.Binary, t0)

	t0 = time.Now()
	img, err := EnsureImage(ctx, cli, binary)
	if err != nil {
		return nil, err
	}
	phase(&opts.Timings.Image, t0)

	t0 = time.Now()
	wan, err := ensureNetwork(ctx, cli, name, NetWAN, map[string]string{LabelTopology: string(topoYAML)})
	if err != nil {
		return nil, err
	}
	mgmt, err := ensureNetwork(ctx, cli, name, NetMgmt, nil)
	if err != nil {
		return nil, err
	}
	phase(&opts.Timings.Networks, t0)

	t0 = time.Now()
	g, gctx := errgroup.WithContext(ctx)
	gwEnv := opts.GatewayEnv
	if opts.AudienceMax > 0 {
		gwEnv = append(slices.Clip(gwEnv), EnvAudienceMax+"="+strconv.Itoa(opts.AudienceMax))
	}
	if opts.ClientLimits != "" {
		gwEnv = append(slices.Clip(gwEnv), EnvClientLimits+"="+opts.ClientLimits)
	}
	for _, spec := range specs(name, topo, string(topoYAML), img, wan, mgmt, opts.GatewayPort, procsPerContainer(len(topo.Datacenters)+1), opts.PeersByName, opts.NodeEnv, gwEnv) {
		if spec.publish != 0 && opts.GatewayBind.IsValid() {
			spec.hostIP = opts.GatewayBind.String()
		}
		leave := slices.Contains(opts.Leave, spec.labels[LabelDC]) && spec.labels[LabelRole] == RoleDC
		g.Go(func() error { return ensureContainer(gctx, cli, spec, leave) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	phase(&opts.Timings.Containers, t0)

	t0 = time.Now()
	l, err := Inspect(ctx, cli, name)
	if err != nil {
		return nil, err
	}
	timeout := opts.ReadyTimeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	if err := l.waitHealthy(ctx, timeout, opts.Leave); err != nil {
		return l, err
	}
	phase(&opts.Timings.Ready, t0)
	opts.Timings.Total = time.Since(start)
	return l, nil
}

// gatewayHost is the gateway's host number on the WAN /24.
const gatewayHost = 5

// labIdentity fills in the defaults of a lab's name and topology, checks
// the name, and writes the topology as the YAML its objects carry.
func labIdentity(name string, topo *topology.Topology) (string, *topology.Topology, []byte, error) {
	if name == "" {
		name = DefaultName
	}
	if err := ValidateName(name); err != nil {
		return "", nil, nil, err
	}
	if topo == nil {
		var err error
		if topo, err = topology.Builtin(topology.Default); err != nil {
			return "", nil, nil, err
		}
	}
	topoYAML, err := topo.Marshal()
	if err != nil {
		return "", nil, nil, fmt.Errorf("lab: %w", err)
	}
	return name, topo, topoYAML, nil
}

// specs returns the containers of a lab: one per DC, and the gateway. procs
// is each one's GOMAXPROCS, 0 to let Go choose; byName names the peers by
// their WAN aliases instead of their addresses.
func specs(name string, topo *topology.Topology, topoYAML string, img Image, wan, mgmt Network, gatewayPort, procs int, byName bool, nodeEnv, gatewayEnv []string) []containerSpec {
	var peers []string
	for i, dc := range topo.Datacenters {
		if byName {
			peers = append(peers, dc.ID+"="+WANName(dc.ID))
		} else {
			peers = append(peers, dc.ID+"="+wan.hostAddr(firstDCHost+i).String())
		}
	}
	common := []string{EnvLab + "=" + name, EnvTopology + "=" + topoYAML, EnvPeers + "=" + strings.Join(peers, ",")}
	if procs > 0 {
		common = append(common, "GOMAXPROCS="+strconv.Itoa(procs))
	}
	var out []containerSpec
	for i, dc := range topo.Datacenters {
		out = append(out, containerSpec{
			name:   containerName(name, dc.ID),
			labels: map[string]string{LabelLab: name, LabelDC: dc.ID, LabelCity: dc.City, LabelRole: RoleDC},
			env:    slices.Concat([]string{EnvDC + "=" + dc.ID, EnvCity + "=" + dc.City}, common, nodeEnv),
			cmd:    []string{"node"},
			image:  img, wan: wan, wanIP: wan.hostAddr(firstDCHost + i), wanAlias: WANName(dc.ID),
			mgmt: &mgmt, mgmtIP: mgmt.hostAddr(firstDCHost + i), mgmtAlias: MgmtName(dc.ID),
			volume: volumeName(name, dc.ID),
		})
	}
	out = append(out, containerSpec{
		name:   containerName(name, RoleGateway),
		labels: map[string]string{LabelLab: name, LabelRole: RoleGateway},
		env: slices.Concat(common, []string{
			EnvGatewayRecord + "=" + netip.AddrPortFrom(mgmt.hostAddr(gatewayHost), GatewayRecordPort).String(),
			EnvGatewayTrusted + "=" + cmp.Or(wan.Gateway, wan.hostAddr(1)).String(),
		}, gatewayEnv),
		cmd:   []string{"gateway"},
		image: img, wan: wan, wanIP: wan.hostAddr(gatewayHost), wanAlias: RoleGateway + ".wan",
		mgmt: &mgmt, mgmtIP: mgmt.hostAddr(gatewayHost), mgmtAlias: RoleGateway + ".mgmt",
		publish: GatewayPort, hostPort: gatewayPort,
	})
	return out
}

// procsPerContainer shares the host's CPUs among a lab's n Go processes.
// Left to itself each would size its scheduler to the whole host: on two
// cores, six processes each running two threads contend for them, and both
// throughput and tail latency suffer (docs/benchmarks.md: p99 126 ms with
// one thread each against 150–200 ms).
func procsPerContainer(n int) int {
	return max(1, runtime.NumCPU()/n)
}

// checkTopology refuses to change the topology of an existing lab.
func checkTopology(ctx context.Context, cli client.APIClient, name string, topo *topology.Topology, want string) error {
	n, ok, err := findNetwork(ctx, cli, name, NetWAN)
	if err != nil || !ok {
		return err
	}
	have := n.Labels[LabelTopology]
	if have == want {
		return nil
	}
	haveName := "another topology"
	if t, err := topology.Parse("lab "+name, []byte(have)); err == nil {
		haveName = fmt.Sprintf("topology %q", t.Name)
	}
	return fmt.Errorf("lab: %w: lab %q already runs %s, not %q as asked; run `fibercut lab down --name %s` first, or choose another --name",
		ErrTopologyMismatch, name, haveName, topo.Name, name)
}

// containerSpec is everything needed to create one of a lab's containers:
// a DC (on both networks, with a data volume) or the gateway (on both
// networks, its public port published on the host).
type containerSpec struct {
	name      string
	labels    map[string]string
	env       []string
	cmd       []string
	image     Image
	wan       Network
	wanIP     netip.Addr
	wanAlias  string
	mgmt      *Network // nil: not on the management network
	mgmtIP    netip.Addr
	mgmtAlias string
	volume    string // "" for none
	publish   int    // container port to publish on the host, 0 for none
	hostPort  int    // host port for publish; 0 lets Docker pick
	hostIP    string // host address for publish; "" for every one
}

func (s containerSpec) lab() string { return s.labels[LabelLab] }

// ensureContainer creates the container, or repairs and starts an existing
// one; with leave, an existing one that matches its spec is left paused or
// stopped.
func ensureContainer(ctx context.Context, cli client.APIClient, s containerSpec, leave bool) error {
	c, err := cli.ContainerInspect(ctx, s.name)
	switch {
	case cerrdefs.IsNotFound(err):
		return createContainer(ctx, cli, s)
	case err != nil:
		return fmt.Errorf("lab: inspect container %s: %w", s.name, err)
	}
	if c.Config == nil || c.Config.Labels[LabelLab] != s.lab() {
		return fmt.Errorf("lab: a container named %s already exists (id %.12s) and was not created by fibercut for lab %q; remove it or choose another --name",
			s.name, c.ID, s.lab())
	}
	if why := drift(c, s); why != "" {
		slog.Info("recreating container", "container", s.name, "reason", why)
		if err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("lab: remove outdated container %s: %w", s.name, err)
		}
		return createContainer(ctx, cli, s)
	}
	switch {
	case leave:
	case c.State.Paused:
		if err := cli.ContainerUnpause(ctx, c.ID); err != nil {
			return fmt.Errorf("lab: unpause %s: %w", s.name, err)
		}
	case !c.State.Running:
		if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
			return fmt.Errorf("lab: start %s: %w", s.name, err)
		}
	}
	return nil
}

// drift says why an existing container does not match its spec, or "".
func drift(c container.InspectResponse, s containerSpec) string {
	if c.Image != s.image.ID {
		return "node image changed"
	}
	for _, e := range s.env { // Docker adds the image's own variables
		if !slices.Contains(c.Config.Env, e) {
			return "environment changed"
		}
	}
	// The published address changes only when asked for: an Up without
	// GatewayBind keeps what an earlier one chose.
	if s.publish != 0 && s.hostIP != "" && c.HostConfig != nil {
		for _, b := range c.HostConfig.PortBindings[nat.Port(strconv.Itoa(s.publish)+"/tcp")] {
			if b.HostIP != s.hostIP {
				return "published on " + cmp.Or(b.HostIP, "0.0.0.0") + ", not " + s.hostIP
			}
		}
	}
	if c.NetworkSettings == nil {
		return "no network settings"
	}
	want := []struct {
		net Network
		ip  netip.Addr
	}{{s.wan, s.wanIP}}
	if s.mgmt != nil {
		want = append(want, struct {
			net Network
			ip  netip.Addr
		}{*s.mgmt, s.mgmtIP})
	}
	for _, w := range want {
		ep, ok := c.NetworkSettings.Networks[w.net.Name]
		if !ok || ep.NetworkID != w.net.ID {
			return "not attached to " + w.net.Name
		}
		if ep.IPAMConfig == nil || ep.IPAMConfig.IPv4Address != w.ip.String() {
			return "wrong address on " + w.net.Name
		}
	}
	return ""
}

func createContainer(ctx context.Context, cli client.APIClient, s containerSpec) error {
	host := &container.HostConfig{CapAdd: []string{"NET_ADMIN"}}
	if s.volume != "" {
		v, err := cli.VolumeCreate(ctx, volume.CreateOptions{Name: s.volume, Labels: s.labels})
		if err != nil {
			return fmt.Errorf("lab: create volume %s: %w", s.volume, err)
		}
		if v.Labels[LabelLab] != s.lab() {
			return fmt.Errorf("lab: a Docker volume named %s already exists and was not created by fibercut for lab %q; remove it or choose another --name", s.volume, s.lab())
		}
		host.Mounts = []mount.Mount{{Type: mount.TypeVolume, Source: s.volume, Target: DataDir}}
	}
	cfg := &container.Config{Image: s.image.Ref, Hostname: s.labels[LabelDC], Labels: s.labels, Env: s.env, Cmd: s.cmd}
	if cfg.Hostname == "" {
		cfg.Hostname = s.labels[LabelRole]
	}
	if s.publish != 0 {
		port := nat.Port(strconv.Itoa(s.publish) + "/tcp")
		cfg.ExposedPorts = nat.PortSet{port: struct{}{}}
		hp := ""
		if s.hostPort != 0 {
			hp = strconv.Itoa(s.hostPort)
		}
		host.PortBindings = nat.PortMap{port: []nat.PortBinding{{HostIP: cmp.Or(s.hostIP, "0.0.0.0"), HostPort: hp}}}
	}
	// API 1.41 takes one network at create time; the other is connected
	// before the container starts.
	netcfg := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		s.wan.Name: {
			NetworkID:  s.wan.ID,
			IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: s.wanIP.String()},
			Aliases:    []string{s.wanAlias},
		},
	}}
	resp, err := cli.ContainerCreate(ctx, cfg, host, netcfg, nil, s.name)
	if err != nil {
		if cerrdefs.IsConflict(err) {
			return fmt.Errorf("lab: create container %s: the name is taken (another `fibercut lab up` running?): %w", s.name, err)
		}
		return fmt.Errorf("lab: create container %s: %w", s.name, err)
	}
	if s.mgmt != nil {
		if err := cli.NetworkConnect(ctx, s.mgmt.ID, resp.ID, &network.EndpointSettings{
			IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: s.mgmtIP.String()},
			Aliases:    []string{s.mgmtAlias},
		}); err != nil {
			return fmt.Errorf("lab: connect %s to %s: %w", s.name, s.mgmt.Name, err)
		}
	}
	if err := cli.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		if strings.Contains(err.Error(), "port is already allocated") || strings.Contains(err.Error(), "address already in use") {
			return fmt.Errorf("lab: start %s: host port %d is taken; choose another with --gateway-port: %w", s.name, s.hostPort, err)
		}
		return fmt.Errorf("lab: start %s: %w", s.name, err)
	}
	return nil
}

// Inspect returns the inventory of the named lab: its topology, networks and
// DCs with their containers' state, addresses and pids. Health is not checked;
// see [Lab.CheckHealth]. It returns an error wrapping [ErrNoLab] when the lab
// does not exist.
func Inspect(ctx context.Context, cli client.APIClient, name string) (*Lab, error) {
	if name == "" {
		name = DefaultName
	}
	wanNet, ok, err := findNetwork(ctx, cli, name, NetWAN)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("lab: %w %q: start it with `fibercut lab up --name %s`", ErrNoLab, name, name)
	}
	topo, err := topology.Parse("lab "+name, []byte(wanNet.Labels[LabelTopology]))
	if err != nil {
		return nil, fmt.Errorf("lab: topology recorded with lab %q: %w", name, err)
	}
	l := &Lab{Name: name, Topology: topo}
	if l.WAN, err = toNetwork(NetWAN, wanNet); err != nil {
		return nil, err
	}
	mgmtNet, ok, err := findNetwork(ctx, cli, name, NetMgmt)
	if err != nil {
		return nil, err
	}
	if ok {
		if l.Mgmt, err = toNetwork(NetMgmt, mgmtNet); err != nil {
			return nil, err
		}
	}
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", LabelLab+"="+name),
		filters.Arg("label", LabelRole+"="+RoleDC),
	)})
	if err != nil {
		return nil, fmt.Errorf("lab: list containers of lab %q: %w", name, err)
	}
	byDC := map[string]string{}
	for _, c := range list {
		byDC[c.Labels[LabelDC]] = c.ID
	}
	l.DCs = make([]DC, len(topo.Datacenters))
	g, gctx := errgroup.WithContext(ctx)
	for i, dc := range topo.Datacenters {
		d := &l.DCs[i]
		*d = DC{ID: dc.ID, City: dc.City, Container: containerName(name, dc.ID), State: StateMissing}
		id, ok := byDC[dc.ID]
		if !ok {
			continue
		}
		g.Go(func() error { return inspectDC(gctx, cli, l, d, id) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := inspectGateway(ctx, cli, l); err != nil {
		return nil, err
	}
	return l, nil
}

func inspectGateway(ctx context.Context, cli client.APIClient, l *Lab) error {
	c, err := cli.ContainerInspect(ctx, containerName(l.Name, RoleGateway))
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("lab: inspect gateway of lab %q: %w", l.Name, err)
	}
	if c.Config == nil || c.Config.Labels[LabelLab] != l.Name {
		return nil
	}
	gw := &Gateway{Container: containerName(l.Name, RoleGateway), ContainerID: c.ID}
	if c.State != nil {
		gw.State = c.State.Status
	}
	if c.NetworkSettings != nil {
		if ep, ok := c.NetworkSettings.Networks[l.WAN.Name]; ok {
			gw.WANIP, _ = netip.ParseAddr(ep.IPAddress)
		}
		if ep, ok := c.NetworkSettings.Networks[l.Mgmt.Name]; ok {
			gw.MgmtIP, _ = netip.ParseAddr(ep.IPAddress)
		}
		for _, b := range c.NetworkSettings.Ports[nat.Port(strconv.Itoa(GatewayPort)+"/tcp")] {
			if p, err := strconv.Atoi(b.HostPort); err == nil {
				gw.HostPort = p
				break
			}
		}
	}
	l.Gateway = gw
	return nil
}

func inspectDC(ctx context.Context, cli client.APIClient, l *Lab, d *DC, id string) error {
	c, err := cli.ContainerInspect(ctx, id)
	if cerrdefs.IsNotFound(err) {
		return nil // removed meanwhile: stays missing
	}
	if err != nil {
		return fmt.Errorf("lab: inspect container %s: %w", d.Container, err)
	}
	d.ContainerID = c.ID
	if c.State != nil {
		d.State = c.State.Status
		d.Pid = c.State.Pid
	}
	if c.HostConfig != nil {
		d.CPUShares = c.HostConfig.CPUShares
	}
	if c.NetworkSettings == nil {
		return nil
	}
	for netName, ep := range c.NetworkSettings.Networks {
		ip := ep.IPAddress
		if ip == "" && ep.IPAMConfig != nil {
			ip = ep.IPAMConfig.IPv4Address
		}
		addr, err := netip.ParseAddr(ip)
		if err != nil {
			continue
		}
		switch netName {
		case l.WAN.Name:
			d.WANIP = addr
		case l.Mgmt.Name:
			d.MgmtIP = addr
		}
	}
	return nil
}

// List returns the names of the labs on the engine, sorted.
func List(ctx context.Context, cli client.APIClient) ([]string, error) {
	nets, err := cli.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", LabelNet+"="+NetWAN),
	)})
	if err != nil {
		return nil, fmt.Errorf("lab: list labs: %w", err)
	}
	var names []string
	for _, n := range nets {
		if name := n.Labels[LabelLab]; name != "" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}
