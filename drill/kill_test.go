package drill_test

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fibercut/fibercut/faults"
	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/lab/labtest"
)

// TestKilledDrillLeavesNothing SIGKILLs `fibercut drill run` at three
// moments: during an isolation, during a power-off, and during the final
// heal. After the faults' time, with no command run, nothing of fibercut's
// may be in force in any namespace, and every DC must run and be healthy.
func TestKilledDrillLeavesNothing(t *testing.T) {
	cli := labtest.RequireDocker(t)
	labtest.RequireRoot(t)
	bin := labtest.StaticBinary(t)
	name := labtest.UniqueName(t)
	labtest.Cleanup(t, cli, name)
	stateDir := t.TempDir()
	store := faults.NewStore(filepath.Join(stateDir, name+".faults.json"))
	for _, tc := range []struct{ name, scenario, trigger string }{
		{"during an isolation", "atec-2018", "isolate city hangzhou in force"},
		{"during a power-off", "dc-power-loss", "power-off dc hz-a in force"},
		{"during the final heal", "dc-power-loss", "healing the drill's faults"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, "drill", "run", tc.scenario, "--name", name, "--time-scale", "0.5",
				"--out", t.TempDir(), "--binary", bin)
			cmd.Env = append(os.Environ(), "FIBERCUT_STATE_DIR="+stateDir)
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stdout = io.Discard
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			var seen []string
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				seen = append(seen, sc.Text())
				if strings.Contains(sc.Text(), tc.trigger) {
					break
				}
			}
			cmd.Process.Signal(syscall.SIGKILL)
			go io.Copy(io.Discard, stderr)
			if !strings.Contains(strings.Join(seen, "\n"), tc.trigger) {
				t.Fatalf("the drill never said %q; it said:\n%s", tc.trigger, strings.Join(seen, "\n"))
			}
			// Wait out the faults' time, as the records give it.
			st, err := store.Load()
			if err != nil {
				t.Fatal(err)
			}
			end := time.Now()
			for _, r := range st.Records {
				if r.Until.After(end) {
					end = r.Until
				}
			}
			time.Sleep(time.Until(end.Add(time.Second)))
			ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
			defer cancel()
			var res []string
			for {
				l, err := lab.Inspect(ctx, cli, name)
				if err != nil {
					t.Fatal(err)
				}
				res, err = faults.NewInjector(cli, l, store).Residue(ctx)
				if err != nil {
					t.Fatal(err)
				}
				// A powered-off DC is started by its watchdog at the
				// fault's end: give Docker a moment.
				if len(res) == 0 || ctx.Err() != nil {
					if len(res) == 0 {
						if err := l.WaitHealthy(ctx, 120*time.Second); err != nil {
							t.Fatalf("after the faults' time: %v", err)
						}
					}
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			if len(res) > 0 {
				t.Fatalf("after the faults' time, still in force:\n  %s", strings.Join(res, "\n  "))
			}
		})
	}
}
