package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fibercut/fibercut/verify"
)

// runVerify runs "fibercut verify ARGS..." and returns stdout, stderr and
// the exit code run would return.
func runVerify(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	root := newRootCmd(&stdout, &stderr)
	if c, _, err := root.Find([]string{"verify"}); err != nil || c == root {
		root.AddCommand(newVerifyCmd()) // until root.go registers it
	}
	root.SetArgs(append([]string{"verify"}, args...))
	err := root.ExecuteContext(context.Background())
	code := 0
	if err != nil {
		code = 2
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		stderr.WriteString("fibercut: " + err.Error() + "\n")
	}
	return stdout.String(), stderr.String(), code
}

const testdata = "../../verify/testdata/"

func TestVerifyCmd(t *testing.T) {
	dir := t.TempDir()
	garbled := filepath.Join(dir, "garbled.jsonl")
	if err := os.WriteFile(garbled, []byte(`{"format":"fibercut-history/1"}`+"\n"+`{"seq":1,"kind":"transfer","outcome":"maybe"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string // parts of stdout
		stderr string   // a part of stderr
	}{
		{"valid", []string{testdata + "history.jsonl", "--state", testdata + "state-ok.json"}, 0, []string{
			"history ../../verify/testdata/history.jsonl: 8 ops\n",
			"state   ../../verify/testdata/state-ok.json: revision 7, 2 accounts, 2 transfers, 3 members\n",
			"✓ money conserved: 2 accounts hold 200,000,000 fen = 2 × 100,000,000\n",
			"✓ every ok transfer present: 2 acknowledged transfers, all present\n",
			"✓ all members agree: 3 members agree, hash 0xdeadbeef at revision 7\n",
			"transfers: 2 acknowledged, 0 lost, 1 failed, unknown: 0 applied, 1 not found; 0 never issued\n",
			"VALID",
		}, ""},
		{"lost transfer", []string{testdata + "history.jsonl", "--state", testdata + "state-lost.json"}, 1, []string{
			"✗ every ok transfer present: 1 of 2 acknowledged transfers missing (RPO > 0): a2b3c4/r1-u0-1\n",
			"✓ replay equals final balances:",
			"transfers: 2 acknowledged, 1 lost,",
			"INVALID: 1 of 9 checks failed\n",
		}, "verify: 1 of 9 checks failed"},
		{"missing history", []string{filepath.Join(dir, "nope.jsonl"), "--state", testdata + "state-ok.json"}, 2, nil,
			"history: open " + filepath.Join(dir, "nope.jsonl") + ": no such file or directory"},
		{"garbled history", []string{garbled, "--state", testdata + "state-ok.json"}, 2, nil,
			"history " + garbled + `: verify: history line 2: outcome "maybe" is not ok, fail or unknown`},
		{"history as state", []string{testdata + "history.jsonl", "--state", testdata + "history.jsonl"}, 2, nil,
			"history.jsonl: data after the JSON object (is it a history?)"},
		{"no state flag", []string{testdata + "history.jsonl"}, 2, nil, `required flag(s) "state" not set`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runVerify(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d; stderr: %s", code, tt.code, errOut)
			}
			for _, want := range tt.stdout {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
			if !strings.Contains(errOut, tt.stderr) {
				t.Errorf("stderr %q, want it to contain %q", errOut, tt.stderr)
			}
		})
	}
}

func TestVerifyCmdJSON(t *testing.T) {
	out, _, code := runVerify(t, testdata+"history.jsonl", "--state", testdata+"state-lost.json", "--json")
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	var res verify.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("not a Result: %v\n%s", err, out)
	}
	if res.Valid || res.Lost != 1 || res.Acknowledged != 2 || len(res.Checks) != 9 {
		t.Errorf("result %+v", res)
	}
}

func TestVerifyCmdTruncatedHistory(t *testing.T) {
	data, err := os.ReadFile(testdata + "history.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(string(data), "\n"), "\n")
	for _, c := range []struct {
		name, text string
		ops        int
	}{
		// The recorder died while writing the last op (a read).
		{"mid-record", string(data[:len(data)-len(lines[len(lines)-1])-40]), 7},
		// The file was cut cleanly between two lines: only the missing
		// end record tells.
		{"at a line boundary", strings.Join(lines[:len(lines)-1], ""), 8},
	} {
		t.Run(c.name, func(t *testing.T) {
			cut := filepath.Join(t.TempDir(), "cut.jsonl")
			if err := os.WriteFile(cut, []byte(c.text), 0o644); err != nil {
				t.Fatal(err)
			}
			out, errOut, code := runVerify(t, cut, "--state", testdata+"state-ok.json")
			if code != 1 || !strings.Contains(errOut, "history "+cut+": verify: history truncated") ||
				!strings.Contains(errOut, fmt.Sprintf("checking its %d complete ops", c.ops)) || !strings.Contains(out, "VALID") {
				t.Errorf("code %d (want 1: the checks hold, but on a history cut short)\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
		})
	}
}
