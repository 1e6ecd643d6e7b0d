package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fibercut/fibercut/demoapp"
	"github.com/fibercut/fibercut/faults"
	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/lab/labtest"
	"github.com/fibercut/fibercut/verify"
)

// tmuxScreen runs a command in a detached tmux session of 160×45, as a
// person's terminal, and reads its screen.
type tmuxScreen struct {
	t    *testing.T
	name string
}

func newTmux(t *testing.T, env []string, args ...string) *tmuxScreen {
	t.Helper()
	labtest.RequireCommand(t, "tmux")
	b := make([]byte, 4)
	rand.Read(b)
	s := &tmuxScreen{t: t, name: "fibercut-test-" + hex.EncodeToString(b)}
	cmd := append([]string{"new-session", "-d", "-s", s.name, "-x", "160", "-y", "45"}, "env")
	cmd = append(cmd, env...)
	cmd = append(cmd, args...)
	if out, err := exec.Command("tmux", cmd...).CombinedOutput(); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("tmux", "kill-session", "-t", s.name).Run() })
	return s
}

func (s *tmuxScreen) keys(k ...string) {
	s.t.Helper()
	if out, err := exec.Command("tmux", append([]string{"send-keys", "-t", s.name}, k...)...).CombinedOutput(); err != nil {
		s.t.Fatalf("tmux send-keys %v: %v\n%s", k, err, out)
	}
}

func (s *tmuxScreen) capture() string {
	out, _ := exec.Command("tmux", "capture-pane", "-t", s.name, "-p").Output()
	return string(out)
}

// waitFor polls the screen, for at most timeout, until it matches re.
func (s *tmuxScreen) waitFor(what string, re *regexp.Regexp, timeout time.Duration) string {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		screen := s.capture()
		if re.MatchString(screen) {
			return screen
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: the screen never matched %q within %s; it shows:\n%s", what, re, timeout, screen)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// playStage plays the speaker's part on a stage at its join screen, with
// the hall's client: two accounts opened (the join screen counts them),
// space, a transfer between them (the dashboard counts it), c (the map
// shows the cut and the stopwatch runs, then stops), h (the map shows the
// heal), enter; it returns the verdict screen.
func (s *tmuxScreen) playStage(hall demoapp.Client, key string) string {
	s.t.Helper()
	ctx := context.Background()
	alice, _, err := hall.Open(ctx)
	if err != nil {
		s.t.Fatalf("the hall opens an account at %s: %v", hall.Base, err)
	}
	bob, _, err := hall.Open(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	s.waitFor("the hall's accounts on the join screen", regexp.MustCompile(`accounts opened: 2`), time.Minute)
	s.keys("Space")
	s.waitFor("the dashboard with money read", regexp.MustCompile(`66 × ¥1,000,000 = ¥66,000,000 ✓`), time.Minute)
	if _, _, err := hall.Transfer(ctx, alice, demoapp.TransferRequest{To: bob.ID, AmountFen: 12_345, Key: key}); err != nil {
		s.t.Fatalf("a transfer from the hall: %v", err)
	}
	s.waitFor("the hall's transfer on the dashboard", regexp.MustCompile(`transfers ok 1`), time.Minute)
	s.keys("c")
	// One screen shows both the cut on the map and the stopwatch going.
	s.waitFor("the cut and the stopwatch", regexp.MustCompile(`(recovering…|recovered)[\s\S]*Hangzhou ⇄ Shanghai\s+╳╳╳╳\s+4 cut`), time.Minute)
	s.waitFor("the stopwatch stopped", regexp.MustCompile(`recovered`), time.Minute)
	s.keys("h")
	s.waitFor("the heal on the map", regexp.MustCompile(`Hangzhou ⇄ Shanghai\s+━━━━\s+4 ok`), time.Minute)
	s.keys("Enter")
	return s.waitFor("the verdict", regexp.MustCompile(`(PASS|FAIL)[\s\S]*RTO [0-9.]+ s`), 3*time.Minute)
}

// quit presses q and waits up to a minute for the program to end: the
// stage heals what it applied before it does.
func (s *tmuxScreen) quit() {
	s.keys("q")
	for deadline := time.Now().Add(time.Minute); exec.Command("tmux", "has-session", "-t", s.name).Run() == nil && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
	}
}

// TestStageReplayInTmux plays the real drill of tui/testdata through
// `fibercut stage --replay` in a terminal: no Docker; the final screen shows
// the report's RTO and verdict.
func TestStageReplayInTmux(t *testing.T) {
	bin := labtest.StaticBinary(t)
	dir := filepath.Join("..", "..", "tui", "testdata", "drill")
	rep, err := verify.ReadReport(dir)
	if err != nil {
		t.Fatal(err)
	}
	main, _ := rep.RTO.Main()
	s := newTmux(t, nil, bin, "stage", "--replay", dir, "--speed", "20", "--lang", "en")
	rto := regexp.MustCompile(regexp.QuoteMeta(fmt.Sprintf("RTO %.2f s", main.Outage.RTO.Seconds())))
	screen := s.waitFor("the replay's verdict", rto, 60*time.Second)
	if !strings.Contains(screen, "PASS") || !strings.Contains(screen, "lost 0") {
		t.Errorf("the verdict screen lacks PASS and lost 0:\n%s", screen)
	}
	s.keys("q")
}

// TestStageOnLab runs `fibercut stage` on a real lab in a terminal, as the
// speaker would: space, c (a cut after the countdown: the map shows it and
// the stopwatch runs), h, enter (PASS, with the RTO and nothing lost), q;
// then no fault is in force.
func TestStageOnLab(t *testing.T) {
	cli := labtest.RequireDocker(t)
	labtest.RequireRoot(t)
	bin := labtest.StaticBinary(t)
	name := labtest.UniqueName(t)
	labtest.Cleanup(t, cli, name)
	state := t.TempDir()
	out := t.TempDir()
	s := newTmux(t, []string{"FIBERCUT_STATE_DIR=" + state}, bin, "stage", "--name", name, "--lang", "en", "--out", out,
		"--binary", bin, "--audience-url", "http://192.0.2.10:8080/", "--max", "10m")
	s.waitFor("the join screen", regexp.MustCompile(`Scan for a virtual account`), 3*time.Minute)
	// Two people in the hall open accounts through the published port, as
	// the page does; the join screen counts them.
	l, err := lab.Inspect(context.Background(), cli, name)
	if err != nil {
		t.Fatal(err)
	}
	hall := demoapp.Client{Base: "http://127.0.0.1:" + strconv.Itoa(l.Gateway.HostPort), As: demoapp.ClientPage}
	screen := s.playStage(hall, "stage-1")
	rep, err := verify.ReadReport(out)
	if err != nil {
		t.Fatal(err)
	}
	main, _ := rep.RTO.Main()
	if want := fmt.Sprintf("RTO %.2f s", main.Outage.RTO.Seconds()); !strings.Contains(screen, want) {
		t.Errorf("the verdict screen does not show the report's %q:\n%s", want, screen)
	}
	if !strings.Contains(screen, "PASS") || !strings.Contains(screen, "lost 0") {
		t.Errorf("the verdict is not PASS with nothing lost:\n%s", screen)
	}
	if want := "the hall: accounts opened 2 · transfers ok 1 · lost 0"; !strings.Contains(screen, want) {
		t.Errorf("the verdict screen does not prove the hall's money apart (%q):\n%s", want, screen)
	}
	s.quit()
	recs, err := faults.NewInjector(cli, l, faults.NewStore(filepath.Join(state, name+".faults.json"))).Live(time.Now())
	if err != nil || len(recs) != 0 {
		t.Errorf("after q: faults in force %+v (%v)", recs, err)
	}
	if _, err := os.Stat(filepath.Join(out, "stage.log")); err != nil {
		t.Errorf("the stage wrote no log file: %v", err)
	}
}
