// Package labtest helps tests run real labs: it connects to Docker (skipping
// the test, or failing it when FIBERCUT_REQUIRE_DOCKER=1), builds a static
// fibercut binary for the node image once per test process, and brings up labs
// with unique names that are removed when the test ends, even if it fails.
//
// It needs what package lab needs: access to the Docker engine's socket.
package labtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/topology"
)

// EnvRequireDocker, when "1", turns a missing Docker engine or missing root
// from a skip into a failure.
const EnvRequireDocker = "FIBERCUT_REQUIRE_DOCKER"

// SkipOrFail skips the test, or fails it when FIBERCUT_REQUIRE_DOCKER=1:
// for what a test needs and this machine may lack.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(EnvRequireDocker) == "1" {
		t.Fatalf(format+" ("+EnvRequireDocker+"=1)", args...)
	}
	t.Skipf(format, args...)
}

// RequireDocker returns a client for the Docker engine, or skips the test
// (fails it when FIBERCUT_REQUIRE_DOCKER=1) when there is none.
func RequireDocker(t testing.TB) *client.Client {
	t.Helper()
	if testing.Short() {
		SkipOrFail(t, "docker test skipped in -short mode")
	}
	cli, err := lab.Connect(context.Background())
	if err != nil {
		SkipOrFail(t, "docker required: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// RequireCommand returns the path of the named program, or skips the test
// (fails it when FIBERCUT_REQUIRE_DOCKER=1) when it is not installed.
func RequireCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		SkipOrFail(t, "%s required: %v", name, err)
	}
	return p
}

// RequireRoot skips the test (fails it when FIBERCUT_REQUIRE_DOCKER=1) unless
// it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, "root required")
	}
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
	buildOut  []byte
)

// StaticBinary returns the path of a static fibercut binary built from this
// module's source, building it once per test process.
func StaticBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		gomod, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			buildErr = err
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(gomod)))
		dir, err := os.MkdirTemp("", "fibercut-test-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "fibercut")
		cmd := exec.Command("go", "build", "-trimpath", "-o", buildPath, "./cmd/fibercut")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("build static fibercut: %v\n%s", buildErr, buildOut)
	}
	return buildPath
}

// UniqueName returns a lab name no other test uses.
func UniqueName(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	return "t" + hex.EncodeToString(b)
}

// Cleanup removes the named lab when the test ends, whatever its outcome.
func Cleanup(t testing.TB, cli client.APIClient, name string) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		_, err := lab.Down(ctx, cli, name, lab.DownOptions{})
		switch {
		case errors.Is(err, lab.ErrNetworkStuck):
			// Docker's own store kept a stale endpoint: everything of
			// the lab is gone but a network fibercut cannot remove.
			t.Logf("remove lab %s: %v", name, err)
		case err != nil:
			t.Errorf("remove lab %s: %v", name, err)
		}
	})
}

// Up brings up a lab of the named built-in topology under a unique name and
// removes it when the test ends.
func Up(t testing.TB, cli client.APIClient, topo string) *lab.Lab {
	t.Helper()
	return UpWith(t, cli, topo, lab.UpOptions{})
}

// UpWith is [Up] with options; their name, topology and binary are the
// test's.
func UpWith(t testing.TB, cli client.APIClient, topo string, opts lab.UpOptions) *lab.Lab {
	t.Helper()
	tp, err := topology.Builtin(topo)
	if err != nil {
		t.Fatal(err)
	}
	name := UniqueName(t)
	Cleanup(t, cli, name)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	opts.Name, opts.Topology, opts.Binary = name, tp, StaticBinary(t)
	l, err := lab.Up(ctx, cli, opts)
	if err != nil {
		t.Fatalf("lab up %s: %v", name, err)
	}
	return l
}

// Eventually polls cond every 250 ms until it holds, failing the test once
// within has passed with what it was waiting for.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s, still not %s", within, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
