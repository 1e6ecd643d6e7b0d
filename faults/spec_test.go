package faults

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/topology"
)

func five(t *testing.T) *topology.Topology {
	t.Helper()
	tp, err := topology.Builtin(topology.Default)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

func TestValidateRejectsBadSpecs(t *testing.T) {
	tp := five(t)
	tests := []struct {
		name string
		spec Spec
		want []string // substrings of the error
	}{
		{"unknown dc", Spec{Kind: KindCut, A: "hz-a", B: "bj-a"}, []string{`unknown DC "bj-a"`, "hz-a, hz-b, sh-a, sh-b, sz-a"}},
		{"self link", Spec{Kind: KindCut, A: "hz-a", B: "hz-a"}, []string{"itself"}},
		{"cut without B", Spec{Kind: KindCut, A: "hz-a"}, []string{"two DCs"}},
		{"unknown city", Spec{Kind: KindIsolate, City: "beijing"}, []string{`unknown city "beijing"`, "hangzhou, shanghai, shenzhen"}},
		{"no target", Spec{Kind: KindIsolate}, []string{"needs a DC or a city"}},
		{"dc and city", Spec{Kind: KindPowerOff, DC: "hz-a", City: "hangzhou"}, []string{"not both"}},
		{"dc twice", Spec{Kind: KindPartition, Groups: [][]string{{"hz-a", "hz-b"}, {"sh-a", "sh-b", "sz-a", "hz-a"}}}, []string{"hz-a in groups 1 and 2"}},
		{"dc twice in a group", Spec{Kind: KindPartition, Groups: [][]string{{"hz-a", "hz-a", "hz-b"}, {"sh-a", "sh-b", "sz-a"}}}, []string{"hz-a twice in group 1"}},
		{"dc left out", Spec{Kind: KindPartition, Groups: [][]string{{"hz-a", "hz-b"}, {"sh-a", "sh-b"}}}, []string{"leaves out sz-a"}},
		{"one group", Spec{Kind: KindPartition, Groups: [][]string{{"hz-a", "hz-b", "sh-a", "sh-b", "sz-a"}}}, []string{"at least two groups"}},
		{"loss 0", Spec{Kind: KindLoss, DC: "hz-a"}, []string{"1 to 100"}},
		{"loss 101", Spec{Kind: KindLoss, DC: "hz-a", Percent: 101}, []string{"1 to 100"}},
		{"bandwidth 0", Spec{Kind: KindBandwidth, DC: "hz-a"}, []string{"positive rate"}},
		{"bandwidth on a link", Spec{Kind: KindBandwidth, A: "hz-a", B: "sh-a", RateBits: 1e6}, []string{"not a link"}},
		{"negative delay", Spec{Kind: KindDelay, DC: "hz-a", Delay: -time.Millisecond}, []string{"delay must be positive"}},
		{"negative duration", Spec{Kind: KindCut, A: "hz-a", B: "sh-a", For: -time.Second}, []string{"negative duration"}},
		{"unknown kind", Spec{Kind: "flood"}, []string{`unknown kind "flood"`, "cut, isolate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.spec.Validate(tp)
			if !errors.Is(err, ErrBadSpec) {
				t.Fatalf("Validate = %v, want ErrBadSpec", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestRingNeedsFiveDCs(t *testing.T) {
	three, err := topology.Builtin("two-city-three-dc")
	if err != nil {
		t.Fatal(err)
	}
	if err := (Spec{Kind: KindPartition, Ring: true}).Validate(three); !errors.Is(err, ErrBadSpec) {
		t.Fatalf("ring on 3 DCs: %v, want ErrBadSpec", err)
	}
}

func TestParseGroups(t *testing.T) {
	g, err := ParseGroups(" hz-a, hz-b |sh-a,sh-b , sz-a ")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(g) != "[[hz-a hz-b] [sh-a sh-b sz-a]]" {
		t.Fatalf("groups = %v", g)
	}
	if _, err := ParseGroups("hz-a || sh-a"); !errors.Is(err, ErrBadSpec) {
		t.Fatalf("empty group: %v, want ErrBadSpec", err)
	}
}

func flows(fs []Flow) string {
	var b []string
	for _, f := range fs {
		b = append(b, f.From+">"+f.To)
	}
	return strings.Join(b, " ")
}

func TestGrudge(t *testing.T) {
	tp := five(t)
	tests := []struct {
		name string
		spec Spec
		want string
	}{
		{"cut", Spec{Kind: KindCut, A: "hz-a", B: "sh-b"}, "hz-a>sh-b sh-b>hz-a"},
		{"partition", Spec{Kind: KindPartition, Groups: [][]string{{"hz-a", "hz-b"}, {"sh-a", "sh-b", "sz-a"}}},
			"hz-a>sh-a hz-a>sh-b hz-a>sz-a hz-b>sh-a hz-b>sh-b hz-b>sz-a sh-a>hz-a sh-a>hz-b sh-b>hz-a sh-b>hz-b sz-a>hz-a sz-a>hz-b"},
		{"one way", Spec{Kind: KindPartition, OneWay: true, Groups: [][]string{{"hz-a"}, {"hz-b", "sh-a", "sh-b", "sz-a"}}},
			"hz-a>hz-b hz-a>sh-a hz-a>sh-b hz-a>sz-a"},
		// DC order hz-a hz-b sh-a sh-b sz-a: each reaches its two ring
		// neighbours and drops the two at distance 2.
		{"ring", Spec{Kind: KindPartition, Ring: true},
			"hz-a>sh-a hz-a>sh-b hz-b>sh-b hz-b>sz-a sh-a>hz-a sh-a>sz-a sh-b>hz-a sh-b>hz-b sz-a>hz-b sz-a>sh-a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.spec.Validate(tp); err != nil {
				t.Fatal(err)
			}
			if got := flows(tt.spec.Grudge(tp)); got != tt.want {
				t.Errorf("grudge\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestRingEveryDCSeesAMajority checks the defining property of the ring:
// each DC reaches a majority (itself included), and no two DCs see the same
// majority, so no majority agrees on who is in it.
func TestRingEveryDCSeesAMajority(t *testing.T) {
	tp := five(t)
	blocked := map[Flow]bool{}
	for _, f := range (Spec{Kind: KindPartition, Ring: true}).Grudge(tp) {
		blocked[f] = true
	}
	ids := tp.DCIDs()
	views := map[string]string{}
	for _, a := range ids {
		var sees []string
		for _, b := range ids {
			if a == b || (!blocked[Flow{a, b}] && !blocked[Flow{b, a}]) {
				sees = append(sees, b)
			}
		}
		if len(sees) <= len(ids)/2 {
			t.Errorf("%s sees only %v, not a majority", a, sees)
		}
		views[a] = strings.Join(sees, ",")
	}
	seen := map[string]bool{}
	for _, v := range views {
		if seen[v] {
			t.Errorf("two DCs see the same majority %s", v)
		}
		seen[v] = true
	}
}

func fakeLab(t *testing.T) *lab.Lab {
	tp := five(t)
	l := &lab.Lab{Name: "x", Topology: tp}
	for i, d := range tp.Datacenters {
		l.DCs = append(l.DCs, lab.DC{ID: d.ID, City: d.City, State: "running", Pid: 1,
			WANIP: netip.AddrFrom4([4]byte{10, 0, 0, byte(10 + i)})})
	}
	return l
}

func TestNFTPlan(t *testing.T) {
	l := fakeLab(t)
	show := func(plan map[string][]setAdd) string {
		var out []string
		for dc, adds := range plan {
			for _, a := range adds {
				out = append(out, fmt.Sprintf("%s:%s=%v", dc, a.Set, a.Addrs))
			}
		}
		slices.Sort(out)
		return strings.Join(out, " ")
	}
	tests := []struct {
		name string
		spec Spec
		want string
	}{
		{"cut", Spec{Kind: KindCut, A: "hz-a", B: "sz-a"},
			"hz-a:drop_in=[10.0.0.14] hz-a:drop_out=[10.0.0.14] sz-a:drop_in=[10.0.0.10] sz-a:drop_out=[10.0.0.10]"},
		{"isolate city", Spec{Kind: KindIsolate, City: "hangzhou"},
			"hz-a:isolated=[10.0.0.10] hz-a:keep=[10.0.0.11] hz-b:isolated=[10.0.0.11] hz-b:keep=[10.0.0.10]"},
		{"isolate dc", Spec{Kind: KindIsolate, DC: "sz-a"}, "sz-a:isolated=[10.0.0.14]"},
		{"loss link", Spec{Kind: KindLoss, Percent: 30, A: "sh-a", B: "sh-b"},
			"sh-a:loss_in_30=[10.0.0.13] sh-b:loss_in_30=[10.0.0.12]"},
		{"loss dc", Spec{Kind: KindLoss, Percent: 5, DC: "hz-b"}, "hz-b:loss_dc_5=[10.0.0.11]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, _ := lookupKind(tt.spec.Kind)
			ch, err := k.plan(tt.spec, l)
			if err != nil {
				t.Fatal(err)
			}
			if !ch.kernelExpires() {
				t.Errorf("%s: the kernel cannot expire it", tt.spec)
			}
			if got := show(ch.nft); got != tt.want {
				t.Errorf("plan\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestRecordExpiry(t *testing.T) {
	now := time.Now()
	kernel := Record{NFT: []NFTChange{{DC: "hz-a"}}, Until: now.Add(-time.Second)}
	qdisc := Record{Qdisc: []string{"hz-a"}, Until: now.Add(-time.Second)}
	forever := Record{NFT: []NFTChange{{DC: "hz-a"}}}
	if !kernel.KernelExpires() || !kernel.Over(now) {
		t.Error("an nftables fault with a duration expires in the kernel")
	}
	if qdisc.KernelExpires() {
		t.Error("a qdisc fault cannot expire in the kernel")
	}
	if forever.KernelExpires() || forever.Over(now.Add(time.Hour)) {
		t.Error("a fault until healed never expires")
	}
	got := live([]Record{kernel, qdisc, forever}, now)
	if len(got) != 2 {
		t.Errorf("live kept %d records, want the overdue qdisc and the one until healed", len(got))
	}
}

func TestStoreUpdateIsAtomic(t *testing.T) {
	s := NewStore(t.TempDir() + "/x.faults.json")
	for i := range 3 {
		if err := s.Update(func(st *State) error {
			st.Records = append(st.Records, Record{ID: fmt.Sprint("f", i+1)})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	boom := errors.New("boom")
	if err := s.Update(func(st *State) error { st.Records = nil; return boom }); !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	st, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Records) != 3 || st.Records[2].ID != "f3" {
		t.Fatalf("state after a failed update: %+v", st)
	}
}

// TestIDsNeverRepeat numbers faults of two labs, removes one lab's store
// (lab down) and checks that no id is given twice.
func TestIDsNeverRepeat(t *testing.T) {
	dir := t.TempDir()
	a, b := NewStore(dir+"/a.faults.json"), NewStore(dir+"/b.faults.json")
	seen := map[string]bool{}
	for round := range 3 {
		for _, s := range []*Store{a, b} {
			id, err := s.nextID()
			if err != nil {
				t.Fatal(err)
			}
			if seen[id] {
				t.Fatalf("round %d: id %s given twice", round, id)
			}
			seen[id] = true
		}
		if err := a.Remove(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEffects checks what each kind says it does to the links and DCs, as
// the stage's map draws it.
func TestEffects(t *testing.T) {
	tp := five(t)
	show := func(e Effects) string {
		var out []string
		for k, v := range e.Links {
			out = append(out, k[0]+"-"+k[1]+" "+string(v))
		}
		for dc, v := range e.DCs {
			out = append(out, dc+" "+string(v))
		}
		slices.Sort(out)
		return strings.Join(out, ", ")
	}
	for _, tt := range []struct{ spec, want string }{
		{"cut hz-a sh-a", "hz-a-sh-a cut"},
		{"isolate dc sz-a", "hz-a-sz-a cut, hz-b-sz-a cut, sh-a-sz-a cut, sh-b-sz-a cut, sz-a isolated"},
		{"partition hz-a hz-b | sh-a sh-b sz-a", "hz-a-sh-a cut, hz-a-sh-b cut, hz-a-sz-a cut, hz-b-sh-a cut, hz-b-sh-b cut, hz-b-sz-a cut"},
		{"loss 30% link hz-a sh-b", "hz-a-sh-b lossy"},
		{"delay 30ms dc sz-a", "hz-a-sz-a delayed, hz-b-sz-a delayed, sh-a-sz-a delayed, sh-b-sz-a delayed"},
		{"bandwidth 1mbit dc sz-a", "hz-a-sz-a throttled, hz-b-sz-a throttled, sh-a-sz-a throttled, sh-b-sz-a throttled"},
		{"power-off dc sz-a", "hz-a-sz-a cut, hz-b-sz-a cut, sh-a-sz-a cut, sh-b-sz-a cut, sz-a down"},
		{"pause dc sz-a", "hz-a-sz-a cut, hz-b-sz-a cut, sh-a-sz-a cut, sh-b-sz-a cut, sz-a paused"},
	} {
		s, err := ParseSpec(tt.spec)
		if err != nil {
			t.Fatalf("%s: %v", tt.spec, err)
		}
		if got := show(s.Effects(tp)); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.spec, got, tt.want)
		}
	}
}
