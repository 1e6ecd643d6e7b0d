package faults

// The fault grammar: one line such as "isolate city hangzhou" or
// "partition one-way sz-a | hz-a,hz-b,sh-a,sh-b", read by [ParseSpec] for
// the fault commands and for scenario files alike, and written back by
// [Spec.String]. The words after the kind are read by the kind itself; the
// parser offers the pieces they share.

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/fibercut/fibercut/topology"
)

// ParseSpec parses a fault in the grammar of the fault commands and
// scenario files:
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
// holding the ledger's leader when the fault is applied ([Spec].Leader).
// ParseSpec checks only the grammar and the numbers; [Spec.Validate] checks
// the DCs and cities against a topology. The duration is not part of the
// grammar: For is left 0. An error is a [*SyntaxError], which wraps
// [ErrBadSpec], names the word that is wrong and says what is valid.
func ParseSpec(s string) (Spec, error) {
	p := &parser{text: s, words: splitWords(s)}
	return p.parse()
}

// SyntaxError is an error of [ParseSpec], at a byte offset of the text.
type SyntaxError struct {
	Text   string
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("fault %q: %s", e.Text, e.Msg) }
func (e *SyntaxError) Unwrap() error { return ErrBadSpec }

// word is a word of a fault and its byte offset.
type word struct {
	text string
	off  int
}

// splitWords splits s at white space.
func splitWords(s string) []word {
	var ws []word
	start := -1
	for i, r := range s {
		switch {
		case unicode.IsSpace(r) && start >= 0:
			ws = append(ws, word{s[start:i], start})
			start = -1
		case !unicode.IsSpace(r) && start < 0:
			start = i
		}
	}
	if start >= 0 {
		ws = append(ws, word{s[start:], start})
	}
	return ws
}

// parser reads the words of one fault.
type parser struct {
	text  string
	words []word
	i     int
}

func (p *parser) next() (word, bool) {
	if p.i >= len(p.words) {
		return word{off: len(p.text)}, false
	}
	p.i++
	return p.words[p.i-1], true
}

func (p *parser) peek() (word, bool) {
	if p.i >= len(p.words) {
		return word{}, false
	}
	return p.words[p.i], true
}

// rest returns the text from word w to the end, and consumes it.
func (p *parser) rest(w word) string {
	p.i = len(p.words)
	return strings.TrimSpace(p.text[w.off:])
}

// fail returns an error at word w; a missing word is at the end of the text.
func (p *parser) fail(w word, format string, args ...any) error {
	return &SyntaxError{Text: p.text, Offset: w.off, Msg: fmt.Sprintf(format, args...)}
}

const (
	targets       = "dc ID, city NAME or leader"
	linkOrTargets = "link A B, dc ID, city NAME or leader"
)

func (p *parser) parse() (Spec, error) {
	var s Spec
	kw, ok := p.next()
	if !ok {
		return s, p.fail(kw, "empty fault: write a kind and what it acts on, e.g. isolate city hangzhou (kinds: %s)", kindList())
	}
	s.Kind = Kind(kw.text)
	k, ok := lookupKind(s.Kind)
	if !ok {
		return Spec{}, p.fail(kw, "unknown kind %q (kinds: %s)", kw.text, kindList())
	}
	if err := k.parse(p, &s); err != nil {
		return Spec{}, err
	}
	if w, ok := p.next(); ok {
		msg := fmt.Sprintf("unexpected %q after %q: the fault ends with its target", w.text, strings.TrimSpace(p.text[:w.off]))
		switch {
		case w.text == "for":
			msg += "; give the duration separately (--for, or the step's for: field)"
		case w.text == "jitter" && s.Kind == KindDelay:
			msg += "; the jitter comes right after the delay, e.g. delay 50ms jitter 10ms dc hz-a"
		}
		return Spec{}, p.fail(w, "%s", msg)
	}
	return s, nil
}

// name reads one DC id or city name; after says what it follows.
func (p *parser) name(after, want string) (string, error) {
	w, ok := p.next()
	if !ok {
		return "", p.fail(w, "%s needs %s", after, want)
	}
	return w.text, nil
}

// link reads the two DCs of a link; after says what they follow.
func (p *parser) link(s *Spec, after string) (err error) {
	if s.A, err = p.name(after, "two DCs, e.g. "+after+" hz-a sh-a"); err == nil {
		s.B, err = p.name(after+" "+s.A, "a second DC, e.g. "+after+" hz-a sh-a")
	}
	return err
}

// target reads dc ID, city NAME, leader or, when link is set, link A B.
func (p *parser) target(s *Spec, link bool) error {
	kind, valid := string(s.Kind), targets
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
		s.DC, err = p.name(kind+" dc", "a DC id, e.g. hz-a")
	case w.text == "city":
		s.City, err = p.name(kind+" city", "a city name, e.g. hangzhou")
	case w.text == "leader":
		s.Leader = true
	case w.text == "link" && link:
		err = p.link(s, kind+" link")
	default:
		return p.fail(w, "unknown target %q after %s (valid: %s)", w.text, kind, valid)
	}
	return err
}

func (p *parser) percent(s *Spec) error {
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
	s.Percent = n
	return nil
}

func (p *parser) rate(s *Spec) error {
	w, ok := p.next()
	const hint = "give a positive rate with a unit bit, kbit, Mbit or Gbit, e.g. bandwidth 10mbit dc hz-a"
	if !ok {
		return p.fail(w, "bandwidth needs a rate: %s", hint)
	}
	bits, err := topology.ParseBandwidth(w.text)
	if err != nil || bits <= 0 {
		return p.fail(w, "bandwidth %q: %s", w.text, hint)
	}
	s.RateBits = bits
	return nil
}

func (p *parser) delay(s *Spec) error {
	w, ok := p.next()
	const hint = "give a positive duration with a unit, e.g. delay 50ms dc hz-a or delay 50ms±10ms dc hz-a"
	if !ok {
		return p.fail(w, "delay needs a duration: %s", hint)
	}
	text, jitter, sep := w.text, "", ""
	for _, sp := range []string{"±", "+-"} {
		if before, after, found := strings.Cut(w.text, sp); found {
			text, jitter, sep = before, after, sp
			break
		}
	}
	d, err := time.ParseDuration(text)
	if err != nil || d <= 0 {
		return p.fail(w, "delay %q: %s", text, hint)
	}
	s.Delay = d
	jw := word{text: jitter, off: w.off + len(text) + len(sep)}
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
	s.Jitter = j
	return nil
}

// ParseGroups parses a partition written as "hz-a,hz-b | sh-a,sh-b,sz-a".
func ParseGroups(expr string) ([][]string, error) {
	var groups [][]string
	for g := range strings.SplitSeq(expr, "|") {
		var ids []string
		for id := range strings.SplitSeq(g, ",") {
			if id = strings.TrimSpace(id); id != "" {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			return nil, fmt.Errorf("%w: partition %q has an empty group; write groups of DC ids separated by '|', e.g. \"hz-a,hz-b | sh-a,sh-b,sz-a\"", ErrBadSpec, expr)
		}
		groups = append(groups, ids)
	}
	return groups, nil
}
