package verify

import (
	"fmt"
	"html/template"
	"io"
)

// htmlView is what the HTML template shows: the markdown's numbers and
// tables, the chart inline.
type htmlView struct {
	Title, Description, Meta string
	Word, Verdict            string
	Passed                   bool
	Cards                    []htmlCard
	Expectations             table
	Faults                   []htmlFault
	MoneyChecked             bool
	Money                    string
	MoneyTable, Checks       table
	Chart                    template.HTML
	Events                   []htmlEvent
	Steps                    table
	Summary                  string
}

type htmlCard struct {
	Label, Value, Sub string
	Bad               bool
}

type htmlFault struct {
	Title    string
	Table    table
	Baseline string
	Notes    []string
}

type htmlEvent struct{ At, What string }

func (r Report) htmlView(chart *scene) htmlView {
	word, verdict := r.verdict()
	v := htmlView{
		Title: cmpOr(r.Scenario, "(unnamed)"), Description: r.Description, Meta: r.metaLine(),
		Word: word, Verdict: verdict, Passed: r.Passed,
		Expectations: expectationsTable(r.Expectations),
		MoneyChecked: r.moneyChecked(), Money: r.moneyText(),
		MoneyTable: moneyTable(r.Check), Checks: checksTable(r.Check),
		Chart: template.HTML(chart.svg()), // built from escaped text only
		Steps: stepsTable(r.Steps, r.StepsFrom), Summary: r.Summary(),
	}
	if main, ok := r.RTO.Main(); ok {
		o := main.Outage
		v.Cards = append(v.Cards,
			htmlCard{Label: "headline RTO", Value: rtoValue(o, main.Baseline), Sub: rtoCardSub(o, main.Baseline, r.RTO.Options),
				Bad: !o.Recovered || o.AfterHeal},
			htmlCard{Label: "first success", Value: firstSuccessText(o), Sub: "first new transfer ok", Bad: !o.Succeeded},
			htmlCard{Label: "longest gap", Value: fmtSec(o.LongestGap.Len()), Sub: "with no commit at all"},
			htmlCard{Label: "users homed in " + main.Group, Value: "p99 " + fmtSec(o.InGroup.P99),
				Sub: usersShort(o.InGroup), Bad: o.InGroup.NeverRecovered > 0},
			htmlCard{Label: "users elsewhere", Value: "p99 " + fmtSec(o.Elsewhere.P99),
				Sub: usersShort(o.Elsewhere), Bad: o.Elsewhere.NeverRecovered > 0},
		)
		if b := main.Brownout; b != nil {
			c := htmlCard{Label: "after heal", Value: "no brownout", Sub: brownoutText(main, r.RTO.Options)}
			if b.Dipped {
				c.Value, c.Bad = "brownout "+fmtSec(b.Len()), true
				c.Sub = fmt.Sprintf("below %s from %s, min %s", fmtPct(r.RTO.Options.Threshold), tPlus(b.From), fmtRate(b.MinRate))
			}
			v.Cards = append(v.Cards, c)
		}
	}
	if r.moneyChecked() {
		v.Cards = append(v.Cards, htmlCard{Label: "money", Value: fmtInt(r.Check.Lost) + " lost",
			Sub: rpoText(r.Check), Bad: r.Check.Lost > 0 || !r.Check.Valid})
	}
	for i, f := range r.RTO.Faults {
		v.Faults = append(v.Faults, htmlFault{Title: fmt.Sprintf("Fault %d: %s", i+1, faultSpan(f.Fault)),
			Table: recoveryTable(f, r.RTO.Options), Baseline: baselineText(f, r.RTO.Options), Notes: f.Notes})
	}
	for _, e := range r.faultEvents() {
		v.Events = append(v.Events, htmlEvent{tPlus(e.At), e.What})
	}
	return v
}

func rtoCardSub(o Recovery, b Baseline, opt RTOOptions) string {
	switch {
	case b.Rate <= 0:
		return "no transfer committed before the fault"
	case !o.Recovered:
		return fmt.Sprintf("not back to %s of %s within %s", fmtPct(opt.Threshold), fmtRate(b.Rate), fmtSec(o.Observed))
	case o.AfterHeal:
		return fmt.Sprintf("back to %s of %s only after the heal", fmtPct(opt.Threshold), fmtRate(b.Rate))
	}
	return fmt.Sprintf("back to %s of %s", fmtPct(opt.Threshold), fmtRate(b.Rate))
}

func (r Report) html(w io.Writer, chart *scene) error {
	return reportTemplate.Execute(w, r.htmlView(chart))
}

var reportTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"markClass": func(s string) string {
		switch s {
		case "✓":
			return "ok"
		case "✗":
			return "bad"
		}
		return ""
	},
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fibercut drill: {{.Title}} — {{.Word}}</title>
<style>
:root { --ok: #1b8a3a; --bad: #c62828; --muted: #666; --line: #e3e3e3; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 48px; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Helvetica Neue", Arial, sans-serif; color: #222; background: #fafafa; }
main { max-width: 1240px; margin: 0 auto; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 32px 0 10px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 16px; margin: 20px 0 8px; }
.meta, .muted { color: var(--muted); }
.description { margin: 4px 0; font-style: italic; }
.verdict { margin: 18px 0; padding: 14px 18px; border-radius: 8px; border-left: 8px solid; background: #fff; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.verdict.pass { border-color: var(--ok); } .verdict.fail { border-color: var(--bad); }
.verdict b { font-size: 20px; margin-right: 8px; }
.verdict.pass b { color: var(--ok); } .verdict.fail b { color: var(--bad); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(175px, 1fr)); gap: 10px; margin: 12px 0; }
.card { background: #fff; border-radius: 8px; padding: 10px 12px; box-shadow: 0 1px 2px rgba(0,0,0,.08); border-top: 4px solid var(--ok); }
.card.bad { border-top-color: var(--bad); }
.card .label { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
.card .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .sub { font-size: 12.5px; color: var(--muted); }
.chart { background: #fff; border-radius: 8px; padding: 8px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.chart svg { display: block; }
table { border-collapse: collapse; background: #fff; margin: 6px 0 10px; box-shadow: 0 1px 2px rgba(0,0,0,.06); }
th, td { text-align: left; padding: 6px 12px; border-bottom: 1px solid var(--line); vertical-align: top; font-variant-numeric: tabular-nums; }
th { background: #f2f2f2; font-weight: 600; }
td.ok { color: var(--ok); font-weight: 700; } td.bad { color: var(--bad); font-weight: 700; }
td:first-child { white-space: nowrap; }
ul.events { list-style: none; padding: 0; margin: 6px 0; }
ul.events li { padding: 2px 0; }
ul.events code, td code { font-size: 13px; }
pre { background: #1e1e1e; color: #eee; padding: 12px 16px; border-radius: 8px; overflow-x: auto; font-size: 13px; line-height: 1.45; }
footer { margin-top: 28px; font-size: 12.5px; color: var(--muted); }
</style>
</head>
<body>
<main>
<h1>fibercut drill: {{.Title}}</h1>
{{with .Description}}<p class="description">{{.}}</p>{{end}}
{{with .Meta}}<p class="meta">{{.}}</p>{{end}}

<div class="verdict {{if .Passed}}pass{{else}}fail{{end}}"><b>{{.Word}}</b>{{.Verdict}}</div>

{{with .Cards}}<div class="cards">
{{range .}}<div class="card{{if .Bad}} bad{{end}}"><div class="label">{{.Label}}</div><div class="value">{{.Value}}</div><div class="sub">{{.Sub}}</div></div>
{{end}}</div>{{end}}

<h2>Timeline</h2>
<div class="chart">{{.Chart}}</div>

{{if .Expectations.Rows}}<h2>Expectations</h2>
{{template "table" .Expectations}}{{end}}

<h2>Recovery</h2>
{{range .Faults}}<h3>{{.Title}}</h3>
{{template "table" .Table}}
<p class="muted">{{.Baseline}}</p>
{{range .Notes}}<p class="muted">Note: {{.}}</p>{{end}}
{{else}}<p>No fault was applied.</p>{{end}}

<h2>Money</h2>
{{if .MoneyChecked}}<p>{{.Money}}</p>
{{template "table" .MoneyTable}}
{{template "table" .Checks}}{{else}}<p>Not checked.</p>{{end}}

{{with .Events}}<h2>Fault timeline</h2>
<ul class="events">{{range .}}<li><code>{{.At}}</code> {{.What}}</li>{{end}}</ul>{{end}}

{{if .Steps.Rows}}<h2>Steps</h2>
{{template "table" .Steps}}{{end}}

<h2>Summary</h2>
<pre>{{.Summary}}</pre>
<footer>Written by fibercut. Times are on the history's monotonic clock (t+ seconds). Committed = transfers acknowledged ok, counted when their answer came back; unknown outcomes are never counted as commits.</footer>
</main>
</body>
</html>
{{define "table"}}<table>
<thead><tr>{{range .Head}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>{{range .Rows}}<tr>{{range .}}<td class="{{markClass .}}">{{.}}</td>{{end}}</tr>
{{end}}</tbody>
</table>{{end}}
`))
