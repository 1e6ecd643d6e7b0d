package verify

import (
	"fmt"
	"html"
	"image/color"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// The timeline chart is laid out once, as a scene of rectangles, lines and
// text in pixels, and drawn twice from it: as SVG in the HTML report and as
// a PNG. Both therefore show the same thing.

const (
	chartW, chartH = 1200, 500
	charW          = 7 // width of a character of the small font, both renderings
)

type shape int

const (
	shapeRect shape = iota
	shapeLine
	shapeText
)

type anchor int

const (
	anchorStart anchor = iota
	anchorMiddle
	anchorEnd
)

type pt struct{ X, Y float64 }

// item is one thing drawn, in pixels, y downwards.
type item struct {
	shape      shape
	x, y, w, h float64 // rect; a text's anchor point on its baseline
	pts        []pt    // line: a polyline
	col        color.NRGBA
	width      float64 // line width
	dash       float64 // dash length; 0: solid
	text       string
	anchor     anchor
	big        bool // title size: twice the small font
}

type scene struct {
	w, h  int
	items []item
}

func (s *scene) rect(x, y, w, h float64, c color.NRGBA) {
	s.items = append(s.items, item{shape: shapeRect, x: x, y: y, w: w, h: h, col: c})
}

func (s *scene) line(c color.NRGBA, width, dash float64, pts ...pt) {
	s.items = append(s.items, item{shape: shapeLine, pts: pts, col: c, width: width, dash: dash})
}

func (s *scene) text(x, y float64, a anchor, c color.NRGBA, t string) {
	s.items = append(s.items, item{shape: shapeText, x: x, y: y, anchor: a, col: c, text: t})
}

// label is text on a pale box, legible over lines and shading.
func (s *scene) label(x, y float64, a anchor, c color.NRGBA, t string) {
	w := float64(utf8.RuneCountInString(t) * charW)
	bx := x - 3
	switch a {
	case anchorMiddle:
		bx -= w / 2
	case anchorEnd:
		bx -= w
	}
	s.rect(bx, y-12, w+6, 16, color.NRGBA{255, 255, 255, 215})
	s.text(x, y, a, c, t)
}

func (s *scene) title(x, y float64, c color.NRGBA, t string) {
	s.items = append(s.items, item{shape: shapeText, x: x, y: y, col: c, text: t, big: true})
}

var (
	colBackground   = color.NRGBA{255, 255, 255, 255}
	colText         = color.NRGBA{34, 34, 34, 255}
	colMuted        = color.NRGBA{100, 100, 100, 255}
	colGrid         = color.NRGBA{230, 230, 230, 255}
	colFrame        = color.NRGBA{160, 160, 160, 255}
	colCommitted    = color.NRGBA{27, 138, 58, 255}
	colFailed       = color.NRGBA{214, 39, 40, 255}
	colUnknown      = color.NRGBA{230, 140, 0, 255}
	colP50          = color.NRGBA{31, 119, 180, 255}
	colP99          = color.NRGBA{142, 68, 173, 255}
	colFault        = color.NRGBA{214, 39, 40, 34}
	colFaultText    = color.NRGBA{163, 21, 21, 255}
	colBrownout     = color.NRGBA{255, 170, 0, 60}
	colBrownoutText = color.NRGBA{180, 100, 0, 255}
	colThreshold    = color.NRGBA{90, 90, 90, 255}
)

// chartSeries is one line of a panel; NaN values break it.
type chartSeries struct {
	label string
	col   color.NRGBA
	width float64
	ys    []float64
}

// chartPoints is the timeline as drawn: at most one point per two pixels,
// buckets merged when there are more.
type chartPoints struct {
	xs                         []time.Duration // middle of each merged bucket
	committed, failed, unknown []float64       // per second
	p50, p99                   []float64       // ms; NaN without ok transfers
	from, to                   time.Duration
}

func timelinePoints(tl []Bucket, bucket time.Duration, maxPoints int) chartPoints {
	var p chartPoints
	if len(tl) == 0 {
		return p
	}
	merge := max(1, (len(tl)+maxPoints-1)/maxPoints)
	p.from, p.to = tl[0].Start, tl[len(tl)-1].Start+bucket
	for i := 0; i < len(tl); i += merge {
		group := tl[i:min(i+merge, len(tl))]
		span := (time.Duration(len(group)) * bucket).Seconds()
		var c, f, u int
		p50, p99 := math.NaN(), math.NaN()
		var p50s []time.Duration
		for _, b := range group {
			c, f, u = c+b.Committed, f+b.Failed, u+b.Unknown
			if b.Committed > 0 {
				p50s = append(p50s, b.P50)
				p99 = max(nanToZero(p99), float64(b.P99)/float64(time.Millisecond))
			}
		}
		if len(p50s) > 0 {
			m, _, _ := quantiles(p50s) // the median of the buckets' medians
			p50 = float64(m) / float64(time.Millisecond)
		}
		p.xs = append(p.xs, group[0].Start+time.Duration(len(group))*bucket/2)
		p.committed = append(p.committed, float64(c)/span)
		p.failed = append(p.failed, float64(f)/span)
		p.unknown = append(p.unknown, float64(u)/span)
		p.p50 = append(p.p50, p50)
		p.p99 = append(p.p99, p99)
	}
	return p
}

func nanToZero(f float64) float64 {
	if math.IsNaN(f) {
		return 0
	}
	return f
}

// bucketLen is the timeline's bucket length.
func (r Report) bucketLen() time.Duration {
	if len(r.Timeline) > 1 && r.Timeline[1].Start > r.Timeline[0].Start {
		return r.Timeline[1].Start - r.Timeline[0].Start
	}
	if r.RTO.Options.Bucket > 0 {
		return r.RTO.Options.Bucket
	}
	return DefaultRTOOptions.Bucket
}

// niceStep is a round step (1, 2 or 5 × 10^n) near span/n.
func niceStep(span float64, n int) float64 {
	if !(span > 0) {
		return 1
	}
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*mag {
			return m * mag
		}
	}
	return 10 * mag
}

func fmtTick(v float64) string {
	if v == math.Trunc(v) {
		return fmtInt(int(v))
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}

// buildChart lays out the timeline chart of r: committed, failed and
// unknown transfers per second above, latency of ok transfers below, the
// fault windows shaded across both, the threshold and the recovery marked.
func buildChart(r Report) *scene {
	s := &scene{w: chartW, h: chartH}
	s.rect(0, 0, chartW, chartH, colBackground)

	const left, right = 70.0, chartW - 24.0
	const top1, bot1 = 84.0, 304.0
	const top2, bot2 = 336.0, 440.0
	plotW := right - left

	bucket := r.bucketLen()
	p := timelinePoints(r.Timeline, bucket, int(plotW/2))
	x0, x1 := p.from, p.to
	if len(p.xs) == 0 {
		x0, x1 = 0, max(r.Duration, time.Second)
		for _, f := range r.Faults {
			x1 = max(x1, f.End, f.Start+time.Second)
		}
	}
	xOf := func(d time.Duration) float64 {
		return left + plotW*float64(d-x0)/float64(x1-x0)
	}
	clampX := func(d time.Duration) float64 { return min(max(xOf(d), left), right) }

	main, hasMain := r.RTO.Main()

	// Title and the numbers that matter, so that the picture stands alone.
	word, _ := r.verdict()
	name := cmpOr(r.Scenario, "fibercut drill")
	s.title(left, 30, colText, name)
	verdictCol := colFailed
	if r.Passed {
		verdictCol = colCommitted
	}
	s.title(left+float64((utf8.RuneCountInString(name)+2)*charW*2), 30, verdictCol, word)
	var sub []string
	if hasMain {
		sub = append(sub, rtoText(main.Outage, main.Baseline), "first success "+firstSuccessText(main.Outage),
			"longest gap "+fmtSec(main.Outage.LongestGap.Len()))
	}
	if r.moneyChecked() {
		sub = append(sub, fmt.Sprintf("%s acknowledged, %s lost", fmtInt(r.Check.Acknowledged), fmtInt(r.Check.Lost)))
	}
	s.text(right, 30, anchorEnd, colMuted, strings.Join(sub, " | "))

	// Legend.
	lx := left
	legend := func(c color.NRGBA, label string, swatch func(x float64)) {
		swatch(lx)
		s.text(lx+26, 60, anchorStart, colText, label)
		lx += 26 + float64(utf8.RuneCountInString(label)*charW) + 22
	}
	lineSwatch := func(c color.NRGBA, w, dash float64) func(float64) {
		return func(x float64) { s.line(c, w, dash, pt{x, 56}, pt{x + 20, 56}) }
	}
	legend(colCommitted, "committed/s", lineSwatch(colCommitted, 2, 0))
	legend(colFailed, "failed/s", lineSwatch(colFailed, 1.5, 0))
	legend(colUnknown, "unknown/s", lineSwatch(colUnknown, 1.5, 0))
	legend(colP50, "p50 latency", lineSwatch(colP50, 1.5, 0))
	legend(colP99, "p99 latency", lineSwatch(colP99, 1.5, 0))
	legend(colFault, "fault in force", func(x float64) { s.rect(x, 50, 20, 11, colFault) })
	for _, f := range r.RTO.Faults {
		if f.Brownout != nil && f.Brownout.Dipped {
			legend(colBrownout, "brownout after heal", func(x float64) { s.rect(x, 50, 20, 11, colBrownout) })
			break
		}
	}
	if hasMain && main.Baseline.Rate > 0 {
		legend(colThreshold, fmt.Sprintf("%s of pre-fault rate", fmtPct(r.RTO.Options.Threshold)), lineSwatch(colThreshold, 1, 4))
	}

	// Panels: rates above, latency below.
	type panel struct {
		top, bot float64
		unit     string
		series   []chartSeries
		yMax     float64
	}
	rates := panel{top: top1, bot: bot1, unit: "transfers/s", series: []chartSeries{
		{"committed/s", colCommitted, 2, p.committed},
		{"failed/s", colFailed, 1.5, p.failed},
		{"unknown/s", colUnknown, 1.5, p.unknown},
	}}
	lat := panel{top: top2, bot: bot2, unit: "latency of ok transfers, ms", series: []chartSeries{
		{"p50", colP50, 1.5, p.p50},
		{"p99", colP99, 1.5, p.p99},
	}}
	for _, pn := range []*panel{&rates, &lat} {
		for _, se := range pn.series {
			for _, y := range se.ys {
				if !math.IsNaN(y) {
					pn.yMax = max(pn.yMax, y)
				}
			}
		}
	}
	if hasMain {
		rates.yMax = max(rates.yMax, main.Baseline.Rate)
	}

	// Fault windows and brownouts, shaded behind everything else.
	for _, f := range r.Faults {
		end := x1
		if f.End > f.Start {
			end = f.End
		}
		if end < x0 || f.Start > x1 {
			continue
		}
		a, b := clampX(f.Start), clampX(end)
		s.rect(a, top1, max(b-a, 1), bot1-top1, colFault)
		s.rect(a, top2, max(b-a, 1), bot2-top2, colFault)
	}
	for _, f := range r.RTO.Faults {
		if bo := f.Brownout; bo != nil && bo.Dipped && bo.Len() > 0 {
			a, b := clampX(bo.From), clampX(bo.To)
			s.rect(a, top1, max(b-a, 1), bot1-top1, colBrownout)
		}
	}

	// Grids, axes and series.
	xStep := niceStep((x1 - x0).Seconds(), 12)
	for _, pn := range []*panel{&rates, &lat} {
		step := niceStep(pn.yMax*1.08, 4)
		yMax := math.Max(step, math.Ceil(pn.yMax*1.08/step)*step)
		yOf := func(v float64) float64 { return pn.bot - (pn.bot-pn.top)*v/yMax }
		for v := 0.0; v <= yMax+step/2; v += step {
			y := math.Floor(yOf(v)) + 0.5
			s.line(colGrid, 1, 0, pt{left, y}, pt{right, y})
			s.text(left-6, y+4, anchorEnd, colMuted, fmtTick(v))
		}
		for t := math.Ceil(x0.Seconds()/xStep) * xStep; t <= x1.Seconds()+1e-9; t += xStep {
			x := math.Floor(xOf(time.Duration(t*float64(time.Second)))) + 0.5
			s.line(colGrid, 1, 0, pt{x, pn.top}, pt{x, pn.bot})
		}
		s.text(left, pn.top-8, anchorStart, colText, pn.unit)
		if pn == &rates && hasMain && main.Baseline.Rate > 0 {
			y := yOf(main.Baseline.ThresholdRate)
			s.line(colThreshold, 1, 4, pt{left, y}, pt{right, y})
		}
		for _, se := range pn.series {
			var run []pt
			flush := func() {
				if len(run) == 1 { // a lone point: a short tick
					run = append(run, pt{run[0].X + 2, run[0].Y})
				}
				if len(run) > 1 {
					s.line(se.col, se.width, 0, run...)
				}
				run = nil
			}
			for i, v := range se.ys {
				if math.IsNaN(v) {
					flush()
					continue
				}
				run = append(run, pt{xOf(p.xs[i]), yOf(v)})
			}
			flush()
		}
		s.line(colFrame, 1, 0, pt{left + 0.5, pn.top}, pt{left + 0.5, pn.bot + 0.5}, pt{right, pn.bot + 0.5})
	}
	for t := math.Ceil(x0.Seconds()/xStep) * xStep; t <= x1.Seconds()+1e-9; t += xStep {
		x := xOf(time.Duration(t * float64(time.Second)))
		s.text(x, bot2+17, anchorMiddle, colMuted, fmtTick(t)+"s")
	}
	s.text((left+right)/2, bot2+40, anchorMiddle, colMuted, "time on the history's clock (t+)")

	// Labels on top: what each shaded window is, and when transfers were back.
	for i, f := range r.Faults {
		if f.Start > x1 || (f.End > f.Start && f.End < x0) {
			continue
		}
		s.label(clampX(f.Start)+5, top1+15+float64(i%2)*16, anchorStart, colFaultText, faultName(f))
	}
	for _, f := range r.RTO.Faults {
		if f.Outage.Recovered && f.Baseline.Rate > 0 {
			at := f.Fault.Start + f.Outage.RTO
			if at >= x0 && at <= x1 {
				x := xOf(at)
				s.line(colCommitted, 1.5, 5, pt{x, top1}, pt{x, bot1})
				s.label(x+5, bot1-8, anchorStart, colCommitted, "back at "+fmtPct(r.RTO.Options.Threshold)+": RTO "+fmtSec(f.Outage.RTO))
			}
		}
		if bo := f.Brownout; bo != nil && bo.Dipped && bo.Len() > 0 && bo.From <= x1 {
			s.label(clampX(bo.From)+5, top1+31, anchorStart, colBrownoutText, "brownout "+fmtSec(bo.Len()))
		}
	}
	if len(p.xs) == 0 {
		s.text((left+right)/2, (top1+bot1)/2, anchorMiddle, colMuted, "no transfers recorded")
	}
	return s
}

// svg renders the scene as an inline SVG element (no namespace attribute:
// inside HTML it needs none, and the report stays free of URLs).
func (s *scene) svg() string {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg viewBox="0 0 %d %d" width="100%%" role="img" aria-label="timeline of transfers" font-family="ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', monospace">`+"\n", s.w, s.h)
	for _, it := range s.items {
		switch it.shape {
		case shapeRect:
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"%s/>`+"\n",
				it.x, it.y, it.w, it.h, hexColor(it.col), opacity("fill-opacity", it.col))
		case shapeLine:
			var pts []string
			for _, p := range it.pts {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", p.X, p.Y))
			}
			dash := ""
			if it.dash > 0 {
				dash = fmt.Sprintf(` stroke-dasharray="%g %g"`, it.dash, it.dash*0.7)
			}
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="%g" stroke-linejoin="round"%s%s/>`+"\n",
				strings.Join(pts, " "), hexColor(it.col), it.width, dash, opacity("stroke-opacity", it.col))
		case shapeText:
			size := 11.67 // 7 px per character in a monospace font
			weight := ""
			if it.big {
				size, weight = 23.33, ` font-weight="bold"` // 14 px per character
			}
			a := [...]string{"start", "middle", "end"}[it.anchor]
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="%g"%s text-anchor="%s" fill="%s">%s</text>`+"\n",
				it.x, it.y, size, weight, a, hexColor(it.col), html.EscapeString(it.text))
		}
	}
	b.WriteString("</svg>")
	return b.String()
}

func hexColor(c color.NRGBA) string { return fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B) }

func opacity(attr string, c color.NRGBA) string {
	if c.A == 255 {
		return ""
	}
	return fmt.Sprintf(` %s="%.3f"`, attr, float64(c.A)/255)
}
