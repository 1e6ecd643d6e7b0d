package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fibercut/fibercut/topology"
)

// runTopology runs "fibercut topology ARGS..." and returns stdout and the error.
func runTopology(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	root := newRootCmd(&stdout, &stderr)
	root.SetArgs(append([]string{"topology"}, args...))
	err := root.ExecuteContext(context.Background())
	return stdout.String(), err
}

func TestTopologyCmd(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string // parts of stdout
		err  string   // a part of the error; "" for none
	}{
		{"show default", []string{"show"}, []string{
			"name:         three-city-five-dc",
			"source:       builtin:three-city-five-dc",
			"ledger:       tick 50ms, election timeout 500ms",
			"    hz-a    unit weight 1  Hangzhou DC A  杭州 A 机房",
			"  hz-a – sz-a  15ms  10Gbit/s",
			"  lose hangzhou: 3 of 5 remain, majority kept",
			"  lose sz-a: 4 of 5 remain, majority kept",
		}, ""},
		{"show by name", []string{"show", "two-city-three-dc"}, []string{
			"  lose hangzhou: 1 of 3 remain, majority LOST",
		}, ""},
		{"show unknown", []string{"show", "nope"}, nil,
			`"nope" is neither a built-in topology (three-city-five-dc, two-city-three-dc) nor a file`},
		{"list", []string{"list"}, []string{
			"three-city-five-dc (default)  Alipay's 三地五中心",
			"two-city-three-dc             两地三中心",
		}, ""},
		{"validate ok", []string{"validate", "../../labs/topologies/three-city-five-dc.yaml"}, []string{
			"../../labs/topologies/three-city-five-dc.yaml: ok (3 cities, 5 datacenters, 10 links)\n",
		}, ""},
		{"validate bad", []string{"validate", "testdata/bad-topology.yaml"}, nil,
			`testdata/bad-topology.yaml:5:10: datacenters[1].id: duplicate datacenter id "hz-a" (first at line 4, column 10)`},
		{"validate without file", []string{"validate"}, nil, "accepts 1 arg(s), received 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runTopology(t, tt.args...)
			if tt.err == "" && err != nil {
				t.Fatalf("error: %v", err)
			}
			if tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("error = %v, want one containing %q", err, tt.err)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestTopologyShowJSON(t *testing.T) {
	out, err := runTopology(t, "show", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Source   string
		Topology struct {
			Name        string
			Datacenters []struct{ ID string }
		}
		Survival []struct {
			Kind         string
			Name         string
			MajorityKept bool `json:"majority_kept"`
		}
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if got.Source != "builtin:three-city-five-dc" || got.Topology.Name != "three-city-five-dc" ||
		len(got.Topology.Datacenters) != 5 || len(got.Survival) != 8 {
		t.Errorf("unexpected JSON:\n%s", out)
	}
}

// TestTopologyValidateWarnsOnElection: a valid file whose election timeout
// is below ten round trips passes validation, with a warning on stderr.
func TestTopologyValidateWarnsOnElection(t *testing.T) {
	tp, err := topology.Builtin(topology.Default)
	if err != nil {
		t.Fatal(err)
	}
	tp.Ledger.ElectionMS = 250
	b, err := tp.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "fast.yaml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	root := newRootCmd(&stdout, &stderr)
	root.SetArgs([]string{"topology", "validate", path})
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if !strings.Contains(stdout.String(), ": ok (") {
		t.Errorf("stdout %q, want it ok", stdout.String())
	}
	if want := path + ": warning: ledger.election_ms: 250 is below 10 × the largest round trip (30ms"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q, want it to contain %q", stderr.String(), want)
	}
}
