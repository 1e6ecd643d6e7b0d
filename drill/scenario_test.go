package drill

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fibercut/fibercut/faults"
	"github.com/fibercut/fibercut/labs"
	"github.com/fibercut/fibercut/topology"
)

// lines joins YAML lines, so that test inputs show their line numbers.
func lines(ls ...string) string {
	return strings.Join(ls, "\n") + "\n"
}

func TestBuiltinScenarioNames(t *testing.T) {
	want := []string{"atec-2018", "dc-power-loss", "flapping-link", "leader-isolation", "majority-loss", "two-cities-one-dc-each"}
	if got := BuiltinScenarios(); !slices.Equal(got, want) {
		t.Errorf("BuiltinScenarios() = %v, want %v", got, want)
	}
}

// TestBuiltinScenarios checks that every file under labs/scenarios parses,
// validates, is embedded as it is on disk, is named after its file, stays
// short, and says what the brief of each scenario says.
func TestBuiltinScenarios(t *testing.T) {
	files, err := filepath.Glob("../labs/scenarios/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios under labs/scenarios: %v", err)
	}
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		t.Run(name, func(t *testing.T) {
			s, err := BuiltinScenario(name)
			if err != nil {
				t.Fatal(err)
			}
			if s.Name != name || s.Source != "builtin:"+name {
				t.Errorf("Name, Source = %q, %q", s.Name, s.Source)
			}
			if s.Topology != topology.Default || s.TopologyFile != "" {
				t.Errorf("Topology, TopologyFile = %q, %q; want %s, \"\"", s.Topology, s.TopologyFile, topology.Default)
			}
			if len(s.Description) < 40 {
				t.Errorf("description too short for an SRE: %q", s.Description)
			}
			if d := s.Duration(); d > 70*time.Second {
				t.Errorf("Duration() = %s, want at most 70s", d)
			}
			if err := s.Validate(); err != nil {
				t.Errorf("Validate() = %v", err)
			}
			if s.Expect.LostMax != 0 {
				t.Errorf("lost_max = %d; every built-in expects nothing lost", s.Expect.LostMax)
			}
			if !s.Abort.MoneyNotConserved || !s.Abort.StepFails {
				t.Errorf("abort = %+v, want both rules on", s.Abort)
			}
			onDisk, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			embedded, err := fs.ReadFile(labs.Scenarios, "scenarios/"+name+".yaml")
			if err != nil || !bytes.Equal(embedded, onDisk) {
				t.Errorf("embedded copy differs from the file (%v)", err)
			}
			fromFile, err := LoadScenario(path)
			if err != nil {
				t.Fatalf("LoadScenario: %v", err)
			}
			fromFile.Source = s.Source
			if !reflect.DeepEqual(fromFile, s) {
				t.Errorf("LoadScenario and BuiltinScenario differ:\n%+v\n%+v", fromFile, s)
			}
		})
	}
}

// TestBuiltinScenarioPlans checks the plan of each built-in: its faults,
// its expectations, and that the claim about the majority holds.
func TestBuiltinScenarioPlans(t *testing.T) {
	tests := []struct {
		name    string
		plan    []string // "at +for desc"
		expect  Expect
		quorate bool // a majority of DCs stays untouched throughout
	}{
		{"atec-2018", []string{"0s +30s isolate city hangzhou"},
			Expect{RTOMax: 5 * time.Second, FirstSuccessMax: 3 * time.Second}, true},
		{"dc-power-loss", []string{"0s +20s power-off dc hz-a"},
			Expect{RTOMax: 5 * time.Second, FirstSuccessMax: 3 * time.Second, RecoverAfterHealMax: 15 * time.Second}, true},
		{"two-cities-one-dc-each", []string{"0s +30s isolate dc hz-a", "0s +30s isolate dc sh-a"},
			Expect{RTOMax: 5 * time.Second, FirstSuccessMax: 3 * time.Second}, true},
		{"majority-loss", []string{"0s +20s isolate city hangzhou", "0s +20s isolate dc sh-a"},
			Expect{UnavailableAllowed: true, RecoverAfterHealMax: 15 * time.Second}, false},
		{"flapping-link", []string{"0s +2s cut hz-a sh-a", "4s +2s cut hz-a sh-a", "8s +2s cut hz-a sh-a",
			"12s +2s cut hz-a sh-a", "16s +2s cut hz-a sh-a", "20s +2s cut hz-a sh-a"},
			Expect{OutageMax: 5 * time.Second}, true},
		{"leader-isolation", []string{"0s +20s isolate leader"},
			Expect{RTOMax: 5 * time.Second, FirstSuccessMax: 3 * time.Second}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := BuiltinScenario(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			var plan []string
			for _, p := range s.Timeline() {
				plan = append(plan, fmt.Sprintf("%s +%s %s", p.At, p.For, p.Desc))
			}
			if !slices.Equal(plan, tt.plan) {
				t.Errorf("Timeline():\n%s\nwant\n%s", strings.Join(plan, "\n"), strings.Join(tt.plan, "\n"))
			}
			if s.Expect != tt.expect {
				t.Errorf("Expect = %+v, want %+v", s.Expect, tt.expect)
			}
			topo, err := s.ResolveTopology()
			if err != nil {
				t.Fatal(err)
			}
			if got := untouchedMajority(topo, s.Timeline()); got != tt.quorate {
				t.Errorf("a majority of DCs untouched throughout = %v, want %v", got, tt.quorate)
			}
		})
	}
}

// untouchedMajority reports whether, at every moment, a majority of the
// DCs is neither isolated, powered off nor paused. A cut link touches no
// DC; the leader counts as one DC.
func untouchedMajority(t *topology.Topology, plan []PlannedFault) bool {
	for _, p := range plan {
		down := map[string]bool{}
		leaders := 0
		for _, q := range plan {
			if q.At >= p.End() || p.At >= q.End() || q.Spec.Kind == faults.KindCut {
				continue
			}
			if q.Spec.Leader {
				leaders++
			}
			for _, dc := range q.Spec.Targets(t) {
				down[dc] = true
			}
		}
		if 2*(len(t.Datacenters)-len(down)-leaders) <= len(t.Datacenters) {
			return false
		}
	}
	return true
}

func TestParseScenarioErrors(t *testing.T) {
	const (
		name  = "name: game-day"
		steps = "steps: [{at: 0s, fault: isolate city hangzhou, for: 30s}]"
	)
	tests := []struct {
		name string
		yaml string
		at   string // "line:column"
		msg  string // the whole message
	}{
		{"syntax", lines(name, "steps: ["),
			"2:8", "invalid YAML: sequence end token ']' not found"},
		{"empty file", "",
			"1:1", "empty file: a scenario needs at least a name and steps"},
		{"second document", lines(name, steps, "---", name),
			"4:1", "a scenario file holds one YAML document, found a second one"},
		{"duplicate key", lines(name, steps, "warmup: 5s", "warmup: 6s"),
			"4:1", `duplicate key "warmup" (first at line 3, column 1)`},
		{"unknown field", lines(name, steps, "setle: 10s"),
			"3:1", `unknown field "setle" (valid fields: name, description, topology, load, warmup, steps, settle, expect, abort)`},
		{"unknown expectation", lines(name, steps, "expect:", "  rto_max: 5s", "  rpo_max: 0"),
			"5:3", `expect: unknown field "rpo_max" (valid fields: rto_max, first_success_max, outage_max, lost_max, unavailable_allowed, recover_after_heal_max)`},
		{"unknown step field", lines(name, "steps:", "  - {at: 0s, fault: isolate dc hz-a, duration: 30s}"),
			"3:38", `steps[0]: unknown field "duration" (valid fields: name, at, fault, for, repeat, heal)`},
		{"missing name", lines(steps),
			"1:1", "name: missing: every scenario needs a name, e.g. name: my-game-day"},
		{"bad name", lines("name: Game Day", steps),
			"1:7", `name: "Game Day" is not valid: use 1–63 lowercase letters, digits and '-', starting with a letter and not ending with '-'`},
		{"literal description", lines(name, "description: |", "  two", "  lines", steps),
			"2:14", "description: must be one line of text (fold a long one with >-)"},
		{"bad duration", lines(name, "warmup: 10 s", steps),
			"2:9", `warmup: invalid duration "10 s": use a Go duration such as 800us, 1.5ms or 60s`},
		{"warmup too short", lines(name, "warmup: 500ms", steps),
			"2:9", "warmup: must be at least 1s: the transfers before the first fault are the baseline of the recovery time, got 500ms"},
		{"negative settle", lines(name, steps, "settle: -1s"),
			"3:9", "settle: must not be negative, got -1s"},
		{"one user", lines(name, "load: {users: 1, rate: 10}", steps),
			"2:15", "load.users: must be at least 2: a transfer needs a payer and a payee, got 1"},
		{"zero rate", lines(name, "load: {users: 8, rate: 0}", steps),
			"2:24", "load.rate: must be a positive number of transfers per second (all users together), got 0"},
		{"rate as text", lines(name, "load: {rate: fast}", steps),
			"2:14", `load.rate: must be a number, got "fast"`},
		{"rate infinite", lines(name, "load: {rate: .inf}", steps),
			"2:14", "load.rate: must be a number, got .inf"},
		{"bool as text", lines(name, steps, "expect: {unavailable_allowed: yes please}"),
			"3:31", `expect.unavailable_allowed: must be true or false, got "yes please"`},
		{"no steps", lines(name),
			"1:1", "steps: none: a scenario needs at least one fault step, e.g. - {at: 0s, fault: isolate city hangzhou, for: 30s}"},
		{"only heals", lines(name, "steps: [{at: 0s, heal: all}]"),
			"2:8", "steps: no fault step: a scenario needs at least one, e.g. - {at: 0s, fault: isolate city hangzhou, for: 30s}"},
		{"missing at", lines(name, "steps:", "  - fault: isolate dc hz-a"),
			"3:5", "steps[0]: missing at: every step says when it starts, from the end of the warmup, e.g. at: 0s"},
		{"negative at", lines(name, "steps:", "  - {at: -1s, fault: isolate dc hz-a}"),
			"3:10", "steps[0].at: must not be negative, got -1s"},
		{"steps out of order", lines(name, "steps:", "  - {at: 10s, fault: isolate dc hz-a}", "  - {at: 5s, fault: isolate dc sh-a}"),
			"4:10", "steps[1].at: 5s is before the previous step's at (10s): list the steps in time order"},
		{"neither fault nor heal", lines(name, "steps:", "  - {at: 0s, for: 10s}"),
			"3:6", "steps[0]: missing fault or heal: a step applies a fault (fault: isolate city hangzhou) or ends faults (heal: all)"},
		{"fault and heal", lines(name, "steps:", "  - {at: 0s, fault: isolate dc hz-a, heal: all}"),
			"3:6", "steps[0]: give fault or heal, not both"},
		{"fault: unknown kind, at the word", lines(name, "steps:", "  - {at: 0s, fault: isolte city hangzhou}"),
			"3:21", `steps[0].fault: unknown kind "isolte" (kinds: cut, isolate, partition, loss, bandwidth, delay, power-off, pause)`},
		{"fault: unknown target, at the word", lines(name, "steps:", "  - at: 0s", "    fault: isolate twon hangzhou"),
			"4:20", `steps[0].fault: unknown target "twon" after isolate (valid: dc ID, city NAME or leader)`},
		{"fault: quoted, at the word", lines(name, "steps:", `  - {at: 0s, fault: "isolate dc hz-a, please"}`),
			"3:39", `steps[0].fault: unexpected "please" after "isolate dc hz-a,": the fault ends with its target`},
		{"fault: no word, in a list", lines(name, "steps:", `  - {at: 0s, fault: "partition hz-a,hz-b | sh-a,sh-b,sz-a extra"}`),
			"3:21", `steps[0].fault: unknown DC "extra"; valid DCs: hz-a, hz-b, sh-a, sh-b, sz-a`},
		{"fault: missing word, after the text", lines(name, "steps:", "  - {at: 0s, fault: cut hz-a}"),
			"3:29", "steps[0].fault: cut hz-a needs a second DC, e.g. cut hz-a sh-a"},
		{"fault: multi-line, at the value", lines(name, "steps:", "  - at: 0s", "    fault: isolate", "      twon hangzhou"),
			"4:12", `steps[0].fault: unknown target "twon" after isolate`},
		{"fault: not a string", lines(name, "steps:", "  - {at: 0s, fault: [cut, hz-a, sh-a]}"),
			"3:21", "steps[0].fault: must be a fault such as isolate city hangzhou, got a list"},
		{"fault: unknown DC", lines(name, "steps:", "  - {at: 0s, fault: isolate dc bj-a}"),
			"3:21", `steps[0].fault: unknown DC "bj-a"; valid DCs: hz-a, hz-b, sh-a, sh-b, sz-a`},
		{"fault: unknown city", lines(name, "steps:", "  - {at: 0s, fault: power-off city beijing}"),
			"3:21", `steps[0].fault: unknown city "beijing"; valid cities: hangzhou, shanghai, shenzhen`},
		{"fault: partition leaves a DC out", lines(name, "steps:", "  - {at: 0s, fault: partition hz-a hz-b | sh-a sh-b}"),
			"3:21", "steps[0].fault: partition leaves out sz-a; every DC belongs to exactly one group"},
		{"for zero", lines(name, "steps:", "  - {at: 0s, fault: isolate dc hz-a, for: 0s}"),
			"3:43", "steps[0].for: must be positive, got 0s: a scenario's faults end on their own; to end one sooner, add a heal step"},
		{"for on a heal", lines(name, "steps:", "  - {at: 0s, fault: isolate dc hz-a}", "  - {at: 5s, heal: all, for: 1s}"),
			"4:30", "steps[1].for: a heal step has no duration; for belongs to fault steps"},
		{"repeat on a heal", lines(name, "steps:", "  - {at: 0s, fault: isolate dc hz-a}", "  - {at: 5s, heal: all, repeat: {every: 2s, times: 2}}"),
			"4:34", "steps[1].repeat: a heal step does not repeat; repeat belongs to fault steps"},
		{"repeat every too short", lines(name, "steps:", "  - {at: 0s, fault: cut hz-a sh-a, for: 2s, repeat: {every: 2s, times: 3}}"),
			"3:61", "steps[0].repeat.every: must be longer than for (2s), so that the fault is lifted between applications; got 2s"},
		{"repeat times zero", lines(name, "steps:", "  - {at: 0s, fault: cut hz-a sh-a, for: 2s, repeat: {every: 4s}}"),
			"3:54", "steps[0].repeat.times: must be from 1 to 1000 (the number of applications in all), got 0"},
		{"repeat unknown field", lines(name, "steps:", "  - {at: 0s, fault: cut hz-a sh-a, for: 2s, repeat: {every: 4s, count: 3}}"),
			"3:65", `steps[0].repeat: unknown field "count" (valid fields: every, times)`},
		{"too many applications", lines(name, "steps:",
			"  - {at: 0s, fault: cut hz-a sh-a, for: 1s, repeat: {every: 2s, times: 600}}",
			"  - {at: 0s, fault: cut hz-b sh-a, for: 1s, repeat: {every: 2s, times: 600}}"),
			"3:3", "steps: apply 1200 faults in all, repeats included; the limit is 1000"},
		{"heal unknown step", lines(name, "steps:", "  - {name: cut, at: 0s, fault: isolate dc hz-a}", "  - {at: 5s, heal: cutt}"),
			"4:20", `steps[1].heal: unknown step "cutt" (all, or a fault step: cut)`},
		{"heal with no named step", lines(name, "steps:", "  - {at: 0s, fault: isolate dc hz-a}", "  - {at: 5s, heal: cut}"),
			"4:20", `steps[1].heal: unknown step "cut": no fault step has a name; name the step to heal (name: ...) or write heal: all`},
		{"heal a heal step", lines(name, "steps:", "  - {name: cut, at: 0s, fault: isolate dc hz-a}",
			"  - {name: stop, at: 5s, heal: all}", "  - {at: 6s, heal: stop}"),
			"5:20", `steps[2].heal: step "stop" is a heal step; name a fault step (cut) or write heal: all`},
		{"heal before its step", lines(name, "steps:", "  - {at: 0s, heal: cut}", "  - {name: cut, at: 0s, fault: isolate dc hz-a}"),
			"3:20", `steps[0].heal: step "cut" starts at 0s, not before this heal at 0s`},
		{"heal after the fault ended", lines(name, "steps:", "  - {at: 0s, fault: isolate dc hz-a, for: 10s}", "  - {at: 10s, heal: all}"),
			"4:21", "steps[1].heal: heal all at 10s ends nothing: no fault it names is in force or due to repeat then"},
		{"second heal of the same step", lines(name, "steps:", "  - {name: cut, at: 0s, fault: isolate dc hz-a, for: 10s}",
			"  - {at: 5s, heal: cut}", "  - {at: 6s, heal: all}"),
			"5:20", "steps[2].heal: heal all at 6s ends nothing"},
		{"duplicate step name", lines(name, "steps:", "  - {name: cut, at: 0s, fault: isolate dc hz-a}", "  - {name: cut, at: 1s, fault: isolate dc sh-a}"),
			"4:12", `steps[1].name: duplicate step name "cut" (first at line 3, column 12)`},
		{"step named all", lines(name, "steps:", "  - {name: all, at: 0s, fault: isolate dc hz-a}"),
			"3:12", `steps[0].name: "all" is reserved for heal: all; give the step another name`},
		{"too long", lines(name, "steps:", "  - {at: 59m, fault: isolate dc hz-a, for: 2m}"),
			"3:3", "steps: end 1h1m10s after the start, beyond the limit of 1h0m0s for a whole drill"},
		{"at too far", lines(name, "steps:", "  - {at: 2h, fault: isolate dc hz-a}"),
			"3:10", "steps[0].at: must be at most 1h0m0s, got 2h0m0s"},
		{"negative lost_max", lines(name, steps, "expect: {lost_max: -1}"),
			"3:20", "expect.lost_max: must not be negative, got -1"},
		{"rto with unavailable allowed", lines(name, steps, "expect: {unavailable_allowed: true, rto_max: 5s}"),
			"3:46", "expect.rto_max: is not checked when unavailable_allowed is true (writes may stop while the fault lasts); use recover_after_heal_max"},
		{"outage with unavailable allowed", lines(name, steps, "expect: {unavailable_allowed: true, outage_max: 5s}"),
			"3:49", "expect.outage_max: is not checked when unavailable_allowed is true (writes may stop while the fault lasts); use recover_after_heal_max"},
		{"settle shorter than recovery", lines(name, steps, "settle: 5s", "expect: {recover_after_heal_max: 15s}"),
			"3:9", "settle: 5s is shorter than expect.recover_after_heal_max (15s): the drill would end before it could see the service come back"},
		{"unknown topology", lines(name, "topology: three-cities", steps),
			"2:11", `topology: "three-cities" is neither a built-in topology (three-city-five-dc, two-city-three-dc) nor a file (looked for "three-cities")`},
		{"ring on three DCs", lines(name, "topology: two-city-three-dc", "steps: [{at: 0s, fault: partition ring}]"),
			"3:25", "steps[0].fault: a majorities ring needs at least 5 DCs; topology two-city-three-dc has 3"},
		{"alias", lines(name, "warmup: &w 10s", "settle: *w", steps),
			"3:9", "settle: aliases (*name) are not supported; write the value out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseScenario("game.yaml", []byte(tt.yaml))
			var e *ScenarioError
			if !errors.As(err, &e) {
				t.Fatalf("ParseScenario() error = %v, want a *ScenarioError", err)
			}
			if at := fmt.Sprintf("%d:%d", e.Line, e.Column); at != tt.at {
				t.Errorf("at %s, want %s (%v)", at, tt.at, err)
			}
			if !strings.HasPrefix(e.Msg, tt.msg) {
				t.Errorf("message %q\nwant      %q", e.Msg, tt.msg)
			}
			if want := "game.yaml:" + tt.at + ": "; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Error() = %q, want prefix %q", err.Error(), want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("Error() spans several lines: %q", err.Error())
			}
		})
	}
}

// TestBadScenarioFiles checks the files in testdata/bad: each says on its
// first line, "# want: LINE:COL: MESSAGE", the error it must give.
func TestBadScenarioFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no files in testdata/bad: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(data), "\n")
			want, ok := strings.CutPrefix(first, "# want: ")
			if !ok {
				t.Fatalf("first line %q does not say # want: LINE:COL: MESSAGE", first)
			}
			_, err = LoadScenario(path)
			if err == nil || err.Error() != path+":"+want {
				t.Errorf("LoadScenario() = %v\nwant %s:%s", err, path, want)
			}
		})
	}
}

func TestFaultErrorWrapsBadSpec(t *testing.T) {
	for _, yaml := range []string{
		lines("name: x", "steps: [{at: 0s, fault: isolte dc hz-a}]"),
		lines("name: x", "steps: [{at: 0s, fault: isolate dc bj-a}]"),
	} {
		_, err := ParseScenario("x.yaml", []byte(yaml))
		if !errors.Is(err, faults.ErrBadSpec) {
			t.Errorf("ParseScenario(%q) = %v, want an error wrapping faults.ErrBadSpec", yaml, err)
		}
	}
}

func TestParseScenarioValues(t *testing.T) {
	s, err := ParseScenario("game.yaml", []byte(lines(
		"# a comment",
		"name: game-day",
		"description: >-",
		"  Cut Hangzhou,",
		"  then heal it.",
		"load: {users: 8, rate: 12.5}",
		"warmup: 5s",
		"steps:",
		"  - name: hz",
		"    at: 0s",
		"    fault: isolate city hangzhou",
		"  - {name: flap, at: 1s, fault: loss 30% link sh-a sz-a, for: 1s, repeat: {every: 3s, times: 4}}",
		"  - {at: 7s, heal: flap}",
		"  - {at: 8s, heal: all}",
		"settle: 20s",
		"expect: {unavailable_allowed: true, lost_max: 2, recover_after_heal_max: 20s}",
		"abort: {money_not_conserved: false}",
	)))
	if err != nil {
		t.Fatal(err)
	}
	want := &Scenario{
		Name:        "game-day",
		Description: "Cut Hangzhou, then heal it.",
		Topology:    topology.Default,
		Load:        Load{Users: 8, Rate: 12.5},
		Warmup:      5 * time.Second,
		Settle:      20 * time.Second,
		Steps: []Step{
			{Name: "hz", At: 0, Fault: &faults.Spec{Kind: faults.KindIsolate, City: "hangzhou"},
				For: 60 * time.Second, Line: 9, Column: 5},
			{Name: "flap", At: time.Second, Fault: &faults.Spec{Kind: faults.KindLoss, Percent: 30, A: "sh-a", B: "sz-a"},
				For: time.Second, Repeat: &Repeat{Every: 3 * time.Second, Times: 4}, Line: 12, Column: 6},
			{At: 7 * time.Second, Heal: "flap", Line: 13, Column: 6},
			{At: 8 * time.Second, Heal: HealAll, Line: 14, Column: 6},
		},
		Expect: Expect{UnavailableAllowed: true, LostMax: 2, RecoverAfterHealMax: 20 * time.Second},
		Abort:  Abort{MoneyNotConserved: false, StepFails: true},
		Source: "game.yaml",
	}
	s.topo = nil // compared below
	if !reflect.DeepEqual(s, want) {
		t.Errorf("got\n%+v\nwant\n%+v", s, want)
	}
	var steps []string
	for _, st := range s.Steps {
		steps = append(steps, st.String())
	}
	wantSteps := []string{
		"hz: at 0s: isolate city hangzhou for 1m",
		"flap: at 1s: loss 30% link sh-a sz-a for 1s, every 3s, 4 times",
		"at 7s: heal flap",
		"at 8s: heal all",
	}
	if !slices.Equal(steps, wantSteps) {
		t.Errorf("Step.String():\n%s\nwant\n%s", strings.Join(steps, "\n"), strings.Join(wantSteps, "\n"))
	}
	if got := s.Heals(); !reflect.DeepEqual(got, []PlannedHeal{{2, 7 * time.Second, "flap"}, {3, 8 * time.Second, HealAll}}) {
		t.Errorf("Heals() = %+v", got)
	}
}

func TestParseScenarioDefaults(t *testing.T) {
	s, err := ParseScenario("min.yaml", []byte(lines("name: min", "steps: [{at: 0s, fault: isolate dc hz-a}]")))
	if err != nil {
		t.Fatal(err)
	}
	if s.Load != (Load{Users: DefaultUsers, Rate: DefaultRate}) || s.Warmup != DefaultWarmup || s.Settle != DefaultSettle {
		t.Errorf("Load, Warmup, Settle = %+v, %s, %s; want the defaults", s.Load, s.Warmup, s.Settle)
	}
	if s.Abort != (Abort{MoneyNotConserved: true, StepFails: true}) || s.Expect != (Expect{}) {
		t.Errorf("Abort, Expect = %+v, %+v", s.Abort, s.Expect)
	}
	if s.Topology != topology.Default {
		t.Errorf("Topology = %q, want %s", s.Topology, topology.Default)
	}
	if s.Steps[0].For != topology.DefaultFaultDuration {
		t.Errorf("For = %s, want the topology's default fault duration", s.Steps[0].For)
	}
	if d := s.Duration(); d != 10*time.Second+60*time.Second+10*time.Second {
		t.Errorf("Duration() = %s, want 1m20s", d)
	}
}

func TestTopologyFile(t *testing.T) {
	// testdata/custom.yaml names testdata/topologies/two-dc.yaml
	// relatively, and that topology has a 5s default fault duration.
	s, err := LoadScenario("testdata/custom.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join("testdata", "topologies", "two-dc.yaml"); s.TopologyFile != want {
		t.Errorf("TopologyFile = %q, want %q", s.TopologyFile, want)
	}
	tp, err := s.ResolveTopology()
	if err != nil || tp.Name != "two-dc" {
		t.Fatalf("ResolveTopology() = %v, %v; want two-dc", tp, err)
	}
	if s.Steps[0].For != 5*time.Second {
		t.Errorf("For = %s, want the topology's 5s", s.Steps[0].For)
	}
	// A built-in scenario may only name built-in topologies.
	data, err := os.ReadFile("testdata/custom.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = ParseScenario("builtin:custom", data)
	if !errors.Is(err, topology.ErrNotFound) || !strings.Contains(err.Error(), `unknown built-in topology "topologies/two-dc.yaml"`) {
		t.Errorf("built-in naming a file: %v", err)
	}
	// A topology file with problems is reported at the scenario's
	// topology field, with the topology's own position.
	_, err = LoadScenario("testdata/broken-topology.yaml")
	var te *topology.Error
	if !errors.As(err, &te) || !strings.HasPrefix(err.Error(), "testdata/broken-topology.yaml:4:11: topology: ") ||
		!strings.Contains(err.Error(), "testdata/topologies/broken.yaml:3:1: ") {
		t.Errorf("broken topology: %v", err)
	}
}

func TestResolveScenario(t *testing.T) {
	s, err := ResolveScenario("atec-2018")
	if err != nil || s.Source != "builtin:atec-2018" {
		t.Errorf("ResolveScenario(atec-2018) = %v, %v", s, err)
	}
	s, err = ResolveScenario("testdata/custom.yaml")
	if err != nil || s.Source != "testdata/custom.yaml" {
		t.Errorf("ResolveScenario(file) = %v, %v", s, err)
	}
	for _, name := range []string{"atec-2019", "", "testdata/missing.yaml"} {
		_, err = ResolveScenario(name)
		if !errors.Is(err, ErrScenarioNotFound) || !strings.Contains(err.Error(), "atec-2018, dc-power-loss, flapping-link") {
			t.Errorf("ResolveScenario(%q) = %v, want ErrScenarioNotFound listing the built-ins", name, err)
		}
	}
	_, err = BuiltinScenario("atec-2019")
	if !errors.Is(err, ErrScenarioNotFound) || !strings.Contains(err.Error(), "built-ins: atec-2018") {
		t.Errorf("BuiltinScenario(atec-2019) = %v", err)
	}
	_, err = LoadScenario("testdata/missing.yaml")
	if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "drill: ") {
		t.Errorf("LoadScenario(missing) = %v", err)
	}
}

func TestValidateBuiltInGo(t *testing.T) {
	s := &Scenario{
		Name: "go", Topology: topology.Default, Load: Load{Users: 2, Rate: 1},
		Warmup: time.Second, Settle: time.Second,
		Steps: []Step{{At: 0, Fault: &faults.Spec{Kind: faults.KindIsolate, DC: "hz-a"}, For: time.Second}},
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	s.Steps[0].Fault.DC = "bj-a"
	err := s.Validate()
	var e *ScenarioError
	if !errors.As(err, &e) || e.Line != 0 || !errors.Is(err, faults.ErrBadSpec) ||
		err.Error() != `drill: scenario: steps[0].fault: unknown DC "bj-a"; valid DCs: hz-a, hz-b, sh-a, sh-b, sz-a` {
		t.Errorf("Validate() = %v", err)
	}
	s.Topology = "nowhere"
	if err := s.Validate(); !errors.Is(err, topology.ErrNotFound) {
		t.Errorf("Validate() with an unknown topology = %v", err)
	}
}

func TestTimeline(t *testing.T) {
	s, err := ParseScenario("t.yaml", []byte(lines(
		"name: t",
		"warmup: 2s",
		"steps:",
		"  - {name: flap, at: 1s, fault: cut hz-a sh-a, for: 2s, repeat: {every: 5s, times: 4}}", // 1, 6, 11, 16
		"  - {name: slow, at: 3s, fault: delay 50ms dc sz-a, for: 30s}",
		"  - {at: 7s, heal: flap}", // ends the application at 6s early, cancels 11 and 16
		"  - {at: 12s, fault: isolate leader, for: 4s, repeat: {every: 6s, times: 2}}", // 12, 18
		"  - {at: 20s, heal: all}", // ends slow and the application at 18
		"settle: 3s",
	)))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range s.Timeline() {
		got = append(got, fmt.Sprintf("%s+%s step %d #%d healed by %d: %s (Spec.For %s, leader %v)",
			p.At, p.For, p.Step, p.Occurrence, p.HealedBy, p.Desc, p.Spec.For, p.Spec.Leader))
	}
	want := []string{
		"1s+2s step 0 #1 healed by -1: cut hz-a sh-a (Spec.For 2s, leader false)",
		"3s+17s step 1 #1 healed by 4: delay 50ms dc sz-a (Spec.For 17s, leader false)",
		"6s+1s step 0 #2 healed by 2: cut hz-a sh-a (Spec.For 1s, leader false)",
		"12s+4s step 3 #1 healed by -1: isolate leader (Spec.For 4s, leader true)",
		"18s+2s step 3 #2 healed by 4: isolate leader (Spec.For 2s, leader true)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Timeline():\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if d := s.Duration(); d != 2*time.Second+20*time.Second+3*time.Second {
		t.Errorf("Duration() = %s, want 25s", d)
	}
}

func TestHealBetweenRepeatsCancelsTheRest(t *testing.T) {
	s, err := ParseScenario("t.yaml", []byte(lines(
		"name: t",
		"steps:",
		"  - {name: flap, at: 0s, fault: cut hz-a sh-a, for: 2s, repeat: {every: 4s, times: 6}}",
		"  - {at: 9s, heal: flap}", // between the applications at 8s (ends 10s)… no: 8s+2s is in force
		"  - {name: flap2, at: 10s, fault: cut hz-b sh-a, for: 1s, repeat: {every: 4s, times: 3}}", // 10, 14, 18
		"  - {at: 12s, heal: flap2}", // in the gap 11s–14s: cancels 14 and 18
	)))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range s.Timeline() {
		got = append(got, fmt.Sprintf("%s+%s", p.At, p.For))
	}
	if want := []string{"0s+2s", "4s+2s", "8s+1s", "10s+1s"}; !slices.Equal(got, want) {
		t.Errorf("Timeline() = %v, want %v", got, want)
	}
	if d := s.Duration(); d != DefaultWarmup+12*time.Second+DefaultSettle {
		t.Errorf("Duration() = %s, want warmup + 12s (the last heal) + settle", d)
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		steps []string
		want  time.Duration // after the warmup, before the settle
	}{
		{[]string{"{at: 0s, fault: isolate dc hz-a, for: 30s}"}, 30 * time.Second},
		{[]string{"{at: 5s, fault: isolate dc hz-a, for: 30s}", "{at: 10s, fault: isolate dc sh-a, for: 5s}"}, 35 * time.Second},
		{[]string{"{at: 5s, fault: isolate dc hz-a, for: 30s}", "{at: 10s, heal: all}"}, 10 * time.Second},
		{[]string{"{at: 0s, fault: cut hz-a sh-a, for: 2s, repeat: {every: 4s, times: 6}}"}, 22 * time.Second},
	}
	for _, tt := range tests {
		yaml := lines("name: d", "warmup: 3s", "settle: 4s", "steps:", "  - "+strings.Join(tt.steps, "\n  - "))
		s, err := ParseScenario("d.yaml", []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := s.Duration(), 3*time.Second+tt.want+4*time.Second; got != want {
			t.Errorf("%v: Duration() = %s, want %s", tt.steps, got, want)
		}
	}
}

func TestScale(t *testing.T) {
	s, err := BuiltinScenario("flapping-link")
	if err != nil {
		t.Fatal(err)
	}
	orig := s.clone()
	c := s.Scale(0.25)
	// warmup 10s → 2.5s; for 2s → 1s (the floor); lifted 2s → 1s (the
	// floor), so every 2s; settle 15s → 3.75s.
	st := c.Steps[0]
	if c.Warmup != 2500*time.Millisecond || st.At != 0 || st.For != time.Second ||
		*st.Repeat != (Repeat{Every: 2 * time.Second, Times: 6}) || c.Settle != 3750*time.Millisecond {
		t.Errorf("Scale(0.25): warmup %s, at %s, for %s, repeat %+v, settle %s",
			c.Warmup, st.At, st.For, *st.Repeat, c.Settle)
	}
	if c.Expect != s.Expect {
		t.Errorf("Scale changed the expectations: %+v", c.Expect)
	}
	if !reflect.DeepEqual(s, orig) {
		t.Error("Scale changed the original")
	}
	if err := c.Validate(); err != nil {
		t.Errorf("scaled: %v", err)
	}

	atec, err := BuiltinScenario("atec-2018")
	if err != nil {
		t.Fatal(err)
	}
	c = atec.Scale(0.05) // warmup 0.5s → 1s; for 30s → 1.5s; settle 20s → 1s
	if c.Warmup != MinWarmup || c.Steps[0].For != 1500*time.Millisecond || c.Settle != time.Second {
		t.Errorf("Scale(0.05): warmup %s, for %s, settle %s", c.Warmup, c.Steps[0].For, c.Settle)
	}
	c = atec.Scale(2)
	if c.Warmup != 20*time.Second || c.Steps[0].For != time.Minute || c.Settle != 40*time.Second {
		t.Errorf("Scale(2): warmup %s, for %s, settle %s", c.Warmup, c.Steps[0].For, c.Settle)
	}

	majority, err := BuiltinScenario("majority-loss")
	if err != nil {
		t.Fatal(err)
	}
	c = majority.Scale(0.1) // the settle time stays recover_after_heal_max
	if c.Settle != majority.Expect.RecoverAfterHealMax || c.Steps[2].At != 2*time.Second {
		t.Errorf("Scale(0.1): settle %s, heal at %s", c.Settle, c.Steps[2].At)
	}

	for _, f := range []float64{0, -1, 1} {
		if c := atec.Scale(f); !reflect.DeepEqual(c, atec) || c == atec {
			t.Errorf("Scale(%v) is not an unscaled copy", f)
		}
	}
	for _, name := range BuiltinScenarios() {
		s, err := BuiltinScenario(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []float64{0.05, 0.1, 0.25, 0.5, 2} {
			if err := s.Scale(f).Validate(); err != nil {
				t.Errorf("%s scaled by %v: %v", name, f, err)
			}
		}
	}
}

// FuzzParseScenario checks that ParseScenario never panics, that every
// error is a one-line *ScenarioError with a position, and that whatever
// parses validates, plans a timeline within its duration, writes its
// faults back in the grammar, and scales. Seeds: the built-ins and
// testdata/fuzz/FuzzParseScenario.
func FuzzParseScenario(f *testing.F) {
	for _, name := range BuiltinScenarios() {
		data, err := fs.ReadFile(labs.Scenarios, "scenarios/"+name+".yaml")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseScenario("fuzz.yaml", data)
		if err != nil {
			var e *ScenarioError
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not a *ScenarioError", err, err)
			}
			if e.Line < 1 || e.Column < 1 {
				t.Fatalf("error without a position: %v", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error spans several lines: %q", err.Error())
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("Validate() of a parsed scenario: %v", err)
		}
		for i, st := range s.Steps {
			if st.Line < 1 || st.Column < 1 {
				t.Fatalf("steps[%d] has no position", i)
			}
			if st.Fault == nil {
				continue
			}
			back, err := faults.ParseSpec(st.Fault.String())
			if err != nil || !reflect.DeepEqual(back, *st.Fault) {
				t.Fatalf("ParseSpec(%q) = %+v, %v; want %+v", st.Fault.String(), back, err, *st.Fault)
			}
		}
		if s.Duration() > MaxScenarioDuration {
			t.Fatalf("Duration() = %s, beyond the limit", s.Duration())
		}
		for _, p := range s.Timeline() {
			if p.For <= 0 || p.Spec.For != p.For || s.Warmup+p.End() > s.Duration() {
				t.Fatalf("planned fault %+v outside the drill of %s", p, s.Duration())
			}
		}
		c := s.Scale(0.5)
		if c.Warmup < MinWarmup || len(c.Timeline()) > len(s.Timeline()) {
			t.Fatalf("Scale(0.5) = %+v", c)
		}
	})
}

// TestDocExample checks the example of the package doc and the README.
func TestDocExample(t *testing.T) {
	s, err := LoadScenario("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range s.Timeline() {
		got = append(got, fmt.Sprintf("%s+%s %s", p.At, p.For, p.Desc))
	}
	want := []string{"0s+30s isolate city hangzhou", "40s+2s cut hz-a sh-a", "44s+2s cut hz-a sh-a", "48s+2s cut hz-a sh-a"}
	if !slices.Equal(got, want) {
		t.Errorf("Timeline() = %q, want %q", got, want)
	}
	if d := s.Duration(); d != 10*time.Second+50*time.Second+20*time.Second {
		t.Errorf("Duration() = %s, want 1m20s", d)
	}
}
