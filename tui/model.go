package tui

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/fibercut/fibercut/topology"
	"github.com/fibercut/fibercut/verify"
)

// Controller is what the dashboard's keys act on: a live drill session.
// Its methods are called from a tea.Cmd, never from Update, and may block;
// they are not called concurrently.
type Controller interface {
	// Cut applies the scenario's first fault.
	Cut(ctx context.Context) error
	// Isolate isolates a DC; "" is the DC holding the ledger's leader.
	Isolate(ctx context.Context, dc string) error
	// HealAll heals every fault the session applied.
	HealAll(ctx context.Context) error
	// Finish heals, converges and verifies; the verdict arrives on the
	// scoreboard as an event.
	Finish(ctx context.Context) error
}

// Options configure a [Model].
type Options struct {
	Topology   *topology.Topology
	Scoreboard *Scoreboard
	// Controller acts on the lab; nil for a replay, whose keys only
	// change the screen.
	Controller Controller
	// Replay, when set, is played on the model's ticks.
	Replay *Replay
	Lang   Lang
	// Title names what runs: the scenario, or "replay of DIR".
	Title string
	// AudienceURL is what the QR code says; AudienceNote where the
	// address comes from (e.g. "--audience-url").
	AudienceURL, AudienceNote string
	// Audience, when set, says what the hall did (the gateway's audience
	// record); it is called from a tea.Cmd about once a second.
	Audience func(context.Context) (Audience, error)
	// Roles, when set, says what each DC's ledger member is ("leader",
	// "follower", "no quorum", "unreachable"); it is called from a
	// tea.Cmd at most every RolesEvery, so that probing stays cheap.
	Roles      func(context.Context) (map[string]string, error)
	RolesEvery time.Duration
	// ReportDir is shown on the verdict screen.
	ReportDir string
	// Countdown is the length of each step of the 3-2-1 before a cut; 1 s
	// when 0.
	Countdown time.Duration
	// Tick is how often the screen is refreshed from the scoreboard;
	// 250 ms when 0.
	Tick time.Duration
	// Dashboard starts on the dashboard rather than the join screen.
	Dashboard bool
	// AmbiguousWide: the terminal draws East Asian ambiguous-width
	// characters (box drawing, blocks, many symbols) two columns wide.
	// The screens then use ASCII for them, and the QR code coloured
	// spaces, so that the layout holds.
	AmbiguousWide bool
}

type screen int

const (
	screenJoin screen = iota
	screenDashboard
	screenVerdict
)

// Model is the stage dashboard (bubbletea). Every component renders from
// its state and the scoreboard; all I/O happens in tea.Cmds.
type Model struct {
	opts      Options
	st        styles
	lang      Lang
	w, h      int
	screen    screen
	presenter bool
	keys      keyMap
	help      help.Model
	qrFull    bool
	qr        *QR
	countdown int // 3, 2, 1 while counting down; 0 otherwise
	cdGen     int // a cancelled countdown's ticks are ignored
	busy      string
	note      string
	joined    *Audience
	roles     map[string]string
	polled    time.Time // when Roles was last asked
	quitting  bool
	// The analysis of the operations is redone at most every second (or
	// when a fault starts or ends): it grows with the history.
	calcAt     time.Time
	calcFaults string
	calcWatch  Stopwatch
	calcStart  time.Duration // the first fault's start, for calcWatch
	calcRate   []verify.Bucket
}

type (
	tickMsg      time.Time
	countdownMsg struct{ gen, n int }
	actionMsg    struct {
		what string
		err  error
	}
	joinedMsg *Audience
	rolesMsg  map[string]string
)

// New returns the dashboard.
func New(opts Options) *Model {
	if opts.Countdown <= 0 {
		opts.Countdown = time.Second
	}
	if opts.Tick <= 0 {
		opts.Tick = 250 * time.Millisecond
	}
	if opts.Lang == "" {
		opts.Lang = ZH
	}
	if opts.RolesEvery <= 0 {
		opts.RolesEvery = 3 * time.Second
	}
	m := &Model{opts: opts, st: newStyles(), lang: opts.Lang, w: 160, h: 45}
	m.st.ascii = opts.AmbiguousWide
	m.keys = newKeyMap(m.lang, opts.Controller != nil)
	m.help = help.New()
	if opts.AudienceURL != "" {
		m.qr, _ = NewQR(opts.AudienceURL)
	}
	if opts.Dashboard || m.qr == nil {
		m.screen = screenDashboard
	}
	return m
}

func (m *Model) tick() tea.Cmd {
	return tea.Tick(m.opts.Tick, func(t time.Time) tea.Msg { return tickMsg(t) })
}

// Init starts the refresh ticks.
func (m *Model) Init() tea.Cmd { return tea.Batch(m.tick(), m.pollJoined()) }

func (m *Model) pollJoined() tea.Cmd {
	if m.opts.Audience == nil {
		return nil
	}
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		a, err := m.opts.Audience(ctx)
		if err != nil {
			return joinedMsg(nil)
		}
		return joinedMsg(&a)
	}
}

// pollRoles asks the DCs' roles when the last answer is older than
// RolesEvery.
func (m *Model) pollRoles(now time.Time) tea.Cmd {
	if m.opts.Roles == nil || now.Sub(m.polled) < m.opts.RolesEvery {
		return nil
	}
	m.polled = now
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		r, err := m.opts.Roles(ctx)
		if err != nil {
			return rolesMsg(nil)
		}
		return rolesMsg(r)
	}
}

// act runs a controller call in a Cmd; heals survive a cancelled context.
func (m *Model) act(what string, fn func(context.Context) error) tea.Cmd {
	if m.opts.Controller == nil {
		return nil
	}
	m.busy = what
	return func() tea.Msg {
		return actionMsg{what: what, err: fn(context.WithoutCancel(context.Background()))}
	}
}

// Update handles keys, sizes, ticks and the results of actions.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.w, m.h = msg.Width, msg.Height
	case tickMsg:
		if r := m.opts.Replay; r != nil {
			r.Advance(time.Time(msg))
		}
		cmds := []tea.Cmd{m.tick(), m.pollRoles(time.Time(msg))}
		if time.Time(msg).UnixMilli()/1000 != time.Time(msg).Add(-m.opts.Tick).UnixMilli()/1000 {
			cmds = append(cmds, m.pollJoined()) // about once a second
		}
		return m, tea.Batch(cmds...)
	case joinedMsg:
		if msg != nil {
			m.joined = msg
		}
	case rolesMsg:
		if msg != nil {
			m.roles = msg
		}
	case countdownMsg:
		if msg.gen != m.cdGen || m.countdown == 0 {
			return m, nil
		}
		if msg.n == 0 {
			m.countdown = 0
			if m.busy != "" || m.quitting {
				m.note = "cut: not now, " + m.busy + " is under way"
				return m, nil
			}
			return m, m.act("cut", m.opts.Controller.Cut)
		}
		m.countdown = msg.n
		return m, m.countdownStep(msg.n - 1)
	case actionMsg:
		m.busy = ""
		m.note = ""
		if msg.err != nil {
			m.note = msg.what + ": " + msg.err.Error()
		}
		if msg.what == "quit" {
			return m, tea.Quit
		}
	case tea.KeyPressMsg:
		return m.key(msg)
	}
	return m, nil
}

func (m *Model) countdownStep(n int) tea.Cmd {
	gen := m.cdGen
	return tea.Tick(m.opts.Countdown, func(time.Time) tea.Msg { return countdownMsg{gen: gen, n: n} })
}

func (m *Model) key(msg tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	k := &m.keys
	switch {
	case key.Matches(msg, k.Quit):
		if m.opts.Controller == nil {
			return m, tea.Quit
		}
		m.quitting = true
		m.cdGen++
		m.countdown = 0
		return m, m.act("quit", m.opts.Controller.HealAll)
	case key.Matches(msg, k.Help):
		m.help.ShowAll = !m.help.ShowAll
	case key.Matches(msg, k.Presenter):
		m.presenter = !m.presenter
	case key.Matches(msg, k.Lang):
		m.lang = m.lang.other()
		m.keys = newKeyMap(m.lang, m.opts.Controller != nil)
	case key.Matches(msg, k.Join):
		if m.screen == screenJoin {
			m.screen = screenDashboard
		}
	case key.Matches(msg, k.QR):
		if m.qr == nil {
			break
		}
		if m.screen == screenJoin {
			m.qrFull = !m.qrFull
		} else {
			m.screen, m.qrFull = screenJoin, false
		}
	case key.Matches(msg, k.Cancel):
		if m.countdown > 0 {
			m.cdGen++
			m.countdown = 0
		}
	}
	// One action at a time; during the countdown only esc (or q) counts.
	if m.opts.Controller == nil || m.quitting || m.busy != "" || m.countdown > 0 {
		return m, nil
	}
	switch {
	case key.Matches(msg, k.Cut):
		if m.screen == screenDashboard {
			m.cdGen++
			m.countdown = 3
			return m, m.countdownStep(2)
		}
	case key.Matches(msg, k.Heal):
		return m, m.act("heal", m.opts.Controller.HealAll)
	case key.Matches(msg, k.Leader):
		return m, m.act("isolate the leader", func(ctx context.Context) error { return m.opts.Controller.Isolate(ctx, "") })
	case key.Matches(msg, k.Finish):
		if m.screen != screenVerdict {
			m.screen = screenVerdict
			return m, m.act("finish", m.opts.Controller.Finish)
		}
	case key.Matches(msg, k.Isolate):
		n := int(msg.String()[0] - '1')
		if dcs := m.opts.Topology.Datacenters; n < len(dcs) {
			dc := dcs[n].ID
			return m, m.act("isolate "+dc, func(ctx context.Context) error { return m.opts.Controller.Isolate(ctx, dc) })
		}
	}
	return m, nil
}

// View draws the current screen.
func (m *Model) View() tea.View {
	v := tea.NewView(m.Render())
	v.AltScreen = true
	return v
}

// Render draws the current screen as text (with colours), exactly w×h
// or less.
func (m *Model) Render() string {
	if m.w < 80 || m.h < 24 {
		return lipgloss.Place(m.w, m.h, lipgloss.Center, lipgloss.Center, m.lang.t("small")+fmt.Sprintf(" (%d×%d)", m.w, m.h))
	}
	var body string
	switch {
	case m.opts.Scoreboard.Verdict() != nil && m.screen != screenJoin, m.screen == screenVerdict:
		body = m.verdictScreen()
	case m.screen == screenJoin:
		body = m.joinScreen()
	default:
		body = m.dashboard()
	}
	if m.opts.AmbiguousWide {
		body = narrowGlyphs(body)
	}
	return clip(body, m.w, m.h)
}

// clip cuts a drawing to w×h.
func clip(s string, w, h int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > h {
		lines = lines[:h]
	}
	for i, l := range lines {
		if lipgloss.Width(l) > w {
			lines[i] = fit(l, w)
		}
	}
	return strings.Join(lines, "\n")
}

func (m *Model) header() string {
	title := m.st.title.Render(m.lang.t("title"))
	if m.opts.Title != "" {
		title += m.st.dim.Render("  ·  " + m.opts.Title)
	}
	return fit(title, m.w)
}

func (m *Model) footer() string {
	if m.presenter {
		return ""
	}
	if m.note != "" {
		return m.st.bad.Render(fit(m.note, m.w))
	}
	if m.busy != "" {
		return m.st.warn.Render(fit(m.busy+"…", m.w))
	}
	m.help.SetWidth(m.w)
	return m.help.View(m.keys)
}

// joinedLines says how many accounts were opened from phones, by city.
func (m *Model) joinedLines() []string {
	if m.joined == nil {
		return nil
	}
	total := 0
	var parts []string
	for _, c := range m.opts.Topology.Cities {
		n := m.joined.Opened[c.Name]
		total += n
		parts = append(parts, fmt.Sprintf("%s %d", m.lang.city(m.opts.Topology, c.Name), n))
	}
	return []string{fmt.Sprintf("%s: %d", m.lang.t("joined"), total), strings.Join(parts, " · ")}
}

// audienceLines are the dashboard's view of the hall: accounts by home
// city, how many another city serves now, transfers acknowledged.
func (m *Model) audienceLines() []string {
	l := m.joinedLines()
	if l == nil {
		return []string{m.st.dim.Render(m.lang.t("audience.none"))}
	}
	return append(l, fmt.Sprintf("%s %d · %s %d", m.lang.t("audience.switched"), m.joined.Switched,
		m.lang.t("audience.transfers"), m.joined.Transfers))
}

func (m *Model) joinScreen() string {
	var blocks []string
	blocks = append(blocks, m.header(), "")
	if m.qr != nil {
		qw, qh := m.qr.size(m.opts.AmbiguousWide)
		if (m.qrFull || qh+10 <= m.h) && qw <= m.w {
			for _, l := range m.qr.draw(m.st, m.opts.AmbiguousWide) {
				blocks = append(blocks, lipgloss.PlaceHorizontal(m.w, lipgloss.Center, l))
			}
		}
	}
	if !m.qrFull {
		blocks = append(blocks, "",
			lipgloss.PlaceHorizontal(m.w, lipgloss.Center, m.st.title.Render(m.lang.t("join"))),
			lipgloss.PlaceHorizontal(m.w, lipgloss.Center, m.st.title.Render(m.opts.AudienceURL)))
		if m.opts.AudienceNote != "" {
			blocks = append(blocks, lipgloss.PlaceHorizontal(m.w, lipgloss.Center, m.st.dim.Render("("+m.opts.AudienceNote+")")))
		}
		for _, l := range m.joinedLines() {
			blocks = append(blocks, lipgloss.PlaceHorizontal(m.w, lipgloss.Center, l))
		}
		blocks = append(blocks, "", m.footer())
	}
	return strings.Join(blocks, "\n")
}

// banner says what the audience's page says: switching while nothing
// commits during a fault, switched once commits are back.
func (m *Model) banner(sn Snapshot, w Stopwatch, rate []verify.Bucket) string {
	inForce := slices.ContainsFunc(sn.Faults, func(f verify.FaultWindow) bool { return f.End == 0 })
	if !inForce {
		return ""
	}
	stalled := len(rate) == 0 || rate[len(rate)-1].Committed == 0
	if stalled && !w.Stopped {
		return m.st.bad.Render(" " + words["switching"][0] + " / " + words["switching"][1] + " ")
	}
	// Switched to where the ledger's leader is now, when the roles say.
	zh, en := words["switched"][0], words["switched"][1]
	for dc, role := range m.roles {
		if d, ok := m.opts.Topology.DC(dc); ok && role == "leader" {
			zh, en = "已切换至"+ZH.city(m.opts.Topology, d.City), "switched to "+EN.city(m.opts.Topology, d.City)
		}
	}
	return m.st.ok.Render(" " + zh + " / " + en + " ")
}

func (m *Model) dashboard() string {
	sn := m.opts.Scoreboard.Snapshot()
	t := m.opts.Topology
	full, reduced := m.w >= 150 && m.h >= 40, m.w >= 100 && m.h >= 30
	const bucket = 500 * time.Millisecond
	sw, rate := m.analysis(sn, bucket)
	links, dcs := applied(t, sn.Faults)

	leftW := m.w * 3 / 5
	rightW := m.w - leftW
	mapBox := panel(m.st, m.lang.t("map"), leftW, mapLines(m.st, m.lang, t, links, dcs, m.roles)...)
	watch := stopwatchLines(m.st, m.lang, sw, reduced)
	if m.countdown > 0 {
		watch = append(bigText(fmt.Sprint(m.countdown), m.st.ascii), m.lang.t("countdown")+" · "+m.lang.t("cancel"))
	}
	boxes := []string{panel(m.st, m.lang.t("rto"), rightW, watch...), panel(m.st, m.lang.t("money"), rightW, m.money(sn))}
	if m.opts.Audience != nil && reduced {
		boxes = append(boxes, panel(m.st, m.lang.t("audience"), rightW, m.audienceLines()...))
	}
	right := lipgloss.JoinVertical(lipgloss.Left, boxes...)
	top := lipgloss.JoinHorizontal(lipgloss.Top, mapBox, right)

	logLines := 3
	switch {
	case full:
		logLines = 8
	case reduced:
		logLines = 5
	}
	log := sn.Log
	if len(log) > logLines {
		log = log[len(log)-logLines:]
	}
	for len(log) < logLines {
		log = append(log, "")
	}
	logW := m.w
	var bottom string
	if m.qr != nil {
		if qw, qh := m.qr.size(m.opts.AmbiguousWide); full && qh+2 <= logLines+3 {
			logW = m.w - qw - 2
		}
	}
	bottom = panel(m.st, m.lang.t("log"), logW, log...)
	if logW < m.w && m.qr != nil {
		bottom = lipgloss.JoinHorizontal(lipgloss.Top, bottom, " ", strings.Join(m.qr.draw(m.st, m.opts.AmbiguousWide), "\n"))
	}

	banner := m.banner(sn, sw, rate)
	footer := m.footer() // one line, or the full help's few
	used := 1 + 1 + lipgloss.Height(top) + lipgloss.Height(bottom) + lipgloss.Height(footer)
	chartH := max(m.h-used-3, 2)
	// The 90 % line is verify's own once a fault is in the history (the
	// rule that stops the stopwatch); before, the rate so far.
	baseline := sw.Baseline
	if baseline <= 0 {
		baseline = preFaultRate(rate, bucket, sn.Faults)
	}
	chart := panel(m.st, fmt.Sprintf("%s  %s", m.lang.t("rate"), m.st.dim.Render(m.rateNow(rate, bucket, baseline))), m.w,
		chartLines(m.st, rate, bucket, sn.Faults, m.w-4, chartH, baseline)...)
	return strings.Join([]string{m.header(), fit(banner, m.w), top, chart, bottom, footer}, "\n")
}

// analysis returns the stopwatch and the rate timeline of the snapshot,
// recomputed at most every second unless a fault started or ended since.
func (m *Model) analysis(sn Snapshot, bucket time.Duration) (Stopwatch, []verify.Bucket) {
	key := fmt.Sprint(len(sn.Ops) > 0, sn.Faults)
	if time.Since(m.calcAt) >= time.Second || key != m.calcFaults || m.calcRate == nil {
		m.calcAt, m.calcFaults = time.Now(), key
		// A stopped watch is final (verify's rule holds for good once
		// its hold has passed): it is not analysed again.
		if !m.calcWatch.Stopped || len(sn.Faults) == 0 || sn.Faults[0].Start != m.calcStart {
			m.calcWatch = sn.Stopwatch()
			if len(sn.Faults) > 0 {
				m.calcStart = sn.Faults[0].Start
			}
		}
		// The chart shows at most a screen's width of buckets.
		m.calcRate = sn.RateSince(sn.Now-time.Duration(m.w+2)*bucket, bucket)
	}
	w := m.calcWatch
	if w.Started && !w.Stopped && len(sn.Faults) > 0 {
		w.Elapsed = max(sn.Now-sn.Faults[0].Start, 0) // a running watch moves on every frame
	}
	return w, m.calcRate
}

// preFaultRate is the committed rate per second over the 5 s before the
// first fault, or over everything so far when no fault came yet.
func preFaultRate(rate []verify.Bucket, bucket time.Duration, windows []verify.FaultWindow) float64 {
	var n, count int
	for _, b := range rate {
		if len(windows) > 0 && (b.Start+bucket > windows[0].Start || b.Start < windows[0].Start-5*time.Second) {
			continue
		}
		n++
		count += b.Committed
	}
	if n == 0 {
		return 0
	}
	return float64(count) / (float64(n) * bucket.Seconds())
}

func (m *Model) rateNow(rate []verify.Bucket, bucket time.Duration, baseline float64) string {
	if len(rate) < 2 {
		return ""
	}
	now := float64(rate[len(rate)-2].Committed) / bucket.Seconds() // the last whole bucket
	return fmt.Sprintf("%.0f/s · 90%% = %.0f/s", now, 0.9*baseline)
}

func (m *Model) money(sn Snapshot) string {
	if sn.Money != nil {
		return moneyLine(m.st, m.lang, sn.Money)
	}
	if rep := sn.Verdict; rep != nil {
		for _, c := range rep.Check.Checks {
			if c.Name == "money conserved" {
				if c.OK {
					return m.st.ok.Render("✓ " + c.Detail)
				}
				return m.st.bad.Render("✗ " + c.Detail)
			}
		}
	}
	return moneyLine(m.st, m.lang, nil)
}

func (m *Model) verdictScreen() string {
	dir := m.opts.ReportDir
	rep := m.opts.Scoreboard.Verdict()
	lines := verdictLines(m.st, m.lang, rep, dir)
	box := panel(m.st, m.lang.t("verdict"), min(m.w, 100), lines...)
	return strings.Join([]string{m.header(), "", lipgloss.PlaceHorizontal(m.w, lipgloss.Center, box), "", m.footer()}, "\n")
}
