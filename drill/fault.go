package drill

// The fault grammar: one line of a scenario, such as
// "isolate city hangzhou" or "partition one-way sz-a | hz-a,hz-b,sh-a,sh-b",
// read by [ParseFault] and written back by [FaultStep.String].

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/fibercut/fibercut/faults"
	"github.com/fibercut/fibercut/topology"
)

// FaultStep is a fault as a scenario writes it: a [faults.Spec], or a
// fault on the DC that holds the ledger's leader, which only the runner
// can know when the step starts.
type FaultStep struct {
	// Spec is the fault. With Leader, Spec.DC is empty.
	Spec faults.Spec
	// Leader targets the DC holding the etcd leader when the fault is
	// applied; the runner sets Spec.DC to it.
	Leader bool
}

// String writes the fault in the grammar [ParseFault] reads, e.g.
// "loss 30% link hz-a sh-a"; ParseFault(f.String()) gives f back.
func (f FaultStep) String() string {
	s := f.Spec
	var b strings.Builder
	b.WriteString(string(s.Kind))
	switch s.Kind {
	case faults.KindCut:
		fmt.Fprintf(&b, " %s %s", s.A, s.B)
		return b.String()
	case faults.KindPartition:
		switch {
		case s.Ring:
			b.WriteString(" ring")
		default:
			if s.OneWay {
				b.WriteString(" one-way")
			}
			gs := make([]string, len(s.Groups))
			for i, g := range s.Groups {
				gs[i] = strings.Join(g, ",")
			}
			fmt.Fprintf(&b, " %s", strings.Join(gs, " | "))
		}
		return b.String()
	case faults.KindLoss:
		fmt.Fprintf(&b, " %d%%", s.Percent)
	case faults.KindBandwidth:
		fmt.Fprintf(&b, " %s", topology.FormatBandwidth(s.RateBits))
	case faults.KindDelay:
		fmt.Fprintf(&b, " %s", topology.FormatDuration(s.Delay))
		if s.Jitter != 0 {
			fmt.Fprintf(&b, "±%s", topology.FormatDuration(s.Jitter))
		}
	}
	switch {
	case f.Leader:
		b.WriteString(" leader")
	case s.A != "" || s.B != "":
		fmt.Fprintf(&b, " link %s %s", s.A, s.B)
	case s.DC != "":
		fmt.Fprintf(&b, " dc %s", s.DC)
	case s.City != "":
		fmt.Fprintf(&b, " city %s", s.City)
	}
	return b.String()
}

// Validate checks the fault against a topology with [faults.Spec.Validate].
// A fault on the leader is checked with a stand-in DC, since the leader is
// only known when the step starts. The error wraps [faults.ErrBadSpec].
func (f FaultStep) Validate(t *topology.Topology) error {
	spec := f.Spec
	if f.Leader {
		switch {
		case !slices.Contains(leaderKinds, spec.Kind):
			return fmt.Errorf("%w: %s cannot target the leader (kinds that can: %s)", faults.ErrBadSpec, spec.Kind, kindNames(leaderKinds))
		case spec.DC != "" || spec.City != "" || spec.A != "" || spec.B != "":
			return fmt.Errorf("%w: a fault on the leader names no dc, city or link", faults.ErrBadSpec)
		case len(t.Datacenters) == 0:
			return fmt.Errorf("%w: topology %s has no DC to hold a leader", faults.ErrBadSpec, t.Name)
		}
		spec.DC = t.Datacenters[0].ID // a stand-in
	}
	return spec.Validate(t)
}

// clone returns a copy that shares nothing with f.
func (f FaultStep) clone() FaultStep {
	if f.Spec.Groups != nil {
		gs := make([][]string, len(f.Spec.Groups))
		for i, g := range f.Spec.Groups {
			gs[i] = slices.Clone(g)
		}
		f.Spec.Groups = gs
	}
	return f
}

// leaderKinds are the kinds that can target the leader, like a DC.
var leaderKinds = []faults.Kind{faults.KindIsolate, faults.KindPowerOff, faults.KindPause,
	faults.KindLoss, faults.KindBandwidth, faults.KindDelay}

func kindNames(kinds []faults.Kind) string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// ParseFault parses a fault as a scenario step writes it, in the words of
// the fault commands:
//
//	cut A B
//	isolate    TARGET                  TARGET: dc ID | city NAME | leader
//	power-off  TARGET
//	pause      TARGET
//	loss       PCT% LINK-OR-TARGET     LINK-OR-TARGET: link A B | TARGET
//	bandwidth  RATE TARGET             RATE: 10mbit, 500kbit, 1Gbit
//	delay      D[±J] LINK-OR-TARGET    or: delay D jitter J LINK-OR-TARGET
//	partition  A,B | C,D,E             every DC in exactly one group
//	partition  one-way A | B,C,D,E     only A → B,C,D,E is dropped
//	partition  ring                    Jepsen's majorities ring
//
// Words are separated by spaces; in a partition, the DCs of a group are
// separated by commas or spaces, and groups by '|'. "leader" is the DC
// holding the ledger's leader when the fault is applied (see
// [FaultStep].Leader). ParseFault checks only the grammar and the numbers;
// [FaultStep.Validate] checks the DCs and cities against a topology. An
// error wraps [faults.ErrBadSpec], names the word that is wrong and says
// what is valid.
func ParseFault(s string) (FaultStep, error) {
	p := &faultParser{text: s, words: splitWords(s)}
	return p.parse()
}

// faultSyntaxError is an error of [ParseFault], at a byte offset of the text.
type faultSyntaxError struct {
	text   string
	offset int
	msg    string
}

func (e *faultSyntaxError) Error() string { return fmt.Sprintf("fault %q: %s", e.text, e.msg) }
func (e *faultSyntaxError) Unwrap() error { return faults.ErrBadSpec }

// faultWord is a word of a fault and its byte offset.
type faultWord struct {
	text string
	off  int
}

// splitWords splits s at white space.
func splitWords(s string) []faultWord {
	var ws []faultWord
	start := -1
	for i, r := range s {
		switch {
		case unicode.IsSpace(r) && start >= 0:
			ws = append(ws, faultWord{s[start:i], start})
			start = -1
		case !unicode.IsSpace(r) && start < 0:
			start = i
		}
	}
	if start >= 0 {
		ws = append(ws, faultWord{s[start:], start})
	}
	return ws
}

type faultParser struct {
	text  string
	words []faultWord
	i     int
}

func (p *faultParser) next() (faultWord, bool) {
	if p.i >= len(p.words) {
		return faultWord{off: len(p.text)}, false
	}
	p.i++
	return p.words[p.i-1], true
}

func (p *faultParser) peek() (faultWord, bool) {
	if p.i >= len(p.words) {
		return faultWord{}, false
	}
	return p.words[p.i], true
}

// fail returns an error at word w; a missing word is at the end of the text.
func (p *faultParser) fail(w faultWord, format string, args ...any) error {
	return &faultSyntaxError{text: p.text, offset: w.off, msg: fmt.Sprintf(format, args...)}
}

const (
	targets       = "dc ID, city NAME or leader"
	linkOrTargets = "link A B, dc ID, city NAME or leader"
)

func (p *faultParser) parse() (FaultStep, error) {
	var f FaultStep
	kw, ok := p.next()
	if !ok {
		return f, p.fail(kw, "empty fault: write a kind and what it acts on, e.g. isolate city hangzhou (kinds: %s)", kindNames(faults.Kinds))
	}
	f.Spec.Kind = faults.Kind(kw.text)
	var err error
	switch f.Spec.Kind {
	case faults.KindCut:
		if f.Spec.A, err = p.name("cut", "two DCs, e.g. cut hz-a sh-a"); err == nil {
			f.Spec.B, err = p.name("cut "+f.Spec.A, "a second DC, e.g. cut hz-a sh-a")
		}
	case faults.KindIsolate, faults.KindPowerOff, faults.KindPause:
		err = p.target(&f, false)
	case faults.KindPartition:
		err = p.partition(&f)
	case faults.KindLoss:
		if err = p.percent(&f); err == nil {
			err = p.target(&f, true)
		}
	case faults.KindBandwidth:
		if err = p.rate(&f); err == nil {
			err = p.target(&f, false)
		}
	case faults.KindDelay:
		if err = p.delay(&f); err == nil {
			err = p.target(&f, true)
		}
	default:
		return FaultStep{}, p.fail(kw, "unknown kind %q (kinds: %s)", kw.text, kindNames(faults.Kinds))
	}
	if err != nil {
		return FaultStep{}, err
	}
	if w, ok := p.next(); ok {
		msg := fmt.Sprintf("unexpected %q after %q: the fault ends with its target", w.text, strings.TrimSpace(p.text[:w.off]))
		switch {
		case w.text == "for":
			msg += "; give the duration in the step's for: field"
		case w.text == "jitter" && f.Spec.Kind == faults.KindDelay:
			msg += "; the jitter comes right after the delay, e.g. delay 50ms jitter 10ms dc hz-a"
		}
		return FaultStep{}, p.fail(w, "%s", msg)
	}
	return f, nil
}

// name reads one DC id or city name; after says what it follows.
func (p *faultParser) name(after, want string) (string, error) {
	w, ok := p.next()
	if !ok {
		return "", p.fail(w, "%s needs %s", after, want)
	}
	return w.text, nil
}

// target reads dc ID, city NAME, leader or, when link is set, link A B.
func (p *faultParser) target(f *FaultStep, link bool) error {
	kind, valid := string(f.Spec.Kind), targets
	if link {
		valid = linkOrTargets
	}
	w, ok := p.next()
	if !ok {
		return p.fail(w, "%s needs a target: %s", kind, valid)
	}
	var err error
	switch {
	case w.text == "dc":
		f.Spec.DC, err = p.name(kind+" dc", "a DC id, e.g. hz-a")
	case w.text == "city":
		f.Spec.City, err = p.name(kind+" city", "a city name, e.g. hangzhou")
	case w.text == "leader":
		f.Leader = true
	case w.text == "link" && link:
		if f.Spec.A, err = p.name(kind+" link", "two DCs, e.g. link hz-a sh-a"); err == nil {
			f.Spec.B, err = p.name(kind+" link "+f.Spec.A, "a second DC, e.g. link hz-a sh-a")
		}
	default:
		return p.fail(w, "unknown target %q after %s (valid: %s)", w.text, kind, valid)
	}
	return err
}

func (p *faultParser) percent(f *FaultStep) error {
	w, ok := p.next()
	const hint = "give a whole percent from 1 to 100, e.g. loss 30% dc hz-a"
	if !ok {
		return p.fail(w, "loss needs a percent: %s", hint)
	}
	num := strings.TrimSuffix(w.text, "%")
	n, err := strconv.Atoi(num)
	if err != nil || strings.Trim(num, "0123456789") != "" || n < 1 || n > 100 {
		return p.fail(w, "loss %q: %s", w.text, hint)
	}
	f.Spec.Percent = n
	return nil
}

func (p *faultParser) rate(f *FaultStep) error {
	w, ok := p.next()
	const hint = "give a positive rate with a unit bit, kbit, Mbit or Gbit, e.g. bandwidth 10mbit dc hz-a"
	if !ok {
		return p.fail(w, "bandwidth needs a rate: %s", hint)
	}
	bits, err := topology.ParseBandwidth(w.text)
	if err != nil || bits <= 0 {
		return p.fail(w, "bandwidth %q: %s", w.text, hint)
	}
	f.Spec.RateBits = bits
	return nil
}

func (p *faultParser) delay(f *FaultStep) error {
	w, ok := p.next()
	const hint = "give a positive duration with a unit, e.g. delay 50ms dc hz-a or delay 50ms±10ms dc hz-a"
	if !ok {
		return p.fail(w, "delay needs a duration: %s", hint)
	}
	text, jitter, sep := w.text, "", ""
	for _, s := range []string{"±", "+-"} {
		if before, after, found := strings.Cut(w.text, s); found {
			text, jitter, sep = before, after, s
			break
		}
	}
	d, err := time.ParseDuration(text)
	if err != nil || d <= 0 {
		return p.fail(w, "delay %q: %s", text, hint)
	}
	f.Spec.Delay = d
	jw := faultWord{text: jitter, off: w.off + len(text) + len(sep)}
	if sep == "" {
		if next, ok := p.peek(); !ok || next.text != "jitter" {
			return nil
		}
		p.next()
		if jw, ok = p.next(); !ok {
			return p.fail(jw, "jitter needs a duration, e.g. delay 50ms jitter 10ms dc hz-a")
		}
	}
	j, err := time.ParseDuration(jw.text)
	if err != nil || j < 0 {
		return p.fail(jw, "jitter %q: give a duration with a unit, e.g. 10ms", jw.text)
	}
	if sep != "" {
		if next, ok := p.peek(); ok && next.text == "jitter" {
			return p.fail(next, "jitter given twice: write delay 50ms±10ms or delay 50ms jitter 10ms")
		}
	}
	f.Spec.Jitter = j
	return nil
}

func (p *faultParser) partition(f *FaultStep) error {
	const forms = "write partition hz-a,hz-b | sh-a,sh-b,sz-a, partition one-way sz-a | hz-a,hz-b,sh-a,sh-b or partition ring"
	w, ok := p.next()
	if !ok {
		return p.fail(w, "partition needs groups: %s", forms)
	}
	rest := strings.TrimSpace(p.text[w.off:])
	if rest == "ring" {
		f.Spec.Ring = true
		return nil
	}
	if w.text == "one-way" {
		f.Spec.OneWay = true
		if w, ok = p.next(); !ok {
			return p.fail(w, "partition one-way needs groups, e.g. partition one-way sz-a | hz-a,hz-b,sh-a,sh-b")
		}
		rest = strings.TrimSpace(p.text[w.off:])
	}
	p.i = len(p.words) // the groups are the rest of the text
	groups, err := faults.ParseGroups(strings.Join(strings.Fields(rest), ","))
	if err != nil {
		return p.fail(w, "partition %q has an empty group: write DC ids separated by commas, groups separated by '|', e.g. hz-a,hz-b | sh-a,sh-b,sz-a", rest)
	}
	for _, g := range groups {
		for _, id := range g {
			if id == "ring" || id == "one-way" {
				return p.fail(w, "%q is a keyword, not a DC id: %s", id, forms)
			}
		}
	}
	if len(groups) < 2 {
		return p.fail(w, "partition %q needs at least two groups separated by '|', e.g. hz-a,hz-b | sh-a,sh-b,sz-a", rest)
	}
	f.Spec.Groups = groups
	return nil
}
