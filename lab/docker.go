package lab

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/docker/docker/client"
)

// ErrDockerUnreachable is returned by [Connect] when no Docker engine answers.
var ErrDockerUnreachable = errors.New("docker engine not reachable")

// Connect returns a client for the Docker engine named by the environment
// (DOCKER_HOST, or the default socket), negotiating the API version so that
// old engines such as Debian's 20.10 (API 1.41) work. It pings the engine and,
// when that fails, returns an error wrapping [ErrDockerUnreachable] that says
// how to check.
func Connect(ctx context.Context) (*client.Client, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("lab: docker client: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(pctx); err != nil {
		cli.Close()
		return nil, fmt.Errorf("%w at %s: %v\n\n"+
			"fibercut runs its lab as Docker containers, so it needs a Docker engine it may use. "+
			"Check with `docker info`: if that fails too, start the engine (for example "+
			"`sudo systemctl start docker`, or `sudo dockerd &` where there is no systemd) "+
			"or set DOCKER_HOST to where it listens; if `docker info` works, run fibercut as "+
			"the same user, with the same DOCKER_HOST", ErrDockerUnreachable, cli.DaemonHost(), err)
	}
	return cli, nil
}
