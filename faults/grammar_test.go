package faults

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseSpec(t *testing.T) {
	tests := []struct {
		text string
		want Spec
	}{
		{"cut hz-a sh-a", Spec{Kind: KindCut, A: "hz-a", B: "sh-a"}},
		{"  cut   hz-a\tsh-a ", Spec{Kind: KindCut, A: "hz-a", B: "sh-a"}},
		{"isolate city hangzhou", Spec{Kind: KindIsolate, City: "hangzhou"}},
		{"isolate dc hz-a", Spec{Kind: KindIsolate, DC: "hz-a"}},
		{"isolate leader", Spec{Kind: KindIsolate, Leader: true}},
		{"partition hz-a,hz-b | sh-a,sh-b,sz-a", Spec{Kind: KindPartition,
			Groups: [][]string{{"hz-a", "hz-b"}, {"sh-a", "sh-b", "sz-a"}}}},
		{"partition hz-a hz-b|sh-a, sh-b | sz-a", Spec{Kind: KindPartition,
			Groups: [][]string{{"hz-a", "hz-b"}, {"sh-a", "sh-b"}, {"sz-a"}}}},
		{"partition one-way sz-a | hz-a,hz-b,sh-a,sh-b", Spec{Kind: KindPartition, OneWay: true,
			Groups: [][]string{{"sz-a"}, {"hz-a", "hz-b", "sh-a", "sh-b"}}}},
		{"partition ring", Spec{Kind: KindPartition, Ring: true}},
		{"loss 30% link hz-a sh-a", Spec{Kind: KindLoss, Percent: 30, A: "hz-a", B: "sh-a"}},
		{"loss 30% dc hz-a", Spec{Kind: KindLoss, Percent: 30, DC: "hz-a"}},
		{"loss 5% city shanghai", Spec{Kind: KindLoss, Percent: 5, City: "shanghai"}},
		{"loss 100 leader", Spec{Kind: KindLoss, Percent: 100, Leader: true}},
		{"bandwidth 10mbit dc hz-a", Spec{Kind: KindBandwidth, RateBits: 10_000_000, DC: "hz-a"}},
		{"bandwidth 1Gbit city shenzhen", Spec{Kind: KindBandwidth, RateBits: 1_000_000_000, City: "shenzhen"}},
		{"delay 50ms dc hz-a", Spec{Kind: KindDelay, Delay: 50 * time.Millisecond, DC: "hz-a"}},
		{"delay 50ms±10ms dc hz-a", Spec{Kind: KindDelay, Delay: 50 * time.Millisecond,
			Jitter: 10 * time.Millisecond, DC: "hz-a"}},
		{"delay 50ms+-10ms link hz-a sz-a", Spec{Kind: KindDelay, Delay: 50 * time.Millisecond,
			Jitter: 10 * time.Millisecond, A: "hz-a", B: "sz-a"}},
		{"delay 50ms jitter 10ms city shanghai", Spec{Kind: KindDelay, Delay: 50 * time.Millisecond,
			Jitter: 10 * time.Millisecond, City: "shanghai"}},
		{"power-off dc hz-a", Spec{Kind: KindPowerOff, DC: "hz-a"}},
		{"power-off city hangzhou", Spec{Kind: KindPowerOff, City: "hangzhou"}},
		{"power-off leader", Spec{Kind: KindPowerOff, Leader: true}},
		{"pause dc sz-a", Spec{Kind: KindPause, DC: "sz-a"}},
	}
	tp := five(t)
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			got, err := ParseSpec(tt.text)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseSpec = %+v, want %+v", got, tt.want)
			}
			back, err := ParseSpec(got.String())
			if err != nil || !reflect.DeepEqual(back, got) {
				t.Errorf("ParseSpec(%q) = %+v, %v; want it back", got.String(), back, err)
			}
			err = got.Validate(tp)
			if got.Kind == KindDelay && got.A != "" {
				// netem delays whole interfaces: a link is nfqueue's.
				netem := got
				netem.Engine = EngineNetem
				if err := netem.Validate(tp); err == nil || !strings.Contains(err.Error(), "--engine nfqueue") {
					t.Errorf("Validate of a delay on a link by netem = %v; want it to name --engine nfqueue", err)
				}
			}
			if err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestFaultString(t *testing.T) {
	tests := map[string]string{
		"cut hz-a sh-a":                              "cut hz-a sh-a",
		"partition hz-a hz-b | sh-a,sh-b,sz-a":       "partition hz-a,hz-b | sh-a,sh-b,sz-a",
		"partition one-way sz-a|hz-a,hz-b,sh-a,sh-b": "partition one-way sz-a | hz-a,hz-b,sh-a,sh-b",
		"loss 030% link hz-a sh-a":                   "loss 30% link hz-a sh-a",
		"bandwidth 10mbit dc hz-a":                   "bandwidth 10Mbit dc hz-a",
		"delay 1500ms jitter 10ms dc hz-a":           "delay 1.5s±10ms dc hz-a",
		"isolate leader":                             "isolate leader",
		"power-off city hangzhou":                    "power-off city hangzhou",
	}
	for in, want := range tests {
		f, err := ParseSpec(in)
		if err != nil {
			t.Errorf("ParseSpec(%q): %v", in, err)
			continue
		}
		if got := f.String(); got != want {
			t.Errorf("ParseSpec(%q).String() = %q, want %q", in, got, want)
		}
	}
}

func TestParseSpecErrors(t *testing.T) {
	tests := []struct {
		text string
		at   string // the word the error points at; "" for the end
		msg  string
	}{
		{"", "", "empty fault: write a kind and what it acts on, e.g. isolate city hangzhou (kinds: cut, isolate, partition, loss, bandwidth, delay, power-off, pause)"},
		{"isolte city hangzhou", "isolte", `unknown kind "isolte" (kinds: cut, isolate, partition`},
		{"Cut hz-a sh-a", "Cut", `unknown kind "Cut"`},
		{"cut", "", "cut needs two DCs, e.g. cut hz-a sh-a"},
		{"cut hz-a", "", "cut hz-a needs a second DC"},
		{"cut hz-a sh-a sz-a", "sz-a", `unexpected "sz-a" after "cut hz-a sh-a": the fault ends with its target`},
		{"isolate", "", "isolate needs a target: dc ID, city NAME or leader"},
		{"isolate twon hangzhou", "twon", `unknown target "twon" after isolate (valid: dc ID, city NAME or leader)`},
		{"isolate link hz-a sh-a", "link", `unknown target "link" after isolate (valid: dc ID, city NAME or leader)`},
		{"isolate dc", "", "isolate dc needs a DC id, e.g. hz-a"},
		{"isolate city", "", "isolate city needs a city name, e.g. hangzhou"},
		{"isolate city hangzhou for 30s", "for", `unexpected "for" after "isolate city hangzhou": the fault ends with its target; give the duration separately (--for, or the step's for: field)`},
		{"isolate leader hz-a", "hz-a", `unexpected "hz-a" after "isolate leader"`},
		{"loss dc hz-a", "dc", `loss "dc": give a whole percent from 1 to 100`},
		{"loss 30.5% dc hz-a", "30.5%", `loss "30.5%": give a whole percent from 1 to 100, e.g. loss 30% dc hz-a`},
		{"loss 0% dc hz-a", "0%", `loss "0%"`},
		{"loss 101% dc hz-a", "101%", `loss "101%"`},
		{"loss -5% dc hz-a", "-5%", `loss "-5%"`},
		{"loss 30%", "", "loss needs a target: link A B, dc ID, city NAME or leader"},
		{"loss 30% link hz-a", "", "loss link hz-a needs a second DC"},
		{"bandwidth 10GB dc hz-a", "10GB", `bandwidth "10GB": give a positive rate with a unit bit, kbit, Mbit or Gbit`},
		{"bandwidth unlimited dc hz-a", "unlimited", `bandwidth "unlimited": give a positive rate`},
		{"bandwidth", "", "bandwidth needs a rate"},
		{"bandwidth 10mbit link hz-a sh-a", "link", `unknown target "link" after bandwidth (valid: dc ID, city NAME or leader)`},
		{"delay 50 dc hz-a", "50", `delay "50": give a positive duration with a unit, e.g. delay 50ms dc hz-a`},
		{"delay -5ms dc hz-a", "-5ms", `delay "-5ms"`},
		{"delay 50ms±fast dc hz-a", "fast", `jitter "fast": give a duration with a unit, e.g. 10ms`},
		{"delay 50ms jitter dc hz-a", "dc", `jitter "dc": give a duration`},
		{"delay 50ms jitter", "", "jitter needs a duration"},
		{"delay 50ms±5ms jitter 10ms dc hz-a", "jitter", "jitter given twice"},
		{"delay 50ms dc hz-a jitter 10ms", "jitter", "the jitter comes right after the delay"},
		{"partition", "", "partition needs groups: write partition hz-a,hz-b | sh-a,sh-b,sz-a, partition one-way"},
		{"partition hz-a,hz-b,sh-a", "hz-a,hz-b,sh-a", `partition "hz-a,hz-b,sh-a" needs at least two groups separated by '|'`},
		{"partition hz-a | | sh-a", "hz-a", `partition "hz-a | | sh-a" has an empty group`},
		{"partition one-way", "", "partition one-way needs groups"},
		{"partition one-way ring", "ring", `"ring" is a keyword, not a DC id`},
		{"partition ring | hz-a", "ring", `"ring" is a keyword, not a DC id`},
		{"partition ring extra", "ring", `"ring" is a keyword, not a DC id`},
		{"pause", "", "pause needs a target"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			_, err := ParseSpec(tt.text)
			if !errors.Is(err, ErrBadSpec) {
				t.Fatalf("ParseSpec(%q) = %v, want an error wrapping ErrBadSpec", tt.text, err)
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %T is not a SyntaxError", err)
			}
			if !strings.Contains(se.Msg, tt.msg) {
				t.Errorf("message %q\ndoes not contain %q", se.Msg, tt.msg)
			}
			at := tt.text[min(se.Offset, len(tt.text)):]
			if tt.at == "" && at != "" || !strings.HasPrefix(at, tt.at) {
				t.Errorf("error at %q, want at %q", at, tt.at)
			}
			if want := fmt.Sprintf("fault %q: ", tt.text); !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Error() = %q, want prefix %q", err, want)
			}
		})
	}
}

func TestFaultValidate(t *testing.T) {
	tp := five(t)
	tests := []struct {
		fault Spec
		msg   string
	}{
		{Spec{Kind: KindCut, Leader: true}, "cut cannot target the leader"},
		{Spec{Kind: KindIsolate, DC: "hz-a", Leader: true}, "names no dc, city or link"},
		{Spec{Kind: KindIsolate, DC: "bj-a"}, `unknown DC "bj-a"`},
	}
	for _, tt := range tests {
		err := tt.fault.Validate(tp)
		if !errors.Is(err, ErrBadSpec) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("Validate(%+v) = %v, want ErrBadSpec with %q", tt.fault, err, tt.msg)
		}
	}
}

// FuzzParseSpec checks that ParseSpec never panics, that its errors wrap
// ErrBadSpec at an offset inside the text, and that what parses
// is written back by String unchanged.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"cut hz-a sh-a", "isolate leader", "partition one-way sz-a | hz-a,hz-b",
		"loss 30% link hz-a sh-a", "bandwidth 10mbit dc hz-a", "delay 50ms±10ms city shanghai", "partition ring"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fs, err := ParseSpec(s)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || !errors.Is(err, ErrBadSpec) || se.Offset < 0 || se.Offset > len(s) {
				t.Fatalf("ParseSpec(%q) = %v", s, err)
			}
			return
		}
		back, err := ParseSpec(fs.String())
		if err != nil || !reflect.DeepEqual(back, fs) {
			t.Fatalf("ParseSpec(%q) = %+v; ParseSpec(%q) = %+v, %v", s, fs, fs.String(), back, err)
		}
	})
}
