package faults

import (
	"context"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/fibercut/fibercut/lab"
)

// Backend is what an [Injector] needs of the engine that runs a lab's DCs:
// an inventory, power and freezing, and each DC's network namespace. The
// Docker engine is one ([NewDockerBackend]); the package's tests use a fake,
// so that the injector's bookkeeping is tested without any engine. Methods
// may be called concurrently for different DCs.
type Backend interface {
	// Inspect returns the lab's current inventory. Its WAN network's ID
	// tells one incarnation of a lab from the next of the same name.
	Inspect(ctx context.Context) (*lab.Lab, error)
	// PowerOff kills a running DC and returns once it is stopped.
	PowerOff(ctx context.Context, dc lab.DC) error
	// PowerOn starts a stopped DC and returns once it runs; a running DC
	// is left alone, a missing one is not an error.
	PowerOn(ctx context.Context, dc lab.DC) error
	// Pause freezes a running DC until it is resumed. until is when
	// the fault ends (zero: when healed): a backend whose DCs run
	// elsewhere also ends the pause then itself, should the watchdog on
	// this host be gone.
	Pause(ctx context.Context, dc lab.DC, until time.Time) error
	// Resume thaws a paused DC; a DC that is not paused, or missing, is
	// left alone.
	Resume(ctx context.Context, dc lab.DC) error
	// Namespace opens the network namespace of a running DC.
	Namespace(dc lab.DC) (Namespace, error)
	// SetCPUShares sets a DC's CPU weight (cgroup cpu.shares; the
	// engine's default is 1024), running or not.
	SetCPUShares(ctx context.Context, dc lab.DC, shares int64) error
}

// Namespace is one DC's network namespace as faults change it: the fibercut
// nftables table, with each fault's own sets and rules, and fibercut's root
// qdisc on the WAN interface. [OpenNamespace] opens it from the host.
type Namespace interface {
	// addFault creates fault id's sets and rules and fills the sets;
	// elements expire after timeout (never when 0).
	addFault(id string, adds []setAdd, timeout time.Duration) error
	// removeFaults deletes the sets and rules of the given faults.
	removeFaults(ids ...string) error
	// faultIDs lists the faults that have sets here.
	faultIDs() ([]string, error)
	// dropTable deletes the whole fibercut table, but for the lab's
	// baseline WAN latency, and says if there was one.
	dropTable() (bool, error)
	// addQdisc puts fibercut's root qdisc on the WAN interface.
	addQdisc(q qdiscSpec) error
	// removeQdisc deletes it and says if there was one.
	removeQdisc() (bool, error)
	// Close releases the namespace.
	Close()
}

// OpenNamespace enters the network namespace of a running DC from the host,
// through /proc/<pid>/ns/net. It needs root.
func OpenNamespace(d lab.DC) (Namespace, error) { return openNS(d) }

// dockerBackend runs faults on a lab of the Docker engine.
type dockerBackend struct {
	cli  client.APIClient
	name string
}

// NewDockerBackend returns the backend of the named lab on a Docker engine.
func NewDockerBackend(cli client.APIClient, lab string) Backend {
	return &dockerBackend{cli: cli, name: lab}
}

func (b *dockerBackend) Inspect(ctx context.Context) (*lab.Lab, error) {
	return lab.Inspect(ctx, b.cli, b.name)
}

func (b *dockerBackend) PowerOff(ctx context.Context, d lab.DC) error {
	if err := b.cli.ContainerKill(ctx, d.ContainerID, "KILL"); err != nil {
		return fmt.Errorf("faults: power off dc %s: %w", d.ID, err)
	}
	return b.waitState(ctx, d, false)
}

func (b *dockerBackend) PowerOn(ctx context.Context, d lab.DC) error {
	err := b.cli.ContainerStart(ctx, d.Container, container.StartOptions{})
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("faults: power on dc %s: %w", d.ID, err)
	}
	return b.waitState(ctx, d, true)
}

// Pause freezes the container. Its watchdog, on this host as the lab is,
// thaws it on time: until is not needed here.
func (b *dockerBackend) Pause(ctx context.Context, d lab.DC, _ time.Time) error {
	if err := b.cli.ContainerPause(ctx, d.ContainerID); err != nil {
		return fmt.Errorf("faults: pause dc %s: %w", d.ID, err)
	}
	return nil
}

func (b *dockerBackend) Resume(ctx context.Context, d lab.DC) error {
	err := b.cli.ContainerUnpause(ctx, d.Container)
	if err != nil && !cerrdefs.IsNotFound(err) && !strings.Contains(err.Error(), "not paused") {
		return fmt.Errorf("faults: resume dc %s: %w", d.ID, err)
	}
	return nil
}

func (b *dockerBackend) Namespace(d lab.DC) (Namespace, error) { return openNS(d) }

func (b *dockerBackend) SetCPUShares(ctx context.Context, d lab.DC, shares int64) error {
	_, err := b.cli.ContainerUpdate(ctx, d.Container, container.UpdateConfig{Resources: container.Resources{CPUShares: shares}})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("faults: set the CPU weight of dc %s to %d: %w", d.ID, shares, err)
	}
	return nil
}

// waitState polls until the container is (or is not) running, for at most
// 10 s.
func (b *dockerBackend) waitState(ctx context.Context, d lab.DC, running bool) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		c, err := b.cli.ContainerInspect(ctx, d.Container)
		if err != nil {
			return fmt.Errorf("faults: inspect dc %s: %w", d.ID, err)
		}
		if c.State != nil && c.State.Running == running && !(running && c.State.Pid == 0) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("faults: dc %s did not reach running=%v: %w", d.ID, running, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
