package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLabComposeCmd(t *testing.T) {
	run := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		root := newRootCmd(&stdout, &stderr)
		root.SetArgs(append([]string{"lab", "compose"}, args...))
		err := root.ExecuteContext(context.Background())
		return stdout.String(), err
	}
	out, err := run("--topology", "two-city-three-dc", "--name", "demo", "--wan", "10.210.4.0/24", "--mgmt", "10.210.5.0/24")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"container_name: fibercut-demo-sh-a", "ipv4_address: 10.210.4.12", "subnet: 10.210.5.0/24", "fibercut.lab: demo"} {
		if !strings.Contains(out, want) {
			t.Errorf("compose file lacks %q", want)
		}
	}
	if strings.Contains(out, "hz-a-data:/data") == false || strings.Contains(out, "sz-a") {
		t.Error("two-city-three-dc's compose file should have hz-a's volume and no sz-a")
	}

	if _, err := run("--wan", "10.210.4.0"); err == nil || !strings.Contains(err.Error(), `--wan "10.210.4.0": want an IPv4 subnet`) {
		t.Errorf("bad --wan: %v", err)
	}
	if _, err := run("--topology", "nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown topology: %v", err)
	}

	dir := filepath.Join(t.TempDir(), "lab")
	out, err = run("--out", dir, "--no-binary")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"docker-compose.yml", "Dockerfile"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("--out wrote no %s: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "fibercut")); !os.IsNotExist(err) {
		t.Errorf("--no-binary copied a binary (%v)", err)
	}
	if !strings.Contains(out, "docker-compose up -d --build") {
		t.Errorf("--out does not say how to start the lab:\n%s", out)
	}
}

// TestLabUpRefusesBadLimits: a bad --client-limits is refused, naming what
// is valid, before anything is created.
func TestLabUpRefusesBadLimits(t *testing.T) {
	var stdout, stderr bytes.Buffer
	root := newRootCmd(&stdout, &stderr)
	root.SetArgs([]string{"lab", "up", "--name", "never-created", "--client-limits", "opens=fast"})
	err := root.ExecuteContext(context.Background())
	if err == nil || !strings.Contains(err.Error(), "--client-limits") || !strings.Contains(err.Error(), "opens=RATE/BURST") {
		t.Errorf("lab up --client-limits opens=fast: %v; want an error naming the flag and the valid form", err)
	}
	if strings.Contains(stdout.String(), "is up") {
		t.Errorf("a lab came up:\n%s", stdout.String())
	}
}
