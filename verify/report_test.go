package verify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// exampleOps is a drill as the seed story tells it: 64 users at 200
// transfers/s, 2 of 5 DCs in hangzhou. At t+20s hangzhou is isolated: its
// users' requests time out, then get "switching" (503) until the gateway
// re-homes them at about t+21.3s (their first requests time out after
// 1 s); the others stall while the ledger elects
// a new leader (about 0.5 s). Healed at t+50s, with a short brownout while
// users are moved home again.
func exampleOps() ([]Op, []FaultWindow) {
	const users = 64
	rng := rand.New(rand.NewPCG(7, 11))
	dcs := []string{"hz-a", "hz-b", "sh-a", "sh-b", "sz-a"}
	homeOf := func(u int) string { return dcs[u%len(dcs)] }
	inHZ := func(u int) bool { return strings.HasPrefix(homeOf(u), "hz") }
	var ops []Op
	add := func(op Op) { op.Seq = int64(len(ops) + 1); ops = append(ops, op) }
	for u := range users {
		add(Op{User: u, Kind: KindOpen, Invoke: time.Duration(u) * ms, Complete: 300*ms + time.Duration(u)*ms, Outcome: OK, HomeDC: homeOf(u)})
	}
	next := make([]time.Duration, users)
	for u := range next {
		next[u] = sec + time.Duration(rng.Int64N(int64(320*ms)))
	}
	for {
		u := 0
		for v := range next {
			if next[v] < next[u] {
				u = v
			}
		}
		t := next[u]
		if t > 62*sec {
			break
		}
		lat := 4*ms + time.Duration(rng.ExpFloat64()*float64(3*ms))
		out, served, state := OK, homeOf(u), "serving"
		switch {
		case inHZ(u) && t >= 19900*ms && t < 20300*ms:
			out, lat = Unknown, sec-(t-20*sec)/2 // timed out (1 s client timeout)
		case inHZ(u) && t >= 20300*ms && t < 21300*ms:
			out, lat, state = Fail, 3*ms, "switching"
		case t >= 20*sec && t < 20500*ms:
			lat = 20500*ms - t + lat // waiting for a leader
		case inHZ(u) && t >= 21300*ms && t < 50*sec:
			served, state = "sh-a", "switched"
			lat += 25 * ms
		case inHZ(u) && t >= 50*sec && t < 50400*ms:
			out, lat, state = Fail, 3*ms, "switching"
		}
		add(Op{User: u, Kind: KindTransfer, Key: fmt.Sprintf("u%d-%d", u, len(ops)), Attempt: 1, Invoke: t, Complete: t + lat,
			Outcome: out, HomeDC: homeOf(u), ServedBy: served, State: state})
		next[u] = t + lat + 200*ms + time.Duration(rng.Int64N(int64(240*ms))) // about 3 a second each
	}
	fault := FaultWindow{ID: "cut-hangzhou", Desc: "isolate city hangzhou", Kind: "isolate-city",
		DCs: []string{"hz-a", "hz-b"}, Cities: []string{"hangzhou"}, Start: 20 * sec, End: 50 * sec}
	return ops, []FaultWindow{fault}
}

func exampleReport() Report {
	ops, faults := exampleOps()
	rto := AnalyzeRTO(ops, faults, RTOOptions{})
	main, _ := rto.Main()
	var load LoadSummary
	load.Users, load.Rate = 64, 200
	for _, op := range ops {
		load.Ops++
		switch op.Outcome {
		case OK:
			load.OK++
		case Fail:
			load.Fail++
		default:
			load.Unknown++
		}
	}
	return Report{
		Scenario:    "hangzhou-fiber-cut",
		Description: "Cut the fiber of both Hangzhou datacenters, as at ATEC 2018, and prove that transfers come back within 30 s with no money lost.",
		Topology:    "three-cities-five-dcs",
		Lab:         "fibercut",
		Started:     time.Date(2026, 3, 14, 9, 30, 0, 0, time.UTC),
		Duration:    64 * sec,
		Faults:      faults,
		Steps: []StepRecord{
			{At: 0, What: "lab healthy: 5 of 5 members, leader hz-a"},
			{At: sec, What: "load: 64 users at 200 transfers/s"},
			{At: 20 * sec, What: "fault cut-hangzhou: isolate city hangzhou"},
			{At: 50 * sec, What: "heal cut-hangzhou"},
			{At: 62 * sec, What: "load stopped"},
			{At: 63 * sec, What: "read final state", Error: "member hz-b slow to answer; retried"},
		},
		Expectations: []Expectation{
			{Name: "rto", Want: "≤ 30s", Got: fmtSec(main.Outage.RTO), OK: main.Outage.Recovered && main.Outage.RTO <= 30*sec},
			{Name: "rpo", Want: "0 lost", Got: "0 lost", OK: true},
			{Name: "money conserved", Want: "yes", Got: "yes", OK: true},
		},
		Passed: true,
		Check: Result{Valid: true, Acknowledged: load.OK - 64, Lost: 0, Failed: 412, UnknownApplied: 71, UnknownNotFound: 9,
			Checks: []Check{
				{Name: "money conserved", OK: true, Detail: "64 accounts hold ¥64,000,000.00, as opened"},
				{Name: "no negative balance", OK: true, Detail: "lowest balance ¥998,812.34"},
				{Name: "every ok transfer present", OK: true, Detail: "all acknowledged transfers present"},
				{Name: "none applied twice", OK: true, Detail: "no key moved money twice"},
				{Name: "all members agree", OK: true, Detail: "5 members, hash 0x5f3a9c21 at revision 48,113"},
			}},
		RTO:      rto,
		Timeline: Timeline(ops, 100*ms),
		Load:     load,
	}
}

func TestWriteReport(t *testing.T) {
	r := exampleReport()
	dir := filepath.Join(t.TempDir(), "report") // created by WriteReport
	files, err := WriteReport(dir, r)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	if want := []string{ReportJSON, ReportMarkdown, ReportHTML, ReportPNG}; !slices.Equal(names, want) {
		t.Fatalf("files %v, want %v", names, want)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	var back Report
	if err := json.Unmarshal([]byte(read(ReportJSON)), &back); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	if back.Scenario != r.Scenario || back.RTO.Faults[0].Outage.RTO != r.RTO.Faults[0].Outage.RTO ||
		len(back.Timeline) != len(r.Timeline) || back.Check.Acknowledged != r.Check.Acknowledged {
		t.Error("report.json does not read back as the report")
	}
	if md := func() string {
		r := r
		r.StepsFrom = sec
		return r.markdown()
	}(); !strings.Contains(md, "| t+64.0s | read final state |") {
		t.Error("steps not shown on the history's clock with StepsFrom")
	}
	if !strings.Contains(read(ReportJSON), "\n  \"scenario\"") {
		t.Error("report.json is not indented")
	}

	rto := fmtSec(r.RTO.Faults[0].Outage.RTO)
	md := read(ReportMarkdown)
	for _, want := range []string{"# fibercut drill: hangzhou-fiber-cut", "**PASS.**", "RTO " + rto, "| ✓ | rto |",
		"users homed in hangzhou", "t+20.0s: isolate city hangzhou in force", "t+50.0s: isolate city hangzhou healed",
		"RPO = 0", "money conserved", "![", ReportPNG, "read final state"} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q", want)
		}
	}

	h := read(ReportHTML)
	if strings.Contains(h, "http://") || strings.Contains(h, "https://") {
		t.Error("report.html refers to a URL")
	}
	for _, re := range []string{`(?i)<script`, `(?i)<link`, `(?i)\ssrc\s*=`, `(?i)\shref\s*=`, `(?i)url\(`, `(?i)@import`} {
		if regexp.MustCompile(re).MatchString(h) {
			t.Errorf("report.html is not self-contained: matches %s", re)
		}
	}
	for _, want := range []string{"<svg", "</svg>", "<polyline", "PASS", rto, "users homed in hangzhou", "money conserved", "<style>"} {
		if !strings.Contains(h, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}

	img, err := png.Decode(strings.NewReader(read(ReportPNG)))
	if err != nil {
		t.Fatalf("timeline.png: %v", err)
	}
	if b := img.Bounds(); b.Dx() != chartW || b.Dy() != chartH {
		t.Errorf("timeline.png is %v, want %dx%d", b, chartW, chartH)
	}

	if dir := os.Getenv("FIBERCUT_REPORT_EXAMPLE"); dir != "" {
		if _, err := WriteReport(dir, r); err != nil {
			t.Fatal(err)
		}
		t.Logf("example report in %s\n%s", dir, r.Summary())
	}
}

func TestExampleNumbers(t *testing.T) {
	r := exampleReport()
	f, _ := r.RTO.Main()
	// Hangzhou's users are re-homed at about t+21.3s.
	near(t, "RTO", f.Outage.RTO, 1300*ms, 200*ms)
	if f.Outage.InGroup.Affected == 0 || f.Outage.InGroup.P50 < sec {
		t.Errorf("hangzhou users %+v", f.Outage.InGroup)
	}
	if f.Outage.Elsewhere.Affected != 0 || f.Outage.Elsewhere.Users == 0 {
		t.Errorf("users elsewhere %+v", f.Outage.Elsewhere)
	}
	if f.Brownout == nil || !f.Brownout.Dipped {
		t.Errorf("brownout on heal not seen: %+v", f.Brownout)
	}
}

func TestSummary(t *testing.T) {
	r := exampleReport()
	s := r.Summary()
	lines := strings.Split(s, "\n")
	if len(lines) < 4 || len(lines) > 8 {
		t.Errorf("%d lines:\n%s", len(lines), s)
	}
	if !strings.HasPrefix(lines[0], "PASS hangzhou-fiber-cut: 3 of 3 expectations met") {
		t.Errorf("first line %q", lines[0])
	}
	rto := lines[len(lines)-2]
	if !strings.HasPrefix(rto, "RTO ") || !strings.Contains(rto, "first success") || !strings.Contains(rto, "users homed in hangzhou: p50") {
		t.Errorf("RTO line %q", rto)
	}
	money := lines[len(lines)-1]
	if !strings.HasPrefix(money, "money: ") || !strings.Contains(money, " 0 lost") || !strings.HasSuffix(money, "RPO = 0") ||
		!strings.Contains(money, "5/5 checks pass") || !strings.Contains(money, "(71 applied, 9 not)") {
		t.Errorf("money line %q", money)
	}
	t.Logf("\n%s", s)

	// A failed drill says what failed.
	r.Passed = false
	r.Expectations[0].OK, r.Expectations[0].Got = false, "45.0 s"
	r.Check.Valid, r.Check.Lost = false, 3
	r.Check.Checks[2].OK = false
	s = r.Summary()
	for _, want := range []string{"FAIL hangzhou-fiber-cut: 2 of 3", "✗ rto wanted ≤ 30s, got 45.0 s", "FAILED: every ok transfer present", "3 acknowledged transfers LOST"} {
		if !strings.Contains(s, want) {
			t.Errorf("failed summary lacks %q:\n%s", want, s)
		}
	}
	if _, text := r.verdict(); !strings.Contains(text, "1 of 3 expectations not met: rto") {
		t.Errorf("verdict %q", text)
	}

	// Nothing known: still a summary, no panic.
	s = Report{Scenario: "empty"}.Summary()
	if !strings.Contains(s, "no fault") || !strings.HasSuffix(s, "money: not checked") {
		t.Errorf("empty summary:\n%s", s)
	}
}

func TestWriteReportEmpty(t *testing.T) {
	// A drill aborted before anything ran still gets its report.
	files, err := WriteReport(t.TempDir(), Report{Scenario: "aborted", Steps: []StepRecord{{At: 0, What: "lab up", Error: "docker: no such network"}}})
	if err != nil || len(files) != 4 {
		t.Fatalf("files %v, err %v", files, err)
	}
	// And one with a fault, but no transfers.
	_, faults := exampleOps()
	r := Report{Scenario: "no load", Faults: faults, RTO: AnalyzeRTO(nil, faults, RTOOptions{})}
	if _, err := WriteReport(t.TempDir(), r); err != nil {
		t.Fatal(err)
	}
}

func TestWriteReportBadDir(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteReport(filepath.Join(f, "sub"), Report{}); err == nil || !strings.HasPrefix(err.Error(), "verify: report") {
		t.Errorf("err %v", err)
	}
}

func TestFormatting(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{fmtInt(0), "0"}, {fmtInt(999), "999"}, {fmtInt(1000), "1,000"}, {fmtInt(12345), "12,345"},
		{fmtInt(-1234567), "-1,234,567"},
		{fmtSec(0), "0 s"}, {fmtSec(540 * ms), "0.54 s"}, {fmtSec(12340 * ms), "12.3 s"}, {fmtSec(125 * sec), "125 s"},
		{tPlus(10 * sec), "t+10.0s"}, {fmtRate(98.6), "99/s"}, {fmtRate(4.25), "4.2/s"}, {fmtPct(0.9), "90 %"},
		{asciiText("≥ 90 % · t→x ✓"), ">= 90 % | t->x ok"}, {asciiText("杭州"), "??"},
		{mdText("a|b\nc"), `a\|b c`},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	var buf bytes.Buffer
	buf.WriteString(mdTable(table{Head: []string{"a", "b"}, Rows: [][]string{{"1", "2"}}}))
	if buf.String() != "| a | b |\n|---|---|\n| 1 | 2 |\n" {
		t.Errorf("table %q", buf.String())
	}
}

// TestReportSaysWANLatency: the summary and the markdown say whether the
// lab's links had the topology's latency, and if it was lost.
func TestReportSaysWANLatency(t *testing.T) {
	for _, tc := range []struct {
		wan  WANLatency
		want string
	}{
		{WANLatency{}, "WAN latency off (bridge speed)"},
		{WANLatency{On: true, Summary: "1ms on 2 links, 15ms on 4"}, "WAN latency on (1ms on 2 links, 15ms on 4, one way)"},
		{WANLatency{On: true, Summary: "1ms on 2 links", Lost: "its holder was gone"}, "WAN latency on (1ms on 2 links, one way), but its holder was gone"},
	} {
		r := Report{Scenario: "s", WAN: tc.wan}
		if got := r.Summary(); !strings.Contains(got, tc.want+"\n") {
			t.Errorf("summary of %+v:\n%s\nwant a line %q", tc.wan, got, tc.want)
		}
		if got := r.markdown(); !strings.Contains(got, tc.want) {
			t.Errorf("markdown of %+v does not say %q", tc.wan, tc.want)
		}
	}
}
