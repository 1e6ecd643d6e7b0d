package lab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
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
	name := opts.Name
	if name == "" {
		name = DefaultName
	}
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	topo := opts.Topology
	if topo == nil {
		var err error
		if topo, err = topology.Builtin(topology.Default); err != nil {
			return nil, err
		}
	}
	topoYAML, err := topo.Marshal()
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
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
	for i, dc := range topo.Datacenters {
		spec := dcSpec{lab: name, dc: dc, image: img, wan: wan, mgmt: mgmt,
			wanIP: wan.hostAddr(firstDCHost + i), mgmtIP: mgmt.hostAddr(firstDCHost + i),
			topoYAML: string(topoYAML)}
		g.Go(func() error { return ensureDC(gctx, cli, spec) })
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
	if err := l.WaitHealthy(ctx, timeout); err != nil {
		return l, err
	}
	phase(&opts.Timings.Ready, t0)
	opts.Timings.Total = time.Since(start)
	return l, nil
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

// dcSpec is everything needed to create one DC's container.
type dcSpec struct {
	lab           string
	dc            topology.Datacenter
	image         Image
	wan, mgmt     Network
	wanIP, mgmtIP netip.Addr
	topoYAML      string
}

// ensureDC creates the DC's container, or repairs and starts an existing one.
func ensureDC(ctx context.Context, cli client.APIClient, s dcSpec) error {
	name := containerName(s.lab, s.dc.ID)
	c, err := cli.ContainerInspect(ctx, name)
	switch {
	case cerrdefs.IsNotFound(err):
		return createDC(ctx, cli, s)
	case err != nil:
		return fmt.Errorf("lab: inspect container %s: %w", name, err)
	}
	if c.Config == nil || c.Config.Labels[LabelLab] != s.lab {
		return fmt.Errorf("lab: a container named %s already exists (id %.12s) and was not created by fibercut for lab %q; remove it or choose another --name",
			name, c.ID, s.lab)
	}
	if why := drift(c, s); why != "" {
		slog.Info("recreating DC container", "container", name, "reason", why)
		if err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("lab: remove outdated container %s: %w", name, err)
		}
		return createDC(ctx, cli, s)
	}
	switch {
	case c.State.Paused:
		if err := cli.ContainerUnpause(ctx, c.ID); err != nil {
			return fmt.Errorf("lab: unpause %s: %w", name, err)
		}
	case !c.State.Running:
		if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
			return fmt.Errorf("lab: start %s: %w", name, err)
		}
	}
	return nil
}

// drift says why an existing container does not match its spec, or "".
func drift(c container.InspectResponse, s dcSpec) string {
	if c.Image != s.image.ID {
		return "node image changed"
	}
	if c.NetworkSettings == nil {
		return "no network settings"
	}
	for _, want := range []struct {
		net Network
		ip  netip.Addr
	}{{s.wan, s.wanIP}, {s.mgmt, s.mgmtIP}} {
		ep, ok := c.NetworkSettings.Networks[want.net.Name]
		if !ok || ep.NetworkID != want.net.ID {
			return "not attached to " + want.net.Name
		}
		if ep.IPAMConfig == nil || ep.IPAMConfig.IPv4Address != want.ip.String() {
			return "wrong address on " + want.net.Name
		}
	}
	return ""
}

func createDC(ctx context.Context, cli client.APIClient, s dcSpec) error {
	name := containerName(s.lab, s.dc.ID)
	labels := map[string]string{LabelLab: s.lab, LabelDC: s.dc.ID, LabelCity: s.dc.City, LabelRole: RoleDC}
	vol := volumeName(s.lab, s.dc.ID)
	v, err := cli.VolumeCreate(ctx, volume.CreateOptions{Name: vol, Labels: labels})
	if err != nil {
		return fmt.Errorf("lab: create volume %s: %w", vol, err)
	}
	if v.Labels[LabelLab] != s.lab {
		return fmt.Errorf("lab: a Docker volume named %s already exists and was not created by fibercut for lab %q; remove it or choose another --name", vol, s.lab)
	}
	cfg := &container.Config{
		Image:    s.image.Ref,
		Hostname: s.dc.ID,
		Labels:   labels,
		Env: []string{
			EnvLab + "=" + s.lab,
			EnvDC + "=" + s.dc.ID,
			EnvCity + "=" + s.dc.City,
			EnvTopology + "=" + s.topoYAML,
		},
	}
	host := &container.HostConfig{
		CapAdd: []string{"NET_ADMIN"},
		Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: vol, Target: DataDir}},
	}
	// API 1.41 takes one network at create time; the other is connected
	// before the container starts.
	netcfg := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		s.wan.Name: {
			NetworkID:  s.wan.ID,
			IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: s.wanIP.String()},
			Aliases:    []string{WANName(s.dc.ID)},
		},
	}}
	resp, err := cli.ContainerCreate(ctx, cfg, host, netcfg, nil, name)
	if err != nil {
		if cerrdefs.IsConflict(err) {
			return fmt.Errorf("lab: create container %s: the name is taken (another `fibercut lab up` running?): %w", name, err)
		}
		return fmt.Errorf("lab: create container %s: %w", name, err)
	}
	if err := cli.NetworkConnect(ctx, s.mgmt.ID, resp.ID, &network.EndpointSettings{
		IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: s.mgmtIP.String()},
		Aliases:    []string{MgmtName(s.dc.ID)},
	}); err != nil {
		return fmt.Errorf("lab: connect %s to %s: %w", name, s.mgmt.Name, err)
	}
	if err := cli.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		return fmt.Errorf("lab: start %s: %w", name, err)
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
	return l, nil
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
