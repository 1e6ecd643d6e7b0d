package lab

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
)

// DownOptions configure [Down].
type DownOptions struct {
	// KeepData keeps the DCs' data volumes, so a later [Up] finds the data.
	KeepData bool
}

// Removed lists what [Down] removed, by name.
type Removed struct {
	Containers []string `json:"containers"`
	Networks   []string `json:"networks"`
	Volumes    []string `json:"volumes"`
}

// Empty reports whether nothing was removed.
func (r Removed) Empty() bool {
	return len(r.Containers)+len(r.Networks)+len(r.Volumes) == 0
}

// Down removes every container, network and (unless KeepData) volume that
// carries the label fibercut.lab=name, and nothing else. It needs no record
// besides those labels, so it works after a crash and from another shell.
// Removing a lab that does not exist is not an error: Removed is empty.
func Down(ctx context.Context, cli client.APIClient, name string, opts DownOptions) (Removed, error) {
	var out Removed
	if name == "" {
		name = DefaultName
	}
	if err := ValidateName(name); err != nil {
		return out, err
	}
	byLab := filters.NewArgs(filters.Arg("label", LabelLab+"="+name))

	cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: byLab})
	if err != nil {
		return out, fmt.Errorf("lab: list containers of lab %q: %w", name, err)
	}
	// One at a time: Docker 20.10's libnetwork can deadlock when several
	// containers of one network exit at once (the store's watch loop and
	// an endpoint's leave take the controller's and the network's locks
	// in opposite orders; seen once here, in a lab down after 20 drills,
	// and every later network call of the engine hung).
	for _, c := range cs {
		err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			return out, fmt.Errorf("lab: remove container %s: %w", firstName(c.Names, c.ID), err)
		}
		out.Containers = append(out.Containers, firstName(c.Names, c.ID))
	}

	ns, err := cli.NetworkList(ctx, network.ListOptions{Filters: byLab})
	if err != nil {
		return out, fmt.Errorf("lab: list networks of lab %q: %w", name, err)
	}
	var stuck []error // networks Docker will not let go of; the rest goes on
	for _, n := range ns {
		if err := removeNetwork(ctx, cli, n.ID); err != nil {
			if !errors.Is(err, ErrNetworkStuck) {
				return out, fmt.Errorf("lab: remove network %s: %w", n.Name, err)
			}
			stuck = append(stuck, fmt.Errorf("lab: remove network %s: %w", n.Name, err))
			continue
		}
		out.Networks = append(out.Networks, n.Name)
	}

	if !opts.KeepData {
		vs, err := cli.VolumeList(ctx, volume.ListOptions{Filters: byLab})
		if err != nil {
			return out, fmt.Errorf("lab: list volumes of lab %q: %w", name, err)
		}
		for _, v := range vs.Volumes {
			if err := cli.VolumeRemove(ctx, v.Name, true); err != nil && !cerrdefs.IsNotFound(err) {
				return out, fmt.Errorf("lab: remove volume %s: %w", v.Name, err)
			}
			out.Volumes = append(out.Volumes, v.Name)
		}
	}
	slices.Sort(out.Containers)
	slices.Sort(out.Networks)
	slices.Sort(out.Volumes)
	return out, errors.Join(stuck...)
}

// ErrNetworkStuck is wrapped by the error of [Down] when Docker refuses to
// remove a lab's network for endpoints it no longer shows: a stale
// endpoint in Docker's own store (seen with Docker 20.10), which only
// restarting dockerd clears. Everything else of the lab is removed, and
// the network's subnet is merely skipped by later labs.
var ErrNetworkStuck = errors.New("docker keeps a stale endpoint on the network, though no container is attached; restart dockerd to remove it")

// removeNetwork removes a network, waiting (at most 10 s) while Docker still
// counts the endpoints of containers just removed: Docker 20.10 answers
// "has active endpoints" for a moment after a forced container removal.
func removeNetwork(ctx context.Context, cli client.APIClient, id string) error {
	for attempt := 0; ; attempt++ {
		err := cli.NetworkRemove(ctx, id)
		if err == nil || cerrdefs.IsNotFound(err) {
			return nil
		}
		if !strings.Contains(err.Error(), "active endpoints") {
			return err
		}
		if attempt >= 50 {
			if n, ierr := cli.NetworkInspect(ctx, id, network.InspectOptions{}); ierr == nil && len(n.Containers) == 0 {
				return fmt.Errorf("%w (%v)", ErrNetworkStuck, err)
			}
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func firstName(names []string, id string) string {
	if len(names) > 0 {
		n := names[0]
		if len(n) > 0 && n[0] == '/' {
			n = n[1:]
		}
		return n
	}
	return id
}
