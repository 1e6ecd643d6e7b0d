package tui

import (
	"cmp"
	"fmt"
	"image/color"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/exp/teatest/v2"
	"github.com/charmbracelet/x/vt"
)

// terminal runs a model as a real bubbletea program (teatest) and feeds
// what it writes to a terminal emulator (vt) of w×h, so that tests read
// the settled screen as a person sees it, not the byte stream.
type terminal struct {
	t    *testing.T
	tm   *teatest.TestModel
	mu   sync.Mutex
	emu  *vt.Emulator
	done chan struct{}
}

func newTerminal(t *testing.T, m tea.Model, w, h int) *terminal {
	t.Helper()
	term := &terminal{t: t, emu: vt.NewEmulator(w, h), done: make(chan struct{})}
	// The emulator answers the program's queries on its input side, which
	// nothing here reads: drain it, or the emulator blocks.
	go io.Copy(io.Discard, term.emu)
	term.tm = teatest.NewTestModel(t, m, teatest.WithInitialTermSize(w, h),
		teatest.WithProgramOptions(tea.WithColorProfile(colorprofile.TrueColor))) // a terminal, though the output is a pipe
	t.Cleanup(func() {
		close(term.done)
		term.emu.Close()
	})
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := term.tm.Output().Read(buf)
			if n > 0 {
				term.mu.Lock()
				term.emu.Write(buf[:n])
				term.mu.Unlock()
			}
			select {
			case <-term.done:
				return
			default:
			}
			if err == io.EOF || n == 0 {
				time.Sleep(10 * time.Millisecond) // the program has not written more yet
			}
		}
	}()
	return term
}

// screen is the emulator's text, trailing blanks of each line cut.
func (term *terminal) screen() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	lines := strings.Split(term.emu.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.TrimRight(strings.Join(lines, "\n"), "\n")
}

// waitFor polls the screen until it matches re and has settled (the
// same for 300 ms), for at most 20 s.
func (term *terminal) waitFor(what string, re *regexp.Regexp) string {
	term.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last string
	var since time.Time
	for {
		s := term.screen()
		if s != last {
			last, since = s, time.Now()
		}
		if re.MatchString(s) && time.Since(since) >= 300*time.Millisecond {
			return s
		}
		if time.Now().After(deadline) {
			term.t.Fatalf("waiting for %s (%s); the screen:\n%s", what, re, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReplayInATerminal plays the committed drill through the real
// program (teatest: its own input, output and window size) until the
// verdict, quits with q, and compares the model's settled screen with the
// verdict's golden screen.
func TestReplayInATerminal(t *testing.T) {
	sb := NewScoreboard(20)
	r, err := LoadReplay(filepath.Join("testdata", "drill"), 200, sb)
	if err != nil {
		t.Fatal(err)
	}
	m := New(Options{Topology: defaultTopology(t), Scoreboard: sb, Replay: r, Lang: EN, Title: "stage-testdata",
		AudienceURL: "http://192.168.1.20:8080/", Dashboard: true, ReportDir: "testdata/drill", Tick: 20 * time.Millisecond})
	tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(160, 45))
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return strings.Contains(string(b), "PASS") },
		teatest.WithDuration(20*time.Second))
	tm.Type("q")
	final := tm.FinalModel(t, teatest.WithFinalTimeout(10*time.Second)).(*Model) // q quit the program
	golden(t, "verdict-en-160x45", final.Render())
}

// TestQRInATerminal draws the join screen through the real program into a
// terminal emulator and reads the QR code back from the emulator's cells,
// as a phone would see the screen: the modules equal the encoder's, and
// the quiet zone is light, not inverted. In ambiguous-wide mode the code
// is coloured spaces, two a module, read back from the cells' colours.
//
// Only the first, whole frame is read: vt v0.1.0, the version the module
// proxy serves, mis-applies the renderer's later partial updates (its
// erase-and-delete-characters sequences; tmux applies them right), so
// settled screens after updates are read through tmux (cmd/fibercut).
func TestQRInATerminal(t *testing.T) {
	const url = "http://192.168.1.20:8080/"
	q, err := NewQR(url)
	if err != nil {
		t.Fatal(err)
	}
	for _, wide := range []bool{false, true} {
		t.Run(fmt.Sprintf("ambiguous-wide=%v", wide), func(t *testing.T) {
			m := New(Options{Topology: defaultTopology(t), Scoreboard: NewScoreboard(5), Lang: EN, AudienceURL: url, AmbiguousWide: wide})
			term := newTerminal(t, m, 160, 45)
			screen := term.waitFor("the join screen", regexp.MustCompile(regexp.QuoteMeta(url)))
			qw, qh := q.size(wide)
			x0 := (160 - qw) / 2
			// The code's first row is the first after the header and a
			// blank line.
			const y0 = 2
			term.mu.Lock()
			defer term.mu.Unlock()
			light := m.st.qr.GetBackground()
			var bits [][]bool
			var lines []string
			for y := y0; y < y0+qh; y++ {
				var row []bool
				var line strings.Builder
				for x := x0; x < x0+qw; x++ {
					c := term.emu.CellAt(x, y)
					if c == nil {
						t.Fatalf("no cell at %d,%d", x, y)
					}
					line.WriteString(cmp.Or(c.Content, " "))
					if wide && (x-x0)%2 == 0 {
						row = append(row, !sameColor(c.Style.Bg, light))
					}
					if (x == x0 || x == x0+qw-1) && !sameColor(c.Style.Bg, light) {
						t.Errorf("the quiet zone at %d,%d is not light: background %v", x, y, c.Style.Bg)
					}
				}
				bits = append(bits, row)
				lines = append(lines, line.String())
			}
			if !wide {
				if bits, err = readHalfBlocks(lines, len(q.Bits)); err != nil {
					t.Fatalf("%v; the screen:\n%s", err, screen)
				}
			}
			if fmt.Sprint(bits) != fmt.Sprint(q.Bits) {
				t.Errorf("the modules read from the terminal differ from the encoder's; the screen:\n%s", screen)
			}
		})
	}
}

func sameColor(a, b color.Color) bool {
	if a == nil || b == nil {
		return a == b
	}
	r1, g1, b1, a1 := a.RGBA()
	r2, g2, b2, a2 := b.RGBA()
	return r1 == r2 && g1 == g2 && b1 == b2 && a1 == a2
}
