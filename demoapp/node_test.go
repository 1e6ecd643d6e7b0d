package demoapp

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/fibercut/fibercut/lab"
)

func TestNodeConfigFromEnvNamesMissing(t *testing.T) {
	t.Setenv(lab.EnvLab, "demo")
	t.Setenv(lab.EnvDC, "")
	t.Setenv(lab.EnvCity, "hangzhou")
	_, err := NodeConfigFromEnv()
	if err == nil || !strings.Contains(err.Error(), lab.EnvDC) || strings.Contains(err.Error(), lab.EnvCity) {
		t.Fatalf("NodeConfigFromEnv = %v, want an error naming only %s", err, lab.EnvDC)
	}
}

// TestNodeServesHealth runs a node on loopback and probes it as `lab up` does.
func TestNodeServesHealth(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunNode(ctx, NodeConfig{Lab: "demo", DC: "hz-a", City: "hangzhou", Listen: addr})
	}()
	ap := netip.MustParseAddrPort(addr)
	probe := func(dc string) error {
		return lab.ProbeHealthAt(context.Background(), ap, "demo", dc)
	}
	deadline := time.Now().Add(5 * time.Second)
	for probe("hz-a") != nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := probe("hz-a"); err != nil {
		t.Fatalf("health: %v", err)
	}
	if err := probe("sh-a"); err == nil {
		t.Fatal("a node of hz-a passed the health check for sh-a")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("RunNode after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("RunNode did not return after cancel")
	}
}
