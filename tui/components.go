package tui

import (
	"fmt"
	"image/color"
	"strings"
	"time"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/fibercut/fibercut/drill"
	"github.com/fibercut/fibercut/topology"
	"github.com/fibercut/fibercut/verify"
)

// styles are the dashboard's colours; every component takes them.
type styles struct {
	title, dim, ok, bad, warn, box lipgloss.Style
	qr                             lipgloss.Style
	// ascii: the terminal draws ambiguous-width characters two columns
	// wide; components that draw shapes use ASCII ones.
	ascii bool
}

func newStyles() styles {
	c := func(s string) color.Color { return lipgloss.Color(s) }
	return styles{
		title: lipgloss.NewStyle().Bold(true),
		dim:   lipgloss.NewStyle().Foreground(c("8")),
		ok:    lipgloss.NewStyle().Foreground(c("2")).Bold(true),
		bad:   lipgloss.NewStyle().Foreground(c("1")).Bold(true),
		warn:  lipgloss.NewStyle().Foreground(c("3")).Bold(true),
		box:   lipgloss.NewStyle().Border(lipgloss.RoundedBorder()).Padding(0, 1),
		// Dark modules on a light background, set explicitly: never
		// inverted by a dark terminal theme.
		qr: lipgloss.NewStyle().Foreground(c("#000000")).Background(c("#ffffff")),
	}
}

// fit pads or cuts s to exactly w columns (display width: CJK counts two).
func fit(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if ansi.StringWidth(s) > w {
		return ansi.Truncate(s, w, "…")
	}
	return s + strings.Repeat(" ", w-ansi.StringWidth(s))
}

// panel boxes lines under a title, w columns wide in all (border included).
func panel(st styles, title string, w int, lines ...string) string {
	inner := max(w-4, 1)
	out := make([]string, 0, len(lines)+1)
	out = append(out, fit(st.title.Render(title), inner))
	for _, l := range lines {
		out = append(out, fit(l, inner))
	}
	return st.box.Render(strings.Join(out, "\n"))
}

// mapLines draws the cities with their DCs, and the fibers between every
// two cities (Hangzhou⇄Shanghai is four: hz-a/b × sh-a/b).
func mapLines(st styles, lang Lang, t *topology.Topology, links map[[2]string]LinkState, dcs map[string]DCState, roles map[string]string) []string {
	var out []string
	for _, c := range t.Cities {
		var parts []string
		for _, d := range t.DCsIn(c.Name) {
			mark, label := st.ok.Render("●"), d.ID
			switch dcs[d.ID] {
			case DCIsolated:
				mark = st.bad.Render("●")
				label += " " + lang.t("isolated")
			case DCDown:
				mark = st.bad.Render("○")
				label += " " + lang.t("down")
			case DCPaused:
				mark = st.warn.Render("◌")
				label += " " + lang.t("paused")
			}
			switch roles[d.ID] {
			case "leader":
				label += " ★" + lang.t("leader")
			case "no quorum":
				label += " " + st.warn.Render(lang.t("noquorum"))
			}
			parts = append(parts, mark+" "+label)
		}
		out = append(out, fmt.Sprintf("%s  %s", fit(lang.city(t, c.Name), 8), strings.Join(parts, "  ")))
	}
	out = append(out, "")
	for i, a := range t.Cities {
		for _, b := range t.Cities[i+1:] {
			var fibers []string
			counts := map[LinkState]int{}
			for _, x := range t.DCsIn(a.Name) {
				for _, y := range t.DCsIn(b.Name) {
					s := links[linkKey(x.ID, y.ID)]
					if s == "" {
						s = LinkOK
					}
					counts[s]++
					switch s {
					case LinkCut:
						fibers = append(fibers, st.bad.Render("╳"))
					case LinkLossy, LinkDelayed, LinkThrottled:
						fibers = append(fibers, st.warn.Render("┅"))
					default:
						fibers = append(fibers, st.ok.Render("━"))
					}
				}
			}
			var say []string
			for _, s := range []LinkState{LinkOK, LinkCut, LinkLossy, LinkDelayed, LinkThrottled} {
				if counts[s] > 0 {
					say = append(say, fmt.Sprintf("%d %s", counts[s], lang.t(string(s))))
				}
			}
			out = append(out, fmt.Sprintf("%s ⇄ %s  %s  %s", fit(lang.city(t, a.Name), 8), fit(lang.city(t, b.Name), 8),
				strings.Join(fibers, ""), st.dim.Render(strings.Join(say, ", "))))
		}
	}
	return out
}

// sparks are the eight heights of a bar, lowest first.
var sparks = []rune("▁▂▃▄▅▆▇█")

// chartLines draws committed transfers per second, one column a bucket,
// the last w buckets; columns inside a fault window are drawn in the
// warning colour, and the line under the bars marks the 90 % of the
// pre-fault rate with '┈' where the rate is below it.
func chartLines(st styles, buckets []verify.Bucket, bucket time.Duration, windows []verify.FaultWindow, w, h int, baseline float64) []string {
	if w <= 0 || h <= 0 {
		return nil
	}
	if len(buckets) > w {
		buckets = buckets[len(buckets)-w:]
	}
	perSec := func(b verify.Bucket) float64 { return float64(b.Committed) / bucket.Seconds() }
	top := baseline * 1.2
	for _, b := range buckets {
		top = max(top, perSec(b))
	}
	if top <= 0 {
		top = 1
	}
	inFault := func(b verify.Bucket) bool {
		for _, f := range windows {
			if b.Start+bucket > f.Start && (f.End == 0 || b.Start < f.End) {
				return true
			}
		}
		return false
	}
	// Each row is drawn in runs of one style: one Render a run, not a
	// cell (the chart is most of a frame's cost).
	type run struct {
		style *lipgloss.Style
		text  []rune
	}
	rows := make([][]run, h)
	put := func(r int, style *lipgloss.Style, c rune) {
		if n := len(rows[r]); n > 0 && rows[r][n-1].style == style {
			rows[r][n-1].text = append(rows[r][n-1].text, c)
			return
		}
		rows[r] = append(rows[r], run{style, []rune{c}})
	}
	threshold := 0.9 * baseline
	for _, b := range buckets {
		v := perSec(b) / top * float64(h*len(sparks))
		style := &st.ok
		if inFault(b) {
			style = &st.warn
		}
		if baseline > 0 && perSec(b) < threshold {
			style = &st.bad
		}
		for r := range h {
			level := int(v) - (h-1-r)*len(sparks) // eighths in this row
			switch {
			case level >= len(sparks):
				put(r, style, '█')
			case level > 0:
				put(r, style, sparks[level-1])
			default:
				put(r, nil, ' ')
			}
		}
	}
	out := make([]string, h)
	for r := range rows {
		var b strings.Builder
		for _, x := range rows[r] {
			if x.style == nil {
				b.WriteString(string(x.text))
			} else {
				b.WriteString(x.style.Render(string(x.text)))
			}
		}
		out[r] = b.String()
	}
	return out
}

// digits are a three-row font for the stopwatch.
var digits = map[rune][3]string{
	'0': {"┏━┓", "┃ ┃", "┗━┛"}, '1': {" ┓ ", " ┃ ", " ┻ "}, '2': {"┏━┓", "┏━┛", "┗━━"},
	'3': {"┏━┓", " ━┫", "┗━┛"}, '4': {"┓ ┓", "┗━┫", "  ┻"}, '5': {"┏━━", "┗━┓", "┗━┛"},
	'6': {"┏━━", "┣━┓", "┗━┛"}, '7': {"━━┓", "  ┃", "  ┻"}, '8': {"┏━┓", "┣━┫", "┗━┛"},
	'9': {"┏━┓", "┗━┫", "┗━┛"}, '.': {" ", " ", "•"}, 's': {"   ", "┏━━", "━━┛"}, ' ': {" ", " ", " "},
}

// bigText writes s in the three-row font (ASCII with ascii).
func bigText(s string, ascii bool) []string {
	font := digits
	if ascii {
		font = asciiDigits
	}
	var rows [3]strings.Builder
	for _, r := range s {
		g, ok := font[r]
		if !ok {
			g = [3]string{string(r), " ", " "}
		}
		for i := range rows {
			rows[i].WriteString(g[i])
			rows[i].WriteString(" ")
		}
	}
	return []string{rows[0].String(), rows[1].String(), rows[2].String()}
}

// seconds formats a duration as "0.10 s".
func seconds(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// stopwatchLines draws the RTO stopwatch: large digits, grey before a
// fault, yellow while running, green once stopped by verify's rule.
func stopwatchLines(st styles, lang Lang, w Stopwatch, big bool) []string {
	text := seconds(w.Elapsed)
	style, state := st.dim, lang.t("rto.wait")
	switch {
	case w.Stopped:
		style, state = st.ok, lang.t("rto.stopped")
	case w.Started:
		style, state = st.warn, lang.t("rto.running")
	}
	var out []string
	if big {
		for _, l := range bigText(strings.ReplaceAll(text, " ", ""), st.ascii) {
			out = append(out, style.Render(l))
		}
	} else {
		out = append(out, style.Render(text))
	}
	line := state
	if w.HasFirst {
		line += " · " + lang.t("first") + " " + seconds(w.FirstSuccess)
	}
	return append(out, line)
}

// yuan formats fen as ¥ with thousands separators.
func yuan(fen int64) string {
	s := fmt.Sprint(fen / 100)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteRune(',')
		}
		b.WriteRune(r)
	}
	return "¥" + b.String()
}

// moneyLine says whether the money adds up, at which revision.
func moneyLine(st styles, lang Lang, m *drill.MoneySample) string {
	switch {
	case m == nil:
		return st.dim.Render(lang.t("money.none"))
	case !m.Readable:
		return st.dim.Render(lang.t("money.unread"))
	case !m.OK:
		return st.bad.Render(lang.t("money.bad") + " " + m.Detail)
	}
	return st.ok.Render(fmt.Sprintf("%d × ¥1,000,000 = %s ✓", m.Accounts, yuan(m.SumFen))) + st.dim.Render(fmt.Sprintf("  rev %d", m.Revision))
}

// verdictLines are the verdict screen's lines.
func verdictLines(st styles, lang Lang, rep *verify.Report, dir string) []string {
	if rep == nil {
		return []string{st.dim.Render(lang.t("verifying"))}
	}
	head := st.ok.Render("✓ " + lang.t("pass"))
	if !rep.Passed {
		head = st.bad.Render("✗ " + lang.t("fail"))
	}
	out := []string{head, ""}
	if m, ok := rep.RTO.Main(); ok {
		o := m.Outage
		out = append(out, fmt.Sprintf("RTO %s · %s %s · %s %s", seconds(o.RTO), lang.t("first"), seconds(o.FirstSuccess), lang.t("gap"), seconds(o.LongestGap.Len())))
	}
	passed := 0
	for _, c := range rep.Check.Checks {
		if c.OK {
			passed++
		}
	}
	m := rep.Check
	out = append(out, fmt.Sprintf("%s %d · %s %d · %s %d/%d", lang.t("lost"), m.Lost, lang.t("unknown"), m.UnknownApplied+m.UnknownNotFound,
		lang.t("checks"), passed, len(rep.Check.Checks)))
	for _, t := range rep.Check.Sources {
		if t.Source == verify.SourceAudience {
			out = append(out, fmt.Sprintf("%s: %s %d · %s %d · %s %d", lang.t("audience"), lang.t("joined"), t.Opened,
				lang.t("audience.transfers"), t.Acknowledged, lang.t("lost"), t.Lost))
		}
	}
	for _, c := range rep.Check.Checks {
		if !c.OK {
			out = append(out, st.bad.Render("✗ "+c.Name+": "+c.Detail))
		}
	}
	for _, e := range rep.Expectations {
		mark := st.ok.Render("✓")
		if !e.OK {
			mark = st.bad.Render("✗")
		}
		out = append(out, fmt.Sprintf("%s %s: %s (%s)", mark, e.Name, e.Got, e.Want))
	}
	if dir != "" {
		out = append(out, "", lang.t("report")+": "+dir)
	}
	return out
}
