package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/net/netutil"

	"github.com/fibercut/fibercut/faults"
	"github.com/fibercut/fibercut/lab/kube"
)

func newAgentCmd() *cobra.Command {
	var listen, cgroupRoot string
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Apply faults to the DC pods of this node (in the agent DaemonSet; started by `lab up --backend kubernetes`)",
		Long: `Serve the fault agent of a lab on Kubernetes: cut, isolate, partition,
loss and bandwidth in the network namespaces of the lab's DC pods on this
node, and pause and resume by their freezer cgroups.

It answers only requests carrying the lab's agent token (read from
$` + kube.EnvAgentToken + `), which fibercut sends through the API server's pod
proxy. It needs the host's PID namespace, NET_ADMIN, SYS_ADMIN and
SYS_PTRACE, and the host's cgroup hierarchies at --cgroup-root: the agent
DaemonSet grants them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// JSON lines: `kubectl logs ds/agent | jq` reads what it did.
			log := slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), nil))
			h, err := faults.NewAgentHandler(os.Getenv(kube.EnvAgentToken), log)
			if err != nil {
				return fmt.Errorf("%w (from $%s)", err, kube.EnvAgentToken)
			}
			if fi, err := os.Stat(cgroupRoot); err != nil || !fi.IsDir() {
				return fmt.Errorf("--cgroup-root %s: want the host's cgroup hierarchies there: %v", cgroupRoot, err)
			}
			kube.CgroupRoot = cgroupRoot
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("agent: listen on %s: %w", listen, err)
			}
			log.Info("serving", "on", ln.Addr().String(), "cgroups", cgroupRoot, "version", buildVersion())
			return serveAgent(cmd.Context(), ln, h)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", fmt.Sprintf(":%d", kube.AgentPort), "address to serve on")
	cmd.Flags().StringVar(&cgroupRoot, "cgroup-root", kube.CgroupRoot, "where the host's cgroup hierarchies are mounted")
	return cmd
}

// serveAgent serves h on ln until ctx ends, with every timeout and limit
// set: the agent's port is on the pod network.
func serveAgent(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	done := make(chan error, 1)
	// Its callers are fibercut's few: a bound on connections keeps a
	// flood from the pod network from taking the node's file table.
	go func() { done <- srv.Serve(netutil.LimitListener(ln, 64)) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
