package verify

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

const initFen = 100_000_000

// bank builds a history and the final state of a ledger that ran it.
type bank struct {
	ops []Op
	st  FinalState
	rev int64
}

// newBank opens accounts, each ok in the history and present in the state,
// and gives the state three members that agree.
func newBank(accts ...string) *bank {
	b := &bank{rev: 100, st: FinalState{
		InitialBalanceFen: initFen,
		Balances:          map[string]int64{},
		Transfers:         map[string]StoredTransfer{},
		Members:           []MemberHash{{DC: "hz-a", Hash: 0xabc}, {DC: "sh-a", Hash: 0xabc}, {DC: "sz-a", Hash: 0xabc}},
	}}
	for _, a := range accts {
		b.op(Op{Kind: KindOpen, From: a, Outcome: OK, BalanceFen: initFen})
		b.st.Accounts = append(b.st.Accounts, a)
		b.st.Balances[a] = initFen
	}
	return b
}

func (b *bank) op(op Op) {
	op.Seq = int64(len(b.ops) + 1)
	b.ops = append(b.ops, op)
}

// attempt records one attempt of transfer from/key.
func (b *bank) attempt(from, to, key string, fen int64, o Outcome, mods ...func(*Op)) {
	op := Op{Kind: KindTransfer, From: from, To: to, Key: key, AmountFen: fen, Outcome: o}
	for _, m := range mods {
		m(&op)
	}
	b.op(op)
}

// apply stores transfer from/key in the ledger and moves its money; it
// returns the commit revision.
func (b *bank) apply(from, to, key string, fen int64) int64 {
	b.rev++
	b.st.Transfers[from+"/"+key] = StoredTransfer{From: from, To: to, AmountFen: fen, Revision: b.rev}
	b.st.Balances[from] -= fen
	b.st.Balances[to] += fen
	return b.rev
}

// unapply removes a stored transfer and gives its money back, as if the
// ledger had lost its whole commit.
func (b *bank) unapply(from, key string) {
	t := b.st.Transfers[from+"/"+key]
	delete(b.st.Transfers, from+"/"+key)
	b.st.Balances[t.From] += t.AmountFen
	b.st.Balances[t.To] -= t.AmountFen
}

func withRev(r int64) func(*Op)  { return func(op *Op) { op.Revision = r } }
func asReplayed(op *Op)          { op.Replayed = true }
func withStatus(s int) func(*Op) { return func(op *Op) { op.Status = s } }

// cleanBank is a run with every kind of outcome and nothing wrong.
func cleanBank() *bank {
	b := newBank("a", "b", "c", "d")
	// k1: ok at once.
	b.attempt("a", "b", "k1", 100, OK, withRev(b.apply("a", "b", "k1", 100)))
	// k2: a timeout that was applied, then the retry replayed it.
	r := b.apply("b", "c", "k2", 50)
	b.attempt("b", "c", "k2", 50, Unknown)
	b.attempt("b", "c", "k2", 50, OK, withRev(r), asReplayed)
	// k3: unknown, applied.
	b.attempt("c", "a", "k3", 7, Unknown)
	b.apply("c", "a", "k3", 7)
	// k4: unknown, not applied.
	b.attempt("d", "a", "k4", 9, Unknown)
	// k5: refused (insufficient funds).
	b.attempt("a", "d", "k5", 1_000_000_000, Fail, withStatus(409))
	// k6: unknown, then no quorum: unknown, not applied.
	b.attempt("a", "c", "k6", 3, Unknown)
	b.attempt("a", "c", "k6", 3, Fail, withStatus(503))
	// k7: refused.
	b.attempt("d", "b", "k7", 20, Fail, withStatus(403))
	// k8: unknown, then a 503: the first attempt was applied.
	b.attempt("d", "c", "k8", 11, Unknown)
	b.apply("d", "c", "k8", 11)
	b.attempt("d", "c", "k8", 11, Fail, withStatus(503))
	b.op(Op{Kind: KindRead, From: "b", Outcome: OK, BalanceFen: initFen + 100 - 50})
	b.op(Op{Kind: KindRead, From: "c", Outcome: Fail, Status: 503})
	return b
}

var allChecks = []string{CheckMoneyConserved, CheckNoNegative, CheckAckedPresent, CheckNoneTwice,
	CheckNoneInvented, CheckReplay, CheckMembersAgree, CheckFailedAbsent, CheckAccountsPresent}

func TestCheckClean(t *testing.T) {
	b := cleanBank()
	res := CheckHistory(Header{Format: FormatV1}, b.ops, b.st)
	var names []string
	for _, c := range res.Checks {
		names = append(names, c.Name)
		if !c.OK {
			t.Errorf("%s: %s", c.Name, c.Detail)
		}
	}
	if !slices.Equal(names, allChecks) {
		t.Errorf("checks %q, want %q", names, allChecks)
	}
	if !res.Valid {
		t.Error("not valid")
	}
	want := Result{Valid: true, Checks: res.Checks, Acknowledged: 2, Failed: 2, UnknownApplied: 2, UnknownNotFound: 2}
	if fmt.Sprint(res) != fmt.Sprint(want) {
		t.Errorf("counts: %+v", res)
	}
	for _, c := range res.Checks {
		t.Logf("%s: %s", c.Name, c.Detail)
	}
	if d := res.Checks[2].Detail; d != "2 acknowledged transfers, all present" {
		t.Errorf("detail %q", d)
	}
}

func TestCheckViolations(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(b *bank)
		fails  []string // the checks that must fail, in order
		detail string   // in the detail of a failing check
		counts func(Result) bool
	}{
		{"lost acknowledged transfer", func(b *bank) { b.unapply("a", "k1") },
			[]string{CheckAckedPresent}, "1 of 2 acknowledged transfers missing (RPO > 0): a/k1",
			func(r Result) bool { return r.Lost == 1 && r.Acknowledged == 2 }},
		{"acknowledged stored with another amount", func(b *bank) {
			b.unapply("a", "k1")
			b.apply("a", "b", "k1", 101)
			b.st.Transfers["a/k1"] = StoredTransfer{From: "a", To: "b", AmountFen: 101, Revision: 101}
		}, []string{CheckAckedPresent, CheckNoneInvented}, "a/k1: acknowledged 100 fen to b, stored 101 fen to b",
			func(r Result) bool { return r.Lost == 0 && r.Invented == 1 }},
		{"balance edited +1 fen", func(b *bank) { b.st.Balances["c"]++ },
			[]string{CheckMoneyConserved, CheckReplay}, "1 fen too many", nil},
		{"one fen moved without a transfer", func(b *bank) { b.st.Balances["c"]++; b.st.Balances["d"]-- },
			[]string{CheckReplay}, "c: replay 100,000,054 fen, ledger 100,000,055 (+1)", nil},
		{"transfer applied twice to balances, stored once", func(b *bank) {
			b.st.Balances["a"] -= 100
			b.st.Balances["b"] += 100
		}, []string{CheckReplay}, "2 replay mismatches: a: replay 99,999,907 fen, ledger 99,999,807 (-100), b:", nil},
		{"invented transfer", func(b *bank) { b.apply("b", "d", "k99", 5) },
			[]string{CheckNoneInvented}, "b/k99: no transfer with this key in the history",
			func(r Result) bool { return r.Invented == 1 }},
		{"transfer by an account never opened", func(b *bank) {
			b.st.Accounts = append(b.st.Accounts, "e") // an open whose answer was lost
			b.st.Balances["e"] = initFen
			b.attempt("e", "a", "k1", 5, OK)
			b.apply("e", "a", "k1", 5)
		}, []string{CheckNoneInvented}, "e/k1: payer e was never opened in the history", nil},
		{"unknown transfer stored with another amount", func(b *bank) {
			b.unapply("c", "k3")
			b.apply("c", "a", "k3", 8)
		}, []string{CheckNoneInvented}, "c/k3: stored 8 fen to a, issued 7 fen to a", nil},
		{"failed transfer present", func(b *bank) { b.apply("d", "b", "k7", 20) },
			[]string{CheckFailedAbsent}, "1 of 2 failed transfers present: d/k7",
			func(r Result) bool { return r.Failed == 2 }},
		{"negative balance", func(b *bank) {
			b.attempt("d", "a", "big", 150_000_000, OK, withRev(b.apply("d", "a", "big", 150_000_000)))
		}, []string{CheckNoNegative}, "d: -50,000,011 fen in the ledger", nil},
		{"negative balance in an answer", func(b *bank) {
			b.op(Op{Kind: KindRead, From: "c", Outcome: OK, BalanceFen: -3})
		}, []string{CheckNoNegative}, "c: -3 fen in the answer to op", nil},
		{"members disagree", func(b *bank) { b.st.Members[1].Hash = 0xdef },
			[]string{CheckMembersAgree}, "1 of 3 members: sh-a: hash 0x00000def, 2 others hold 0x00000abc", nil},
		{"member not asked", func(b *bank) { b.st.Members[2].Err = "context deadline exceeded" },
			[]string{CheckMembersAgree}, "sz-a: context deadline exceeded", nil},
		{"no members", func(b *bank) { b.st.Members = nil },
			[]string{CheckMembersAgree}, "no member hashes", nil},
		{"replayed answer names another revision", func(b *bank) {
			b.attempt("a", "b", "k1", 100, OK, withRev(999), asReplayed)
		}, []string{CheckNoneTwice}, "a/k1: ok answers name commit revisions 101 and 999", nil},
		{"two answers created one key", func(b *bank) {
			b.attempt("a", "b", "k1", 100, OK, withRev(101))
		}, []string{CheckNoneTwice}, "a/k1: more than one ok answer says it created it", nil},
		{"key rewritten after its acknowledgement", func(b *bank) {
			t := b.st.Transfers["a/k1"]
			t.Revision = 555
			b.st.Transfers["a/k1"] = t
		}, []string{CheckNoneTwice}, "a/k1: acknowledged at revision 101, stored at revision 555", nil},
		{"opened account missing", func(b *bank) { b.op(Op{Kind: KindOpen, From: "z", Outcome: OK}) },
			[]string{CheckAccountsPresent}, "1 of 5 accounts opened ok missing from the ledger: z", nil},
		{"balance without an account", func(b *bank) { b.st.Balances["ghost"] = 0 },
			[]string{CheckMoneyConserved, CheckReplay}, "ghost: balance of 0 fen without an account", nil},
		{"transfer to no account", func(b *bank) {
			b.attempt("a", "zz", "kz", 5, OK)
			b.st.Transfers["a/kz"] = StoredTransfer{From: "a", To: "zz", AmountFen: 5, Revision: 200}
			b.st.Balances["a"] -= 5
		}, []string{CheckMoneyConserved, CheckReplay}, `a/kz: payee "zz" is not an account`, nil},
		{"invented transfer by no account", func(b *bank) {
			b.st.Transfers["yy/k"] = StoredTransfer{From: "yy", To: "a", AmountFen: 5, Revision: 200}
			b.st.Balances["a"] += 5
		}, []string{CheckMoneyConserved, CheckNoneInvented, CheckReplay}, `yy/k: payer "yy" is not an account`, nil},
		{"unknown settled both ways", func(b *bank) {
			b.attempt("a", "d", "u1", 1, Unknown)
			b.attempt("a", "d", "u2", 2, Unknown)
			b.attempt("a", "d", "u2", 2, Unknown)
			b.apply("a", "d", "u2", 2)
		}, nil, "", func(r Result) bool { return r.UnknownApplied == 3 && r.UnknownNotFound == 3 }},
		{"acknowledged after unknown attempts", func(b *bank) {
			b.attempt("a", "d", "u3", 4, Unknown)
			b.attempt("a", "d", "u3", 4, OK)
			b.apply("a", "d", "u3", 4)
		}, nil, "", func(r Result) bool { return r.Acknowledged == 3 && r.UnknownApplied == 2 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := cleanBank()
			tt.break_(b)
			res := CheckHistory(Header{}, b.ops, b.st)
			var failed []string
			details := ""
			for _, c := range res.Checks {
				if !c.OK {
					failed = append(failed, c.Name)
					details += c.Detail + "\n"
					t.Logf("✗ %s: %s", c.Name, c.Detail)
				}
			}
			if !slices.Equal(failed, tt.fails) {
				t.Errorf("failed %q, want %q", failed, tt.fails)
			}
			if res.Valid != (len(tt.fails) == 0) {
				t.Errorf("valid = %v", res.Valid)
			}
			if !strings.Contains(details, tt.detail) {
				t.Errorf("details %q, want them to contain %q", details, tt.detail)
			}
			if tt.counts != nil && !tt.counts(res) {
				t.Errorf("counts %+v", res)
			}
		})
	}
}

// TestCheckNamesFirstOffenders: a detail names the five smallest offenders,
// sorted, and how many more, whatever the order of the maps.
func TestCheckNamesFirstOffenders(t *testing.T) {
	b := newBank("a", "b")
	for i := range 8 {
		b.attempt("a", "b", fmt.Sprintf("k%d", 8-i), 1, OK)
	}
	for range 5 {
		res := CheckHistory(Header{}, b.ops, b.st)
		want := "8 of 8 acknowledged transfers missing (RPO > 0): a/k1, a/k2, a/k3, a/k4, a/k5 and 3 more"
		if d := res.Checks[2].Detail; d != want {
			t.Fatalf("detail %q, want %q", d, want)
		}
		if res.Lost != 8 {
			t.Fatalf("lost %d", res.Lost)
		}
	}
}

func TestGroup(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 7: "7", 999: "999", 1000: "1,000", -1000: "-1,000", -12: "-12",
		123456: "123,456", 1234567: "1,234,567", -9223372036854775808: "-9,223,372,036,854,775,808"} {
		if got := groupDigits(n); got != want {
			t.Errorf("groupDigits(%d) = %q, want %q", n, got, want)
		}
	}
}

// bigBank is a run of n ops: accounts opened, then transfers between random
// accounts; about 4 % of keys time out once (half of those were applied and
// retried ok as replays, a quarter applied and left unknown), 1 % fail.
func bigBank(accounts, transfers int) ([]Op, FinalState) {
	rng := rand.New(rand.NewPCG(1, 2))
	ops := make([]Op, 0, accounts+transfers+transfers/20)
	st := FinalState{
		Revision: 1, InitialBalanceFen: initFen,
		Balances:  make(map[string]int64, accounts),
		Transfers: make(map[string]StoredTransfer, transfers),
	}
	for i := range 5 {
		st.Members = append(st.Members, MemberHash{DC: fmt.Sprintf("dc-%d", i), Hash: 0x5eed})
	}
	ids := make([]string, accounts)
	for i := range ids {
		ids[i] = fmt.Sprintf("acct%06d", i)
		st.Accounts = append(st.Accounts, ids[i])
		st.Balances[ids[i]] = initFen
		ops = append(ops, Op{Seq: int64(len(ops) + 1), Kind: KindOpen, From: ids[i], Outcome: OK, BalanceFen: initFen})
	}
	var rev int64 = 1
	for n := 0; len(ops) < accounts+transfers; n++ {
		from := ids[rng.IntN(accounts)]
		to := ids[rng.IntN(accounts)]
		fen := 1 + rng.Int64N(1000)
		key := fmt.Sprintf("r1-u%d-%d", n%4096, n)
		op := Op{Seq: int64(len(ops) + 1), Kind: KindTransfer, Key: key, Attempt: 1, From: from, To: to, AmountFen: fen}
		apply := func() int64 {
			rev++
			st.Transfers[from+"/"+key] = StoredTransfer{From: from, To: to, AmountFen: fen, Revision: rev}
			st.Balances[from] -= fen
			st.Balances[to] += fen
			return rev
		}
		switch p := rng.IntN(100); {
		case p < 1:
			op.Outcome, op.Status = Fail, 503
			ops = append(ops, op)
		case p < 3: // timed out, applied, retried: replayed
			r := apply()
			op.Outcome = Unknown
			ops = append(ops, op)
			op.Seq, op.Attempt, op.Outcome, op.Revision, op.Replayed = int64(len(ops)+1), 2, OK, r, true
			ops = append(ops, op)
		case p < 4: // timed out, applied, not retried
			apply()
			op.Outcome = Unknown
			ops = append(ops, op)
		case p < 5: // timed out, not applied
			op.Outcome = Unknown
			ops = append(ops, op)
		default:
			op.Outcome, op.Revision = OK, apply()
			ops = append(ops, op)
		}
	}
	return ops, st
}

func TestBigBankClean(t *testing.T) {
	ops, st := bigBank(1000, 20_000)
	res := CheckHistory(Header{}, ops, st)
	for _, c := range res.Checks {
		if !c.OK {
			t.Errorf("%s: %s", c.Name, c.Detail)
		}
	}
	// Break one balance in a copy: only the replay and the sum see it.
	st.Balances = maps.Clone(st.Balances)
	st.Balances["acct000500"] += 1
	res = CheckHistory(Header{}, ops, st)
	if res.Valid || res.Checks[0].OK || res.Checks[5].OK {
		t.Errorf("edited balance not caught: %+v", res.Checks)
	}
}

// BenchmarkCheck1M checks a history of 1,000,000 ops: 50,000 accounts
// opened and 950,000 transfer attempts.
func BenchmarkCheck1M(b *testing.B) {
	ops, st := bigBank(50_000, 950_000)
	if res := CheckHistory(Header{}, ops, st); !res.Valid {
		b.Fatalf("generated run is not valid: %+v", res.Checks)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		CheckHistory(Header{}, ops, st)
	}
}

// The hall's operations are checked with the load's and counted apart; a
// lost audience transfer fails the check and is named as the audience's.
func TestCheckSources(t *testing.T) {
	b := newBank("a", "b")
	aud := func(op *Op) { op.Source = SourceAudience }
	b.op(Op{Kind: KindOpen, From: "p1", Outcome: OK, BalanceFen: initFen, Source: SourceAudience})
	b.st.Accounts = append(b.st.Accounts, "p1")
	b.st.Balances["p1"] = initFen
	b.attempt("a", "b", "k1", 100, OK, withRev(b.apply("a", "b", "k1", 100)))
	// The hall pays the load's account, and the load pays the hall's.
	b.attempt("p1", "a", "phone-1", 5, OK, aud, withRev(b.apply("p1", "a", "phone-1", 5)))
	b.attempt("b", "p1", "k2", 7, OK, withRev(b.apply("b", "p1", "k2", 7)))
	b.attempt("p1", "b", "phone-2", 9, Unknown, aud)
	b.attempt("p1", "b", "phone-3", 1_000_000_000, Fail, aud, withStatus(409))

	res := CheckHistory(Header{Format: FormatV1}, b.ops, b.st)
	if !res.Valid {
		t.Fatalf("not valid: %+v", res.Checks)
	}
	want := []Tally{{Source: SourceAudience, Opened: 1, Acknowledged: 1, Failed: 1, UnknownNotFound: 1}}
	if !slices.Equal(res.Sources, want) {
		t.Errorf("sources %+v, want %+v", res.Sources, want)
	}
	if res.Acknowledged != 3 || res.Failed != 1 || res.UnknownNotFound != 1 {
		t.Errorf("counts of every source: %+v", res)
	}

	// A transfer the hall was told is done, absent from the ledger.
	b.unapply("p1", "phone-1")
	res = CheckHistory(Header{Format: FormatV1}, b.ops, b.st)
	if res.Valid || res.Lost != 1 || res.Sources[0].Lost != 1 {
		t.Fatalf("valid %v, lost %d, audience lost %+v; want the audience's transfer lost", res.Valid, res.Lost, res.Sources)
	}
	if d := res.Checks[2].Detail; !strings.Contains(d, "p1/phone-1 (audience)") {
		t.Errorf("%s: %q does not name p1/phone-1 (audience)", res.Checks[2].Name, d)
	}
}
