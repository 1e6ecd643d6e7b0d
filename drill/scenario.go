package drill

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"

	"github.com/fibercut/fibercut/faults"
	"github.com/fibercut/fibercut/labs"
	"github.com/fibercut/fibercut/topology"
)

// HealAll is the target of a heal step that ends every fault in force.
const HealAll = "all"

// Defaults applied by [ParseScenario] to fields a file leaves out. A
// fault step's for defaults to the topology's fault duration
// (faults: {default_duration: 60s}).
const (
	DefaultUsers  = 64
	DefaultRate   = 400.0 // transfers per second, all users together
	DefaultWarmup = 10 * time.Second
	DefaultSettle = 10 * time.Second
)

// Limits of a scenario. They keep every drill bounded in time and in
// traffic, whatever a file says.
const (
	// MinWarmup is the shortest warmup: the transfers before the first
	// fault are the baseline the recovery time is measured against.
	MinWarmup = time.Second
	// MaxScenarioDuration bounds a whole drill, warmup to settle.
	MaxScenarioDuration = time.Hour
	// MaxApplications bounds the faults a scenario applies, repeats included.
	MaxApplications = 1000
	// MaxUsers and MaxRate bound the load.
	MaxUsers = 10_000
	MaxRate  = 100_000.0
)

// maxTopologyFile bounds the size of a topology file a scenario names.
const maxTopologyFile = 1 << 20

// builtinScenarioDir is where the built-in scenarios live in [labs.Scenarios].
const builtinScenarioDir = "scenarios"

// builtinPrefix starts the Source of a built-in scenario.
const builtinPrefix = "builtin:"

// ErrScenarioNotFound is wrapped by the errors of [BuiltinScenario] and
// [ResolveScenario] when no built-in scenario or file has the given name.
var ErrScenarioNotFound = errors.New("drill: scenario not found")

// Scenario is a game-day script: the load to run, the faults to apply over
// time, what must hold (expectations) and when to stop early (abort rules).
// A Scenario returned by [ParseScenario], [LoadScenario], [BuiltinScenario]
// or [ResolveScenario] has been validated against its topology.
type Scenario struct {
	// Name identifies the scenario, e.g. "atec-2018".
	Name string
	// Description says in one line what happens and what must hold.
	Description string
	// Topology is the topology as the file names it: a built-in name or a
	// path relative to the scenario file ([topology.Default] when left out).
	Topology string
	// TopologyFile is the path Topology resolved to when it names a file;
	// "" for a built-in topology.
	TopologyFile string
	// Load is the traffic run during the whole drill.
	Load Load
	// Warmup is how long the load runs before the first step: the
	// baseline for the recovery time. Every step's At counts from its end.
	Warmup time.Duration
	// Settle is how long the load runs after the last fault has ended, to
	// see the service recover.
	Settle time.Duration
	// Steps in time order.
	Steps []Step
	// Expect is what must hold for the drill to pass.
	Expect Expect
	// Abort says when to stop the drill early: heal, verify, report.
	Abort Abort
	// Source says where the scenario came from: "builtin:NAME" or a file path.
	Source string

	// topo is the topology the scenario was checked against.
	topo *topology.Topology
}

// Load is the traffic of a drill: virtual users making transfers.
type Load struct {
	// Users is the number of virtual users (accounts), 2 to [MaxUsers].
	Users int
	// Rate is the target of transfers per second, all users together.
	Rate float64
}

// Step is one line of a scenario: at a time, apply a fault or heal.
// Exactly one of Fault and Heal is set.
type Step struct {
	// Name, optional, lets a later heal step name this one.
	Name string
	// At is when the step starts, from the end of the warmup.
	At time.Duration
	// Fault to apply. Its Spec.For is left 0: the step's For is how long
	// it lasts, and [Scenario.Timeline] sets Spec.For of each application.
	Fault *faults.Spec
	// Heal ends faults: [HealAll] ends every fault in force, a step name
	// ends that step's fault and cancels its repetitions.
	Heal string
	// For is how long the fault lasts, always positive: a scenario's faults
	// end on their own. A heal step can end one sooner.
	For time.Duration
	// Repeat, when set, applies the fault again and again.
	Repeat *Repeat
	// Line and Column locate the step in its file; 0 when built in Go.
	Line, Column int
}

// Repeat applies a fault Times times in all, one application starting
// Every after the previous one started; Every is longer than the step's
// For, so that the fault is lifted in between.
type Repeat struct {
	Every time.Duration
	Times int
}

// Expect is what must hold for a drill to pass. Durations are measured
// from the moment a fault took effect; 0 means not checked. Money must be
// conserved in every drill: it is not an expectation but an invariant.
type Expect struct {
	// RTOMax bounds the headline recovery time (rto_max).
	RTOMax time.Duration
	// FirstSuccessMax bounds the time to the first committed transfer
	// after the fault (first_success_max).
	FirstSuccessMax time.Duration
	// OutageMax bounds how long payments may stop at a time, over every
	// fault (outage_max): the longest stretch with no committed transfer
	// at all, and the longest any one user could not transfer; and every
	// user who tried must have transferred again. Unlike RTOMax it does
	// not mind a dip in the rate, only a stop.
	OutageMax time.Duration
	// LostMax bounds the transfers acknowledged to a client but absent
	// from the ledger at the end, the RPO (lost_max); 0 by default.
	LostMax int
	// UnavailableAllowed says writes may stop for as long as the fault
	// lasts (unavailable_allowed): for scenarios that take away the
	// majority. RTOMax, FirstSuccessMax and OutageMax then make no sense and are
	// refused; RecoverAfterHealMax says when service must be back.
	UnavailableAllowed bool
	// RecoverAfterHealMax bounds the time from the end of the last fault
	// to recovered service (recover_after_heal_max).
	RecoverAfterHealMax time.Duration
}

// Lines says what the expectations ask, a line each, for `drill show`.
func (e Expect) Lines() []string {
	var out []string
	add := func(cond bool, format string, args ...any) {
		if cond {
			out = append(out, fmt.Sprintf(format, args...))
		}
	}
	add(e.UnavailableAllowed, "writes may stop while the fault lasts")
	add(e.RTOMax > 0, "RTO ≤ %s (back at 90 %% of the pre-fault rate, and holding)", e.RTOMax)
	add(e.FirstSuccessMax > 0, "first success ≤ %s after the fault", e.FirstSuccessMax)
	add(e.OutageMax > 0, "no stop longer than %s: no commit at all, or one user unable to transfer", e.OutageMax)
	add(true, "lost ≤ %d acknowledged transfers (RPO)", e.LostMax)
	add(e.RecoverAfterHealMax > 0, "back within %s of the last heal", e.RecoverAfterHealMax)
	add(true, "money conserved and every ledger invariant holding (always)")
	return out
}

// Abort lists the rules that stop a drill early; both are on by default.
type Abort struct {
	// MoneyNotConserved stops the drill when a live check during the
	// drill finds that the balances do not add up.
	MoneyNotConserved bool
	// StepFails stops the drill when a step cannot be applied.
	StepFails bool
}

// PlannedFault is one application of a fault step, as [Scenario.Timeline]
// plans it.
type PlannedFault struct {
	// Spec is the fault; its For equals For. When Spec.Leader is set,
	// the runner finds the leader's DC when it applies the fault.
	Spec faults.Spec
	// Step is the index of the fault step in Scenario.Steps, and Name its name.
	Step int
	Name string
	// Occurrence counts the applications of a repeated step, from 1.
	Occurrence int
	// At is when the fault is applied, from the end of the warmup.
	At time.Duration
	// For is how long it stays in force, shortened when a heal step ends
	// it early.
	For time.Duration
	// HealedBy is the index of the heal step that ends it early, or -1.
	HealedBy int
	// Desc describes the fault in the scenario grammar, e.g.
	// "isolate city hangzhou".
	Desc string
}

// End is when the fault is lifted, from the end of the warmup.
func (p PlannedFault) End() time.Duration { return p.At + p.For }

// PlannedHeal is a heal step, as [Scenario.Heals] lists it.
type PlannedHeal struct {
	// Step is the index of the heal step in Scenario.Steps.
	Step int
	// At is when it heals, from the end of the warmup.
	At time.Duration
	// Name is what it ends: the name of a fault step, or [HealAll].
	Name string
}

// ScenarioError is a problem in a scenario, with the position of the YAML
// node that caused it. Line and Column are 1-based; they are 0 when the
// scenario was not read from a file (see [Scenario.Validate]). The message
// names the field by its path ("steps[1].fault") and says what is valid.
type ScenarioError struct {
	File         string
	Line, Column int
	Msg          string
	// Err is the underlying cause when there is one: an error wrapping
	// [faults.ErrBadSpec] for a fault, or the topology's error.
	Err error
}

// Error returns "file:line:column: message", or "drill: scenario: message"
// when there is no position.
func (e *ScenarioError) Error() string {
	if e.Line == 0 {
		return "drill: scenario: " + e.Msg
	}
	file := e.File
	if file == "" {
		file = "scenario"
	}
	return fmt.Sprintf("%s:%d:%d: %s", file, e.Line, e.Column, e.Msg)
}

// Unwrap returns the cause, if any.
func (e *ScenarioError) Unwrap() error { return e.Err }

// LoadScenario reads and validates the scenario file at path.
func LoadScenario(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("drill: %w", err)
	}
	return ParseScenario(path, data)
}

// BuiltinScenarios returns the names of the built-in scenarios, sorted.
func BuiltinScenarios() []string {
	entries, err := fs.ReadDir(labs.Scenarios, builtinScenarioDir)
	if err != nil {
		return nil // cannot happen: the directory is embedded
	}
	var names []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".yaml"); ok {
			names = append(names, name)
		}
	}
	return names
}

// BuiltinScenario returns the built-in scenario with the given name; its
// Source is "builtin:NAME". An unknown name gives an error wrapping
// [ErrScenarioNotFound] that lists the built-in names.
func BuiltinScenario(name string) (*Scenario, error) {
	if !slices.Contains(BuiltinScenarios(), name) {
		return nil, fmt.Errorf("%w: no built-in scenario %q (built-ins: %s)",
			ErrScenarioNotFound, name, strings.Join(BuiltinScenarios(), ", "))
	}
	data, err := fs.ReadFile(labs.Scenarios, builtinScenarioDir+"/"+name+".yaml")
	if err != nil {
		return nil, fmt.Errorf("drill: read built-in scenario %q: %w", name, err)
	}
	return ParseScenario(builtinPrefix+name, data)
}

// ResolveScenario returns the built-in scenario named nameOrFile, else the
// scenario in the file at that path. When there is neither, the error wraps
// [ErrScenarioNotFound] and lists the built-in names.
func ResolveScenario(nameOrFile string) (*Scenario, error) {
	if slices.Contains(BuiltinScenarios(), nameOrFile) {
		return BuiltinScenario(nameOrFile)
	}
	if _, err := os.Stat(nameOrFile); nameOrFile == "" || errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %q is neither a built-in scenario (%s) nor a file",
			ErrScenarioNotFound, nameOrFile, strings.Join(BuiltinScenarios(), ", "))
	}
	return LoadScenario(nameOrFile)
}

// ParseScenario reads and validates a scenario from YAML. file names the
// source in errors and becomes the scenario's Source; a topology given as
// a path is found relative to file's directory (a built-in scenario,
// "builtin:NAME", may only name built-in topologies). Fields left out get
// their defaults (see [DefaultUsers] and the other Default constants).
//
// Every error is a [*ScenarioError] pointing at the offending YAML node
// (for a fault, at the offending word); when a file has several problems,
// only the first is reported.
func ParseScenario(file string, data []byte) (*Scenario, error) {
	p := &scenarioParser{d: topology.NewDecoder(file), file: file}
	s, err := p.parse(data)
	if err != nil {
		return nil, asScenarioError(file, err)
	}
	return s, nil
}

// Validate checks a scenario built in Go (or changed after parsing) the way
// [ParseScenario] checks a file, against the topology [Scenario.ResolveTopology]
// returns. It returns the first problem as a [*ScenarioError] without a
// position, or nil.
func (s *Scenario) Validate() error {
	t, err := s.ResolveTopology()
	if err != nil {
		return &ScenarioError{Msg: "topology: " + err.Error(), Err: err}
	}
	ps := s.problems(t)
	if len(ps) == 0 {
		return nil
	}
	msg := ps[0].path + ": " + ps[0].msg
	if ps[0].path == "" {
		msg = ps[0].msg
	}
	if ps[0].first != "" {
		msg += fmt.Sprintf(" (first at %s)", ps[0].first)
	}
	return &ScenarioError{Msg: msg, Err: ps[0].err}
}

// ResolveTopology returns the topology the scenario runs on: the one it
// was checked against when it was parsed; for a scenario built in Go, the
// file TopologyFile or else the built-in or file Topology names.
func (s *Scenario) ResolveTopology() (*topology.Topology, error) {
	switch {
	case s.topo != nil:
		return s.topo, nil
	case s.TopologyFile != "":
		return topology.Load(s.TopologyFile)
	}
	return topology.Resolve(s.Topology)
}

// Duration is how long the drill runs the load: the warmup, the steps up
// to the end of the last fault (or the last heal), and the settle time.
func (s *Scenario) Duration() time.Duration {
	return s.Warmup + s.stepsEnd() + s.Settle
}

// stepsEnd is when the last fault ends or the last step starts, from the
// end of the warmup.
func (s *Scenario) stepsEnd() time.Duration {
	var end time.Duration
	for _, st := range s.Steps {
		end = max(end, st.At)
	}
	for _, p := range s.Timeline() {
		end = max(end, p.End())
	}
	return end
}

// Timeline expands the fault steps into every application of their fault,
// repeats included, ordered by At (steps starting together in file order).
// A heal step ends the application in force at its time and cancels the
// later ones, so For is how long each really lasts and every application
// has a positive For. The runner applies each at At, with Spec.For = For.
func (s *Scenario) Timeline() []PlannedFault {
	var out []PlannedFault
	for i, st := range s.Steps {
		if st.Fault == nil {
			continue
		}
		times, every := 1, time.Duration(0)
		if st.Repeat != nil {
			times, every = min(max(st.Repeat.Times, 1), MaxApplications), st.Repeat.Every
		}
		healer, healAt := s.healerOf(i)
		for k := range times {
			at := st.At + time.Duration(k)*every
			if healer >= 0 && at >= healAt {
				break
			}
			p := PlannedFault{Spec: st.Fault.Clone(), Step: i, Name: st.Name, Occurrence: k + 1,
				At: at, For: st.For, HealedBy: -1, Desc: st.Fault.String()}
			if healer >= 0 && p.End() > healAt {
				p.For, p.HealedBy = healAt-at, healer
			}
			p.Spec.For = p.For
			out = append(out, p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

// healerOf returns the first heal step that ends fault step i, and when:
// the earliest heal of all, or of the step by name, that comes after the
// step starts. It returns -1 when none does.
func (s *Scenario) healerOf(i int) (int, time.Duration) {
	st := s.Steps[i]
	healer, at := -1, time.Duration(0)
	for j, h := range s.Steps {
		if h.Fault != nil || h.At <= st.At || !(h.Heal == HealAll || (st.Name != "" && h.Heal == st.Name)) {
			continue
		}
		if healer < 0 || h.At < at {
			healer, at = j, h.At
		}
	}
	return healer, at
}

// Heals lists the heal steps, in order.
func (s *Scenario) Heals() []PlannedHeal {
	var hs []PlannedHeal
	for i, st := range s.Steps {
		if st.Fault == nil && st.Heal != "" {
			hs = append(hs, PlannedHeal{Step: i, At: st.At, Name: st.Heal})
		}
	}
	return hs
}

// Scale returns a copy of the scenario with its timing multiplied by f,
// for short runs in CI (f < 1) or slow ones (f > 1): the warmup, every
// step's at and for, the repeats' every, and the settle time.
//
// Expectations are not scaled: rto_max and the others are the service's
// limits, not the scenario's timing. Scaled durations keep sensible floors:
// the warmup never falls below [MinWarmup]; a fault's for, and the time a
// repeated fault is lifted, never below 1 s (unless they were shorter to
// begin with); the settle time never below 1 s nor below
// expect.recover_after_heal_max, so that recovery can still be seen. When
// f is not a positive finite number, the copy is not scaled. Scale does not
// check the result: [Scenario.Validate] does.
func (s *Scenario) Scale(f float64) *Scenario {
	c := s.clone()
	if !(f > 0) || math.IsInf(f, 0) || f == 1 {
		return c
	}
	scale := func(d time.Duration) time.Duration {
		v := math.Round(float64(d) * f)
		if v > float64(100*MaxScenarioDuration) {
			return 100 * MaxScenarioDuration // far beyond the limit, without overflow
		}
		return time.Duration(v)
	}
	// floor scales d, but not below 1 s unless d was shorter already.
	floor := func(d time.Duration) time.Duration { return max(scale(d), min(d, time.Second)) }
	c.Warmup = max(scale(s.Warmup), MinWarmup)
	c.Settle = max(floor(s.Settle), s.Expect.RecoverAfterHealMax)
	for i := range c.Steps {
		st := &c.Steps[i]
		st.At = scale(st.At)
		if st.Fault == nil {
			continue
		}
		orig := s.Steps[i]
		st.For = floor(orig.For)
		if st.Repeat != nil {
			st.Repeat.Every = st.For + floor(orig.Repeat.Every-orig.For)
		}
	}
	return c
}

// clone returns a deep copy of the scenario.
func (s *Scenario) clone() *Scenario {
	c := *s
	c.Steps = make([]Step, len(s.Steps))
	for i, st := range s.Steps {
		if st.Fault != nil {
			f := st.Fault.Clone()
			st.Fault = &f
		}
		if st.Repeat != nil {
			r := *st.Repeat
			st.Repeat = &r
		}
		c.Steps[i] = st
	}
	if s.Steps == nil {
		c.Steps = nil
	}
	return &c
}

// String describes the step in one line, e.g.
// "at 0s: cut hz-a sh-a for 2s, every 4s, 6 times".
func (st Step) String() string {
	var b strings.Builder
	if st.Name != "" {
		fmt.Fprintf(&b, "%s: ", st.Name)
	}
	fmt.Fprintf(&b, "at %s: ", topology.FormatDuration(st.At))
	switch {
	case st.Fault != nil:
		fmt.Fprintf(&b, "%s for %s", st.Fault, topology.FormatDuration(st.For))
		if st.Repeat != nil {
			fmt.Fprintf(&b, ", every %s, %d times", topology.FormatDuration(st.Repeat.Every), st.Repeat.Times)
		}
	case st.Heal != "":
		fmt.Fprintf(&b, "heal %s", st.Heal)
	default:
		b.WriteString("nothing")
	}
	return b.String()
}

// ---- Reading a scenario file ----

// scenarioParser walks the YAML tree of a scenario with a [topology.Decoder].
type scenarioParser struct {
	d    *topology.Decoder
	file string
	// forGiven records, per step, whether the file gave its for.
	forGiven []bool
}

func (p *scenarioParser) parse(data []byte) (*Scenario, error) {
	body, err := p.d.Document(data, "scenario", "a scenario needs at least a name and steps")
	if err != nil {
		return nil, err
	}
	s := &Scenario{
		Load:   Load{Users: DefaultUsers, Rate: DefaultRate},
		Warmup: DefaultWarmup,
		Settle: DefaultSettle,
		Abort:  Abort{MoneyNotConserved: true, StepFails: true},
	}
	if err := p.scenario(body, s); err != nil {
		return nil, err
	}
	t, err := p.topology(s)
	if err != nil {
		return nil, err
	}
	s.topo = t
	for i := range s.Steps {
		if st := &s.Steps[i]; st.Fault != nil && !p.forGiven[i] {
			st.For = t.Faults.Duration
		}
	}
	if ps := s.problems(t); len(ps) > 0 {
		return nil, p.problemError(ps[0])
	}
	s.Source = p.file
	return s, nil
}

// asScenarioError turns an error of the decoder into a [*ScenarioError].
func asScenarioError(file string, err error) error {
	var se *ScenarioError
	if errors.As(err, &se) {
		return se
	}
	var te *topology.Error
	if errors.As(err, &te) {
		return &ScenarioError{File: te.File, Line: te.Line, Column: te.Column, Msg: te.Msg}
	}
	return &ScenarioError{File: file, Line: 1, Column: 1, Msg: err.Error(), Err: err}
}

// problemError places a problem found after decoding at its node.
func (p *scenarioParser) problemError(pr scenarioProblem) *ScenarioError {
	msg := pr.msg
	if pr.first != "" {
		if line, col, ok := p.d.Position(pr.first); ok {
			msg += fmt.Sprintf(" (first at line %d, column %d)", line, col)
		}
	}
	e := p.d.ErrorAt(pr.path, "%s", msg)
	return &ScenarioError{File: e.File, Line: e.Line, Column: e.Column, Msg: e.Msg, Err: pr.err}
}

func (p *scenarioParser) scenario(body ast.Node, s *Scenario) error {
	d := p.d
	return d.Mapping(body, "", []topology.Field{
		{Name: "name", Decode: d.String(&s.Name)},
		{Name: "description", Decode: d.String(&s.Description)},
		{Name: "topology", Decode: d.String(&s.Topology)},
		{Name: "load", Decode: func(n ast.Node, path string) error {
			return d.Mapping(n, path, []topology.Field{
				{Name: "users", Decode: d.Int(&s.Load.Users)},
				{Name: "rate", Decode: p.number(&s.Load.Rate)},
			})
		}},
		{Name: "warmup", Decode: d.Duration(&s.Warmup)},
		{Name: "steps", Decode: func(n ast.Node, path string) error {
			return d.Sequence(n, path, func(n ast.Node, path string) error {
				st, err := p.step(n, path)
				s.Steps = append(s.Steps, st)
				return err
			})
		}},
		{Name: "settle", Decode: d.Duration(&s.Settle)},
		{Name: "expect", Decode: func(n ast.Node, path string) error {
			e := &s.Expect
			return d.Mapping(n, path, []topology.Field{
				{Name: "rto_max", Decode: d.Duration(&e.RTOMax)},
				{Name: "first_success_max", Decode: d.Duration(&e.FirstSuccessMax)},
				{Name: "outage_max", Decode: d.Duration(&e.OutageMax)},
				{Name: "lost_max", Decode: d.Int(&e.LostMax)},
				{Name: "unavailable_allowed", Decode: p.boolean(&e.UnavailableAllowed)},
				{Name: "recover_after_heal_max", Decode: d.Duration(&e.RecoverAfterHealMax)},
			})
		}},
		{Name: "abort", Decode: func(n ast.Node, path string) error {
			return d.Mapping(n, path, []topology.Field{
				{Name: "money_not_conserved", Decode: p.boolean(&s.Abort.MoneyNotConserved)},
				{Name: "step_fails", Decode: p.boolean(&s.Abort.StepFails)},
			})
		}},
	})
}

// step decodes one entry of steps.
func (p *scenarioParser) step(n ast.Node, path string) (Step, error) {
	d := p.d
	var (
		st                Step
		atGiven, forGiven bool
	)
	err := d.Mapping(n, path, []topology.Field{
		{Name: "name", Decode: d.String(&st.Name)},
		{Name: "at", Decode: p.noting(&atGiven, d.Duration(&st.At))},
		{Name: "fault", Decode: p.fault(&st.Fault)},
		{Name: "for", Decode: p.noting(&forGiven, d.Duration(&st.For))},
		{Name: "repeat", Decode: func(n ast.Node, path string) error {
			var r Repeat
			given := false
			err := p.noting(&given, func(n ast.Node, path string) error {
				return d.Mapping(n, path, []topology.Field{
					{Name: "every", Decode: d.Duration(&r.Every)},
					{Name: "times", Decode: d.Int(&r.Times)},
				})
			})(n, path)
			if given {
				st.Repeat = &r
			}
			return err
		}},
		{Name: "heal", Decode: d.String(&st.Heal)},
	})
	p.forGiven = append(p.forGiven, forGiven)
	st.Line, st.Column, _ = d.Position(path)
	if err != nil {
		return st, err
	}
	if !atGiven {
		return st, d.ErrorAt(path, "missing at: every step says when it starts, from the end of the warmup, e.g. at: 0s")
	}
	return st, nil
}

// noting wraps decode to note whether the field had a value (not null).
func (p *scenarioParser) noting(given *bool, decode topology.DecodeFunc) topology.DecodeFunc {
	return func(n ast.Node, path string) error {
		v, err := p.d.Unwrap(n, path)
		if err != nil {
			return err
		}
		if _, null := v.(*ast.NullNode); null {
			return nil
		}
		*given = true
		return decode(n, path)
	}
}

// number decodes an integer or a decimal number; null leaves dst as it is.
func (p *scenarioParser) number(dst *float64) topology.DecodeFunc {
	return func(n ast.Node, path string) error {
		n, err := p.d.Unwrap(n, path)
		if err != nil {
			return err
		}
		switch v := n.(type) {
		case *ast.NullNode:
			return nil
		case *ast.IntegerNode:
			switch i := v.Value.(type) {
			case int64:
				*dst = float64(i)
				return nil
			case uint64:
				*dst = float64(i)
				return nil
			}
		case *ast.FloatNode:
			*dst = v.Value
			return nil
		}
		return p.d.TypeError(n, path, "a number")
	}
}

// boolean decodes true or false; null leaves dst as it is.
func (p *scenarioParser) boolean(dst *bool) topology.DecodeFunc {
	return func(n ast.Node, path string) error {
		n, err := p.d.Unwrap(n, path)
		if err != nil {
			return err
		}
		switch v := n.(type) {
		case *ast.NullNode:
			return nil
		case *ast.BoolNode:
			*dst = v.Value
			return nil
		}
		return p.d.TypeError(n, path, "true or false")
	}
}

// fault decodes a fault written in the grammar of [faults.ParseSpec]; an error
// points at the offending word when the text is on one line.
func (p *scenarioParser) fault(dst **faults.Spec) topology.DecodeFunc {
	return func(n ast.Node, path string) error {
		text, ok, err := p.d.Scalar(n, path, "a fault such as isolate city hangzhou")
		if err != nil || !ok {
			return err
		}
		f, err := faults.ParseSpec(text)
		if err == nil {
			*dst = &f
			return nil
		}
		var se *faults.SyntaxError
		if !errors.As(err, &se) {
			return err
		}
		e := p.d.Errorf(n, path, "%s", se.Msg)
		if v, uerr := p.d.Unwrap(n, path); uerr == nil {
			if col, ok := wordColumn(v, text, se.Offset); ok {
				e.Column = col
			}
		}
		return &ScenarioError{File: e.File, Line: e.Line, Column: e.Column, Msg: e.Msg, Err: err}
	}
}

// wordColumn returns the column of byte offset off of a scalar's text,
// when the scalar is written on one line as its plain or quoted text.
func wordColumn(n ast.Node, text string, off int) (int, bool) {
	tk := n.GetToken()
	if tk == nil || tk.Position == nil || tk.Position.Column < 1 {
		return 0, false
	}
	src, skip := strings.TrimSpace(tk.Origin), 0
	switch {
	case tk.Type == token.StringType && src == text:
	case tk.Type == token.SingleQuoteType && src == "'"+text+"'",
		tk.Type == token.DoubleQuoteType && src == `"`+text+`"`:
		skip = 1
	default:
		return 0, false
	}
	off = min(off, len(text))
	return tk.Position.Column + skip + utf8.RuneCountInString(text[:off]), true
}

// topology resolves the scenario's topology: a built-in name, else a file
// relative to the scenario's directory.
func (p *scenarioParser) topology(s *Scenario) (*topology.Topology, error) {
	if s.Topology == "" {
		s.Topology = topology.Default
	}
	builtins := strings.Join(topology.BuiltinNames(), ", ")
	if slices.Contains(topology.BuiltinNames(), s.Topology) {
		t, err := topology.Builtin(s.Topology)
		if err != nil {
			return nil, p.topologyError(err, "%v", err)
		}
		return t, nil
	}
	if strings.HasPrefix(p.file, builtinPrefix) {
		return nil, p.topologyError(topology.ErrNotFound, "unknown built-in topology %q (built-ins: %s)", s.Topology, builtins)
	}
	path := s.Topology
	if strings.IndexFunc(path, isControl) >= 0 {
		return nil, p.topologyError(topology.ErrNotFound, "%q is neither a built-in topology (%s) nor a file name", s.Topology, builtins)
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(p.file), path)
	}
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, p.topologyError(topology.ErrNotFound, "%q is neither a built-in topology (%s) nor a file (looked for %q)", s.Topology, builtins, path)
	case err != nil:
		return nil, p.topologyError(err, "%v", err)
	case !info.Mode().IsRegular():
		return nil, p.topologyError(nil, "%q is not a regular file", path)
	case info.Size() > maxTopologyFile:
		return nil, p.topologyError(nil, "%q is larger than %d bytes: not a topology", path, maxTopologyFile)
	}
	t, err := topology.Load(path)
	if err != nil {
		return nil, p.topologyError(err, "%v", err)
	}
	s.TopologyFile = path
	return t, nil
}

func (p *scenarioParser) topologyError(cause error, format string, args ...any) *ScenarioError {
	e := p.d.ErrorAt("topology", format, args...)
	return &ScenarioError{File: e.File, Line: e.Line, Column: e.Column, Msg: e.Msg, Err: cause}
}

// ---- Validation ----

// isControl reports whether r breaks a line of text: control characters
// and the Unicode line and paragraph separators.
func isControl(r rune) bool {
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
}

var (
	// scenarioNamePattern matches scenario and step names: they name
	// report directories and appear in commands.
	scenarioNamePattern = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

const namingRule = "use 1–63 lowercase letters, digits and '-', starting with a letter and not ending with '-'"

// scenarioProblem is one thing wrong with a scenario, at a field path such
// as "steps[1].for". first, when set, is the path of the earlier node the
// problem refers to; err is the cause, if any.
type scenarioProblem struct {
	path  string
	msg   string
	first string
	err   error
}

type scenarioValidator struct {
	problems []scenarioProblem
}

func (v *scenarioValidator) add(path, format string, args ...any) {
	v.problems = append(v.problems, scenarioProblem{path: path, msg: fmt.Sprintf(format, args...)})
}

// duration checks that d is within [lo, MaxScenarioDuration].
func (v *scenarioValidator) duration(path string, d, lo time.Duration, why string) {
	switch {
	case d < lo && lo == 0:
		v.add(path, "must not be negative, got %s", d)
	case d < lo:
		v.add(path, "must be at least %s%s, got %s", lo, why, d)
	case d > MaxScenarioDuration:
		v.add(path, "must be at most %s, got %s", MaxScenarioDuration, d)
	}
}

// problems returns everything wrong with s on topology t, section by section.
func (s *Scenario) problems(t *topology.Topology) []scenarioProblem {
	var v scenarioValidator
	switch {
	case s.Name == "":
		v.add("name", "missing: every scenario needs a name, e.g. name: my-game-day")
	case !scenarioNamePattern.MatchString(s.Name):
		v.add("name", "%q is not valid: %s", s.Name, namingRule)
	}
	switch {
	case !utf8.ValidString(s.Description):
		v.add("description", "must be valid UTF-8 text")
	case strings.IndexFunc(s.Description, isControl) >= 0:
		v.add("description", "must be one line of text (fold a long one with >-)")
	}
	switch {
	case s.Load.Users < 2:
		v.add("load.users", "must be at least 2: a transfer needs a payer and a payee, got %d", s.Load.Users)
	case s.Load.Users > MaxUsers:
		v.add("load.users", "must be at most %d, got %d", MaxUsers, s.Load.Users)
	}
	switch {
	case !(s.Load.Rate > 0):
		v.add("load.rate", "must be a positive number of transfers per second (all users together), got %v", s.Load.Rate)
	case s.Load.Rate > MaxRate:
		v.add("load.rate", "must be at most %v transfers per second, got %v", MaxRate, s.Load.Rate)
	}
	v.duration("warmup", s.Warmup, MinWarmup, ": the transfers before the first fault are the baseline of the recovery time")
	v.steps(s.Steps, t)
	v.duration("settle", s.Settle, 0, "")
	v.expect(s.Expect)
	if s.Expect.RecoverAfterHealMax > 0 && s.Settle < s.Expect.RecoverAfterHealMax {
		v.add("settle", "%s is shorter than expect.recover_after_heal_max (%s): the drill would end before it could see the service come back",
			s.Settle, s.Expect.RecoverAfterHealMax)
	}
	if len(v.problems) == 0 {
		v.timeline(s)
	}
	return v.problems
}

func (v *scenarioValidator) steps(steps []Step, t *topology.Topology) {
	if len(steps) == 0 {
		v.add("steps", "none: a scenario needs at least one fault step, e.g. - {at: 0s, fault: isolate city hangzhou, for: 30s}")
		return
	}
	named := make(map[string]int)
	var faultNames []string
	for i, st := range steps {
		if st.Name == "" {
			continue
		}
		if j, dup := named[st.Name]; dup {
			v.problems = append(v.problems, scenarioProblem{path: fmt.Sprintf("steps[%d].name", i),
				msg: fmt.Sprintf("duplicate step name %q", st.Name), first: fmt.Sprintf("steps[%d].name", j)})
			continue
		}
		named[st.Name] = i
		if st.Fault != nil {
			faultNames = append(faultNames, st.Name)
		}
	}
	hasFault := false
	for i, st := range steps {
		path := fmt.Sprintf("steps[%d]", i)
		if st.Name != "" {
			switch {
			case st.Name == HealAll:
				v.add(path+".name", "%q is reserved for heal: all; give the step another name", st.Name)
			case !scenarioNamePattern.MatchString(st.Name):
				v.add(path+".name", "%q is not valid: %s", st.Name, namingRule)
			}
		}
		v.duration(path+".at", st.At, 0, "")
		if i > 0 && st.At < steps[i-1].At {
			v.add(path+".at", "%s is before the previous step's at (%s): list the steps in time order", st.At, steps[i-1].At)
		}
		switch {
		case st.Fault != nil && st.Heal != "":
			v.add(path, "give fault or heal, not both")
		case st.Fault != nil:
			hasFault = true
			v.faultStep(path, st, t)
		case st.Heal != "":
			v.healStep(path, st, steps, named, faultNames)
		default:
			v.add(path, "missing fault or heal: a step applies a fault (fault: isolate city hangzhou) or ends faults (heal: all)")
		}
	}
	if !hasFault {
		v.add("steps", "no fault step: a scenario needs at least one, e.g. - {at: 0s, fault: isolate city hangzhou, for: 30s}")
	}
}

func (v *scenarioValidator) faultStep(path string, st Step, t *topology.Topology) {
	if err := st.Fault.Validate(t); err != nil {
		msg := strings.TrimPrefix(err.Error(), faults.ErrBadSpec.Error()+": ")
		v.problems = append(v.problems, scenarioProblem{path: path + ".fault", msg: msg, err: err})
	}
	if st.For <= 0 {
		v.add(path+".for", "must be positive, got %s: a scenario's faults end on their own; to end one sooner, add a heal step", st.For)
	} else {
		v.duration(path+".for", st.For, 0, "")
	}
	if st.Repeat == nil {
		return
	}
	r := st.Repeat
	switch {
	case r.Every <= st.For:
		v.add(path+".repeat.every", "must be longer than for (%s), so that the fault is lifted between applications; got %s", st.For, r.Every)
	case r.Every > MaxScenarioDuration:
		v.add(path+".repeat.every", "must be at most %s, got %s", MaxScenarioDuration, r.Every)
	}
	if r.Times < 1 || r.Times > MaxApplications {
		v.add(path+".repeat.times", "must be from 1 to %d (the number of applications in all), got %d", MaxApplications, r.Times)
	}
}

func (v *scenarioValidator) healStep(path string, st Step, steps []Step, named map[string]int, faultNames []string) {
	if st.For != 0 {
		v.add(path+".for", "a heal step has no duration; for belongs to fault steps")
	}
	if st.Repeat != nil {
		v.add(path+".repeat", "a heal step does not repeat; repeat belongs to fault steps")
	}
	if st.Heal == HealAll {
		return
	}
	j, ok := named[st.Heal]
	switch {
	case !ok && len(faultNames) == 0:
		v.add(path+".heal", "unknown step %q: no fault step has a name; name the step to heal (name: ...) or write heal: all", st.Heal)
	case !ok:
		v.add(path+".heal", "unknown step %q (all, or a fault step: %s)", st.Heal, strings.Join(faultNames, ", "))
	case steps[j].Fault == nil:
		v.add(path+".heal", "step %q is a heal step; name a fault step (%s) or write heal: all", st.Heal, strings.Join(faultNames, ", "))
	case steps[j].At >= st.At:
		v.add(path+".heal", "step %q starts at %s, not before this heal at %s", st.Heal, steps[j].At, st.At)
	}
}

func (v *scenarioValidator) expect(e Expect) {
	v.duration("expect.rto_max", e.RTOMax, 0, "")
	v.duration("expect.first_success_max", e.FirstSuccessMax, 0, "")
	v.duration("expect.outage_max", e.OutageMax, 0, "")
	v.duration("expect.recover_after_heal_max", e.RecoverAfterHealMax, 0, "")
	if e.LostMax < 0 {
		v.add("expect.lost_max", "must not be negative, got %d", e.LostMax)
	}
	if e.UnavailableAllowed {
		if e.RTOMax > 0 {
			v.add("expect.rto_max", "is not checked when unavailable_allowed is true (writes may stop while the fault lasts); use recover_after_heal_max")
		}
		if e.FirstSuccessMax > 0 {
			v.add("expect.first_success_max", "is not checked when unavailable_allowed is true (writes may stop while the fault lasts); use recover_after_heal_max")
		}
		if e.OutageMax > 0 {
			v.add("expect.outage_max", "is not checked when unavailable_allowed is true (writes may stop while the fault lasts); use recover_after_heal_max")
		}
	}
}

// timeline checks what needs the whole plan: every heal ends something,
// the number of applications, the total length.
func (v *scenarioValidator) timeline(s *Scenario) {
	var apps int
	for _, st := range s.Steps {
		if st.Fault != nil {
			apps += max(1, min(st.Repeat.times(), MaxApplications+1))
		}
	}
	if apps > MaxApplications {
		v.add("steps", "apply %d faults in all, repeats included; the limit is %d", apps, MaxApplications)
		return
	}
	plan := s.Timeline()
	for i, st := range s.Steps {
		if st.Fault != nil || st.Heal == "" {
			continue
		}
		if !v.healEnds(s, plan, i) {
			v.add(fmt.Sprintf("steps[%d].heal", i), "heal %s at %s ends nothing: no fault it names is in force or due to repeat then",
				st.Heal, st.At)
		}
	}
	if end := s.Warmup + s.stepsEnd(); end > MaxScenarioDuration {
		v.add("steps", "end %s after the start, beyond the limit of %s for a whole drill", end, MaxScenarioDuration)
	} else if total := end + s.Settle; total > MaxScenarioDuration {
		v.add("settle", "makes the drill last %s, beyond the limit of %s", total, MaxScenarioDuration)
	}
}

// healEnds reports whether heal step h ends an application in force or
// cancels one still to come.
func (v *scenarioValidator) healEnds(s *Scenario, plan []PlannedFault, h int) bool {
	for _, p := range plan {
		if p.HealedBy == h {
			return true
		}
	}
	// A heal between two applications of a repeated fault ends none in
	// force but cancels the rest: it ends something if a repetition was
	// due at or after it.
	for i, st := range s.Steps {
		if st.Fault == nil || st.Repeat == nil {
			continue
		}
		if healer, _ := s.healerOf(i); healer != h {
			continue
		}
		last := st.At + time.Duration(st.Repeat.Times-1)*st.Repeat.Every
		if last >= s.Steps[h].At {
			return true
		}
	}
	return false
}

// times is the number of applications of a step with this repeat.
func (r *Repeat) times() int {
	if r == nil {
		return 1
	}
	return r.Times
}
