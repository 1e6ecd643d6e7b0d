package tui

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/fibercut/fibercut/drill"
	"github.com/fibercut/fibercut/topology"
)

// updating says whether the tests were run with -update: rewrite the
// golden screens in testdata/. The flag is teatest's (its golden package
// defines it), so it is looked up rather than defined again.
func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// golden compares a drawn screen, colours stripped, with testdata/screens/NAME.
func golden(t *testing.T, name, screen string) {
	t.Helper()
	got := ansi.Strip(screen) + "\n"
	path := filepath.Join("testdata", "screens", name)
	if updating() {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("screen %s:\n%s\nwant:\n%s", name, got, want)
	}
}

func defaultTopology(t *testing.T) *topology.Topology {
	t.Helper()
	tp, err := topology.Builtin(topology.Default)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

// replayModel is a dashboard replaying testdata/drill up to a fraction of
// the drill (1 for all of it, verdict included).
func replayModel(t *testing.T, lang Lang, w, h int, part float64) *Model {
	t.Helper()
	sb := NewScoreboard(20)
	r, err := LoadReplay(filepath.Join("testdata", "drill"), 1, sb)
	if err != nil {
		t.Fatal(err)
	}
	if part >= 1 {
		r.Finish()
	} else {
		last := r.ops[len(r.ops)-1].Complete
		r.PlayTo(r.begin + time.Duration(part*float64(last-r.begin)))
	}
	m := New(Options{Topology: defaultTopology(t), Scoreboard: sb, Replay: r, Lang: lang, Title: "stage-testdata",
		AudienceURL: "http://192.168.1.20:8080/", Dashboard: true, ReportDir: "testdata/drill"})
	m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	return m
}

// TestScreensGolden draws the dashboard, mid-fault and at the verdict, and
// the join screen, at three sizes in both languages, and compares them with
// the golden screens (rewritten with -update). Every line fits the width.
func TestScreensGolden(t *testing.T) {
	for _, size := range [][2]int{{80, 24}, {120, 36}, {160, 45}} {
		for _, lang := range []Lang{ZH, EN} {
			for _, part := range []struct {
				name string
				at   float64
			}{{"fault", 0.45}, {"verdict", 1}} {
				name := fmt.Sprintf("%s-%s-%dx%d", part.name, lang, size[0], size[1])
				m := replayModel(t, lang, size[0], size[1], part.at)
				screen := m.Render()
				checkFits(t, name, screen, size[0], size[1])
				golden(t, name, screen)
			}
			m := replayModel(t, lang, size[0], size[1], 0)
			m.screen = screenJoin
			name := fmt.Sprintf("join-%s-%dx%d", lang, size[0], size[1])
			screen := m.Render()
			checkFits(t, name, screen, size[0], size[1])
			golden(t, name, screen)
		}
	}
}

func checkFits(t *testing.T, name, screen string, w, h int) {
	t.Helper()
	if m := regexp.MustCompile(`\b(key|audience|money|rto)\.[a-z.]+`).FindString(ansi.Strip(screen)); m != "" {
		t.Errorf("%s shows %q: a text with no words for it", name, m)
	}
	lines := strings.Split(screen, "\n")
	if len(lines) > h {
		t.Errorf("%s: %d lines on a screen of %d", name, len(lines), h)
	}
	for i, l := range lines {
		if got := ansi.StringWidth(l); got > w {
			t.Errorf("%s: line %d is %d columns wide on a screen of %d: %q", name, i+1, got, w, ansi.Strip(l))
		}
	}
}

// TestVerdictShowsTheReportsRTO checks the replay's final screen against
// the report: its headline RTO and the verdict.
func TestVerdictShowsTheReportsRTO(t *testing.T) {
	m := replayModel(t, EN, 160, 45, 1)
	screen := ansi.Strip(m.Render())
	rep := m.opts.Replay.Report()
	main, _ := rep.RTO.Main()
	if want := "RTO " + seconds(main.Outage.RTO); !strings.Contains(screen, want) {
		t.Errorf("verdict screen lacks %q:\n%s", want, screen)
	}
	verdict := "FAIL"
	if rep.Passed {
		verdict = "PASS"
	}
	if !strings.Contains(screen, verdict) {
		t.Errorf("verdict screen lacks %s:\n%s", verdict, screen)
	}
}

func TestTooSmall(t *testing.T) {
	m := replayModel(t, EN, 79, 30, 1)
	if s := ansi.Strip(m.Render()); !strings.Contains(s, "terminal too small") {
		t.Errorf("79×30: %q", s)
	}
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 36})
	if s := ansi.Strip(m.Render()); strings.Contains(s, "terminal too small") {
		t.Error("after a resize to 120×36 the screen still says too small")
	}
}

// fakeController records what the keys asked for.
type fakeController struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeController) record(s string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
	return nil
}
func (f *fakeController) Cut(context.Context) error { return f.record("cut") }
func (f *fakeController) Isolate(_ context.Context, dc string) error {
	return f.record("isolate " + dc)
}
func (f *fakeController) HealAll(context.Context) error { return f.record("heal") }
func (f *fakeController) Finish(context.Context) error  { return f.record("finish") }

// run feeds messages to the model the way bubbletea does: each returned
// Cmd is run and its message fed back, until none is left (ticks are
// dropped, so that the loop ends).
func run(m *Model, msgs ...tea.Msg) {
	queue := msgs
	for len(queue) > 0 {
		msg := queue[0]
		queue = queue[1:]
		_, cmd := m.Update(msg)
		queue = append(queue, runCmd(cmd)...)
	}
}

func runCmd(cmd tea.Cmd) []tea.Msg {
	if cmd == nil {
		return nil
	}
	switch msg := cmd().(type) {
	case tea.BatchMsg:
		var out []tea.Msg
		for _, c := range msg {
			out = append(out, runCmd(c)...)
		}
		return out
	case tickMsg, nil:
		return nil
	default:
		return []tea.Msg{msg}
	}
}

func press(s string) tea.KeyPressMsg {
	switch s {
	case "space":
		return tea.KeyPressMsg{Code: tea.KeySpace, Text: " "}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "ctrl+c":
		return tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}
	}
	r := []rune(s)[0]
	return tea.KeyPressMsg{Code: r, Text: s}
}

func liveModel(t *testing.T) (*Model, *fakeController) {
	f := &fakeController{}
	m := New(Options{Topology: defaultTopology(t), Scoreboard: NewScoreboard(5), Controller: f, Lang: EN,
		AudienceURL: "http://192.168.1.20:8080/", Countdown: time.Millisecond})
	m.Update(tea.WindowSizeMsg{Width: 160, Height: 45})
	return m, f
}

func TestKeys(t *testing.T) {
	t.Run("c cuts after the countdown", func(t *testing.T) {
		m, f := liveModel(t)
		run(m, press("c")) // on the join screen: nothing
		if len(f.calls) != 0 {
			t.Fatalf("c on the join screen: %v", f.calls)
		}
		run(m, press("space"), press("c"))
		if strings.Join(f.calls, ",") != "cut" {
			t.Errorf("calls after space, c: %v; want cut", f.calls)
		}
	})
	t.Run("esc during the countdown cuts nothing", func(t *testing.T) {
		m, f := liveModel(t)
		run(m, press("space"))
		_, cmd := m.Update(press("c"))
		if m.countdown != 3 || !strings.Contains(ansi.Strip(m.Render()), "cutting in") {
			t.Fatalf("countdown %d after c; screen:\n%s", m.countdown, ansi.Strip(m.Render()))
		}
		run(m, press("esc"))
		run(m, runCmd(cmd)...) // the countdown's next tick arrives after esc
		if len(f.calls) != 0 || m.countdown != 0 {
			t.Errorf("after esc: calls %v, countdown %d", f.calls, m.countdown)
		}
	})
	t.Run("keys of the lab", func(t *testing.T) {
		m, f := liveModel(t)
		for _, k := range []string{"space", "h", "2", "l", "9", "enter"} {
			run(m, press(k)) // one at a time: a key that acts waits for the last action
		}
		if got := strings.Join(f.calls, ","); got != "heal,isolate hz-b,isolate ,finish" {
			t.Errorf("calls %q", got)
		}
	})
	for _, k := range []string{"q", "ctrl+c"} {
		t.Run(k+" heals, then quits", func(t *testing.T) {
			m, f := liveModel(t)
			_, cmd := m.Update(press(k))
			msgs := runCmd(cmd)
			if strings.Join(f.calls, ",") != "heal" {
				t.Fatalf("calls %v, want heal", f.calls)
			}
			var quit bool
			for _, msg := range msgs {
				_, c := m.Update(msg)
				if c != nil {
					_, quit = c().(tea.QuitMsg)
				}
			}
			if !quit {
				t.Error("no quit after the heal")
			}
		})
	}
	t.Run("? shows every key", func(t *testing.T) {
		m, _ := liveModel(t)
		run(m, press("space"))
		short := ansi.Strip(m.footer())
		if !strings.Contains(short, "c cut (3-2-1)") || strings.Contains(short, "cancel the countdown") {
			t.Errorf("the footer: %q", short)
		}
		run(m, press("?"))
		full := ansi.Strip(m.Render())
		for _, want := range []string{"space dashboard", "esc   cancel the countdown", "1-9   isolate the n-th DC", "enter finish and verify"} {
			if !strings.Contains(full, want) {
				t.Errorf("the full help lacks %q:\n%s", want, full)
			}
		}
	})
	t.Run("L switches the language, f and z the screens", func(t *testing.T) {
		m, _ := liveModel(t)
		if !strings.Contains(ansi.Strip(m.Render()), "Scan for a virtual account") {
			t.Fatal("join screen first")
		}
		run(m, press("L"))
		if !strings.Contains(ansi.Strip(m.Render()), "扫码") {
			t.Error("L did not switch to 中文")
		}
		run(m, press("space"), press("z"))
		if strings.Contains(ansi.Strip(m.Render()), "enter 结束") {
			t.Error("presenter mode still shows the footer")
		}
		run(m, press("f"))
		if m.screen != screenJoin {
			t.Error("f did not bring the QR code back")
		}
	})
}

// TestRolesOnTheMap checks that the map shows the ledger's roles, and that
// the roles are asked at most every RolesEvery, however often the screen
// is refreshed.
func TestRolesOnTheMap(t *testing.T) {
	m, _ := liveModel(t)
	calls := 0
	m.opts.Roles = func(context.Context) (map[string]string, error) {
		calls++
		return map[string]string{"sh-a": "leader", "hz-a": "no quorum", "hz-b": "follower"}, nil
	}
	now := time.Now()
	run(m, press("space"), tickMsg(now), tickMsg(now.Add(250*time.Millisecond)), tickMsg(now.Add(time.Second)))
	if calls != 1 {
		t.Errorf("roles asked %d times in a second; want once (every %s)", calls, m.opts.RolesEvery)
	}
	screen := ansi.Strip(m.Render())
	for _, want := range []string{"sh-a ★leader", "hz-a no quorum"} {
		if !strings.Contains(screen, want) {
			t.Errorf("the map lacks %q:\n%s", want, screen)
		}
	}
	run(m, tickMsg(now.Add(4*time.Second)))
	if calls != 2 {
		t.Errorf("roles asked %d times after 4 s; want twice", calls)
	}
}

// TestBannerNamesTheCity checks that once commits are back during a fault,
// the banner says where users were switched to: the leader's city.
func TestBannerNamesTheCity(t *testing.T) {
	m := replayModel(t, EN, 160, 45, 0.45)
	if s := ansi.Strip(m.Render()); !strings.Contains(s, "switched to another city") {
		t.Fatalf("without roles the banner should not name a city:\n%s", s)
	}
	m.roles = map[string]string{"sh-b": "leader", "sh-a": "follower"}
	if s := ansi.Strip(m.Render()); !strings.Contains(s, "已切换至上海 / switched to Shanghai") {
		t.Errorf("the banner does not name Shanghai:\n%s", s)
	}
}

// TestAudienceOnScreen checks that the join screen counts the hall's
// accounts by home city, and the dashboard says how many another city
// serves now; both fit every size.
func TestAudienceOnScreen(t *testing.T) {
	hall := Audience{Opened: map[string]int{"hangzhou": 3, "shanghai": 2, "shenzhen": 2}, Switched: 2, Transfers: 11}
	for _, size := range [][2]int{{80, 24}, {120, 36}, {160, 45}} {
		for _, lang := range []Lang{ZH, EN} {
			m := replayModel(t, lang, size[0], size[1], 0.45)
			m.opts.Audience = func(context.Context) (Audience, error) { return hall, nil }
			run(m, runCmd(m.pollJoined())...)
			m.screen = screenJoin
			name := fmt.Sprintf("audience-join-%s-%dx%d", lang, size[0], size[1])
			screen := m.Render()
			checkFits(t, name, screen, size[0], size[1])
			golden(t, name, screen)
			if lang == EN && !strings.Contains(ansi.Strip(screen), "accounts opened: 7") {
				t.Errorf("%s lacks the count of accounts opened:\n%s", name, ansi.Strip(screen))
			}
			m.screen = screenDashboard
			name = fmt.Sprintf("audience-dashboard-%s-%dx%d", lang, size[0], size[1])
			screen = m.Render()
			checkFits(t, name, screen, size[0], size[1])
			golden(t, name, screen)
			if lang == EN && size[0] >= 120 && !strings.Contains(ansi.Strip(screen), "served elsewhere 2") {
				t.Errorf("%s lacks the switched count:\n%s", name, ansi.Strip(screen))
			}
		}
	}
}

// TestAmbiguousWideLayoutHolds draws every screen as a CJK terminal set to
// ambiguous-wide shows it, where box drawing, blocks and most symbols take
// two columns: with AmbiguousWide every line still fits the screen, and
// without it the same screens overflow (so the measure can fail).
func TestAmbiguousWideLayoutHolds(t *testing.T) {
	hall := Audience{Opened: map[string]int{"hangzhou": 3, "shanghai": 2}, Switched: 1, Transfers: 4}
	overflowed := 0
	for _, size := range [][2]int{{80, 24}, {120, 36}, {160, 45}} {
		for _, lang := range []Lang{ZH, EN} {
			for _, part := range []struct {
				name   string
				at     float64
				screen screen
			}{{"join", 0, screenJoin}, {"fault", 0.45, screenDashboard}, {"verdict", 1, screenDashboard}} {
				for _, wide := range []bool{true, false} {
					m := replayModel(t, lang, size[0], size[1], part.at)
					m.opts.AmbiguousWide, m.st.ascii = wide, wide
					m.opts.Audience = func(context.Context) (Audience, error) { return hall, nil }
					run(m, runCmd(m.pollJoined())...)
					m.screen = part.screen
					name := fmt.Sprintf("wide-%s-%s-%dx%d", part.name, lang, size[0], size[1])
					lines := strings.Split(ansi.Strip(m.Render()), "\n")
					for i, l := range lines {
						w := ambiguous.StringWidth(l)
						switch {
						case !wide && w > size[0]:
							overflowed++
						case wide && w > size[0]:
							t.Errorf("%s: line %d is %d columns wide in an ambiguous-wide terminal of %d: %q", name, i+1, w, size[0], l)
						}
					}
					if wide && size[0] == 160 {
						golden(t, name, m.Render())
					}
				}
			}
		}
	}
	if overflowed == 0 {
		t.Error("no screen drawn without AmbiguousWide overflows an ambiguous-wide terminal: the measure cannot fail")
	}
}

// TestCutIsTheScenariosFirstFault checks what c applies on stage: for
// atec-2018, Hangzhou isolated for the step's 30 s.
func TestCutIsTheScenariosFirstFault(t *testing.T) {
	sc, err := drill.BuiltinScenario("atec-2018")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := CutSpec(sc)
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.String(); got != "isolate city hangzhou" || spec.For != 30*time.Second {
		t.Errorf("c applies %q for %s; want isolate city hangzhou for 30s", got, spec.For)
	}
	if _, err := CutSpec(&drill.Scenario{Name: "calm"}); err == nil || !strings.Contains(err.Error(), "no fault step") {
		t.Errorf("a scenario without faults: %v", err)
	}
}
