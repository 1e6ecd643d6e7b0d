package verify

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Names of the checks, in the order [CheckHistory] reports them. They are
// stable: the drill, its expectations and the reports refer to them.
const (
	CheckMoneyConserved  = "money conserved"
	CheckNoNegative      = "no negative balance"
	CheckAckedPresent    = "every ok transfer present"
	CheckNoneTwice       = "none applied twice"
	CheckNoneInvented    = "none present that was never issued"
	CheckReplay          = "replay equals final balances"
	CheckMembersAgree    = "all members agree"
	CheckFailedAbsent    = "failed transfers absent"
	CheckAccountsPresent = "every opened account present"
)

// maxShown bounds the offenders a failed check names.
const maxShown = 5

// CheckHistory is Jepsen's bank test: it checks a history of client
// operations against the ledger's final state and returns one [Check] per
// invariant, in the order of the Check… name constants, and the counts of
// transfers by what the client was told and what the ledger holds. h is the
// history's header; no check depends on it today.
//
// (It cannot be called Check: that name is the type of its results.)
//
// Transfers are identified by payer and idempotency key ("from/key", the
// key of [FinalState.Transfers]). Every attempt of a key counts together:
//
//   - a key with any ok attempt is acknowledged: it must be in the ledger,
//     with the payee and amount the ok attempt asked for (RPO = 0);
//   - a key whose attempts were all fail is a definite failure: each answer
//     promised that nothing was applied, so it must be absent;
//   - any other key (unknown attempts, maybe with fail ones: a fail answer
//     speaks for its own attempt only, not for an earlier one that timed
//     out) is settled from the ledger, counted in UnknownApplied or
//     UnknownNotFound, and is never a violation by itself.
//
// CheckHistory runs in time linear in len(ops) plus the size of st: one
// pass over the ops, one over the distinct keys (each looked up in the
// ledger's transfers), a few over the accounts and balances, and one over
// the stored transfers only when some key was never issued. Nothing is
// sorted but the offenders a detail names, at most [maxShown] per check,
// kept smallest first. About 1 s for a million ops on two cores
// (BenchmarkCheck1M).
func CheckHistory(h Header, ops []Op, st FinalState) Result {
	c := checker{st: st}
	c.scanAccounts()
	c.scanHistory(ops)
	c.settleKeys(ops)
	c.scanTransfers()
	res := c.result
	if len(c.tallies) > 0 {
		res.Sources = c.tallies
	}
	res.Checks = []Check{
		c.moneyConserved(),
		c.noNegative(),
		c.ackedPresent(),
		c.noneTwice(),
		c.noneInvented(),
		c.replay(),
		membersAgree(st),
		c.failedAbsent(),
		c.accountsPresent(),
	}
	res.Valid = true
	for _, ch := range res.Checks {
		res.Valid = res.Valid && ch.OK
	}
	return res
}

// xferID names a transfer: the paying account and its idempotency key.
type xferID struct{ from, key string }

// splitXferKey splits a key of FinalState.Transfers, "from/key", at its
// first slash: account ids hold no slash, idempotency keys may.
func splitXferKey(k string) (xferID, bool) {
	i := strings.IndexByte(k, '/')
	if i < 0 {
		return xferID{}, false
	}
	return xferID{k[:i], k[i+1:]}, true
}

// Flags of an issued key.
const (
	keyOK uint16 = 1 << iota
	keyFail
	keyUnknown
	keyRevConflict  // two ok answers named different commit revisions
	keyParamsDiffer // attempts disagree on payee or amount
	keyStored       // the ledger holds the key
	keyStoredAsOK   // ... with the payee and amount of its ok attempt
	keyStoredRevOff // ... at another revision than its ok answers named
	keyOKOther      // its first ok attempt asked for another payee or amount than its first attempt
)

// issued is what the history says of one transfer key, over all attempts.
//
// It is kept small (40 bytes), for a history holds a million of them: what
// only odd keys need lives in side maps of the checker.
type issued struct {
	to     string // payee and amount of the first attempt
	amount int64
	rev    int64  // commit revision named by the first ok answer that had one
	first  int32  // index in ops of its first attempt
	fresh  uint16 // ok answers that created it (not replayed, revision known), up to 2
	flags  uint16
}

type param struct {
	to     string
	amount int64
}

// account is what the state and the history say of one account id.
type account struct {
	id       string
	replay   int64 // its balance replayed from the stored transfers
	inState  bool  // in FinalState.Accounts
	opened   bool  // opened ok in the history
	overflow bool  // the replay overflowed int64
}

type checker struct {
	st     FinalState
	result Result

	keys map[xferID]int32   // transfer key → index in recs
	recs []issued           // in order of first attempt
	alts map[xferID][]param // every attempt's payee and amount, for the rare keys whose attempts disagree

	okOther  map[int32]param // index in recs → the first ok attempt's payee and amount, when keyOKOther
	otherRev map[int32]int64 // index in recs → a second revision named by an ok answer, when keyRevConflict

	acctIdx  map[string]int // account id → index in accts
	accts    []account      // those of the state first, in its order
	nInState int            // distinct accounts in the state
	nOpened  int            // distinct accounts opened ok in the history

	negativeSeen offenders // negative balances in ok answers
	replayed     int       // ok answers marked replayed

	matched int // stored transfers whose key was issued

	tallies []Tally // by named source, in order of first appearance

	// Findings of the passes over the state.
	lost, storedMismatch, twice, invented, replayBad, failedPresent offenders
}

// scanHistory folds the ops into one record per transfer key and the set of
// opened accounts.
func (c *checker) scanHistory(ops []Op) {
	c.keys = make(map[xferID]int32, len(c.st.Transfers)+len(c.st.Transfers)/8+16)
	c.recs = make([]issued, 0, len(c.st.Transfers)+len(c.st.Transfers)/8+16)
	for i := range ops {
		op := &ops[i]
		if op.Outcome == OK && op.BalanceFen < 0 && c.negativeSeen.note(op.From) {
			c.negativeSeen.describe(op.From, fmt.Sprintf("%s: %s fen in the answer to op %d", op.From, groupDigits(op.BalanceFen), op.Seq))
		}
		switch op.Kind {
		case KindOpen:
			if op.Outcome == OK && op.From != "" {
				if a := c.account(op.From, true); !a.opened {
					a.opened = true
					c.nOpened++
					if t := c.tally(op.Source); t != nil {
						t.Opened++
					}
				}
			}
		case KindTransfer:
			if op.Key == "" || op.From == "" || strings.IndexByte(op.From, '/') >= 0 {
				continue // not a key the ledger can hold: account ids have no slash
			}
			id := xferID{op.From, op.Key}
			idx, ok := c.keys[id]
			if !ok {
				idx = int32(len(c.recs))
				c.keys[id] = idx
				c.recs = append(c.recs, issued{first: int32(i), to: op.To, amount: op.AmountFen})
			}
			r := &c.recs[idx]
			if op.To != r.to || op.AmountFen != r.amount {
				if r.flags&keyParamsDiffer == 0 {
					r.flags |= keyParamsDiffer
					if c.alts == nil {
						c.alts = map[xferID][]param{}
					}
				}
				c.alts[id] = append(c.alts[id], param{op.To, op.AmountFen})
			}
			switch op.Outcome {
			case OK:
				if r.flags&keyOK == 0 && (op.To != r.to || op.AmountFen != r.amount) {
					r.flags |= keyOKOther
					if c.okOther == nil {
						c.okOther = map[int32]param{}
					}
					c.okOther[idx] = param{op.To, op.AmountFen}
				}
				r.flags |= keyOK
				if op.Replayed {
					c.replayed++
				}
				if op.Revision != 0 {
					switch {
					case r.rev == 0:
						r.rev = op.Revision
					case r.rev != op.Revision:
						if r.flags&keyRevConflict == 0 {
							r.flags |= keyRevConflict
							if c.otherRev == nil {
								c.otherRev = map[int32]int64{}
							}
							c.otherRev[idx] = op.Revision
						}
					}
					if !op.Replayed && r.fresh < 2 {
						r.fresh++
					}
				}
			case Fail:
				r.flags |= keyFail
			default:
				r.flags |= keyUnknown
			}
		}
	}
}

// scanAccounts sets every account of the state to its initial balance, the
// start of the replay.
func (c *checker) scanAccounts() {
	c.acctIdx = make(map[string]int, len(c.st.Accounts)+16)
	c.accts = make([]account, 0, len(c.st.Accounts)+16)
	for _, id := range c.st.Accounts {
		if a := c.account(id, true); !a.inState {
			a.inState, a.replay = true, c.st.InitialBalanceFen
			c.nInState++
		}
	}
}

// account returns the record of account id, adding it when add is set;
// nil when it has none.
func (c *checker) account(id string, add bool) *account {
	if i, ok := c.acctIdx[id]; ok {
		return &c.accts[i]
	}
	if !add {
		return nil
	}
	c.acctIdx[id] = len(c.accts)
	c.accts = append(c.accts, account{id: id})
	return &c.accts[len(c.accts)-1]
}

// inState returns the record of id if the state lists it as an account.
func (c *checker) inState(id string) *account {
	if a := c.account(id, false); a != nil && a.inState {
		return a
	}
	return nil
}

// scanTransfers goes over the stored transfers when some were not matched
// by an issued key in settleKeys (which replayed the matched ones): it
// names them and replays them.
func (c *checker) scanTransfers() {
	if c.matched == len(c.st.Transfers) {
		return
	}
	for k, t := range c.st.Transfers {
		id, ok := splitXferKey(k)
		if ok {
			if _, found := c.keys[id]; found {
				continue // matched, checked and replayed in settleKeys
			}
		}
		from := c.account(t.From, false)
		if c.invented.note(k) {
			c.invented.describe(k, k+": "+c.neverIssued(id, nil, t, from))
		}
		if to := c.account(t.To, false); !c.replayTransfer(t, from, to) && c.replayBad.note(k) {
			c.replayBad.describe(k, k+": "+c.notAccounts(t, from, to))
		}
	}
	c.result.Invented = c.invented.n
}

// neverIssued says why a stored transfer was not issued by the history, or
// "" when it was: a transfer invocation of the same payer and key, asking
// for the same payee and amount, by an account the history opened.
// from is the record of t.From, nil when there is none.
func (c *checker) neverIssued(id xferID, r *issued, t StoredTransfer, from *account) string {
	switch {
	case id.key == "":
		return "not a from/key transfer key"
	case r == nil:
		return "no transfer with this key in the history"
	case t.From != id.from:
		return fmt.Sprintf("stored as paid by %s", t.From)
	}
	if from == nil || !from.opened {
		return fmt.Sprintf("payer %s was never opened in the history", id.from)
	}
	if t.To == r.to && t.AmountFen == r.amount {
		return ""
	}
	if r.flags&keyParamsDiffer != 0 && slices.Contains(c.alts[id], param{t.To, t.AmountFen}) {
		return ""
	}
	return fmt.Sprintf("stored %s fen to %s, issued %s fen to %s", groupDigits(t.AmountFen), t.To, groupDigits(r.amount), r.to)
}

// replayTransfer applies a stored transfer to the replayed balances of its
// payer and payee (their records, nil when they have none). It reports
// false, and applies nothing, when either is not an account of the state.
func (c *checker) replayTransfer(t StoredTransfer, from, to *account) bool {
	if from == nil || !from.inState || to == nil || !to.inState {
		return false
	}
	var ok1, ok2 bool
	from.replay, ok1 = addFen(from.replay, -t.AmountFen)
	to.replay, ok2 = addFen(to.replay, t.AmountFen) // to may be from
	if !ok1 || !ok2 || t.AmountFen == -1<<63 {
		from.overflow, to.overflow = true, true
	}
	return true
}

// notAccounts says which of a transfer's payer and payee is not an account.
func (c *checker) notAccounts(t StoredTransfer, from, to *account) string {
	if from == nil || !from.inState {
		return fmt.Sprintf("payer %q is not an account", t.From)
	}
	return fmt.Sprintf("payee %q is not an account", t.To)
}

// settleKeys goes once over the issued keys, in the order of the history:
// it looks each up in the ledger, checks the stored transfer against what
// was issued, and counts the keys by what the client was told and what the
// ledger holds. Joining from this side reads the history in order and
// builds no string unless there is something to report.
func (c *checker) settleKeys(ops []Op) {
	res := &c.result
	var buf []byte
	for i := range c.recs {
		r := &c.recs[i]
		op := &ops[r.first]
		buf = append(append(append(buf[:0], op.From...), '/'), op.Key...)
		if t, ok := c.st.Transfers[string(buf)]; ok {
			c.matched++
			r.flags |= keyStored
			if ok := c.okParam(int32(i)); r.flags&keyOK != 0 && t.To == ok.to && t.AmountFen == ok.amount {
				r.flags |= keyStoredAsOK
			}
			// A key is created once; a stored revision other than the
			// one its ok answers named means it was written again.
			if r.rev != 0 && t.Revision != 0 && t.Revision != r.rev {
				r.flags |= keyStoredRevOff
			}
			from, to := c.account(t.From, false), c.account(t.To, false)
			if why := c.neverIssued(xferID{op.From, op.Key}, r, t, from); why != "" {
				if k := string(buf); c.invented.note(k) {
					c.invented.describe(k, k+": "+why)
				}
			}
			if !c.replayTransfer(t, from, to) {
				k := string(buf)
				if c.replayBad.note(k) {
					c.replayBad.describe(k, k+": "+c.notAccounts(t, from, to))
				}
			}
		}
		isStored := r.flags&keyStored != 0
		t := c.tally(op.Source)
		if t == nil {
			t = &Tally{} // the load's: counted in res only
		}
		switch {
		case r.flags&keyOK != 0:
			res.Acknowledged++
			t.Acknowledged++
			k := "" // the key's name, built only to report it
			if !isStored || r.flags&(keyStoredAsOK|keyRevConflict|keyStoredRevOff) != keyStoredAsOK || r.fresh > 1 {
				k = string(buf)
			}
			switch {
			case !isStored:
				res.Lost++
				t.Lost++
				if c.lost.note(k) {
					c.lost.describe(k, k+sourceNote(op.Source))
				}
			case r.flags&keyStoredAsOK == 0:
				if c.storedMismatch.note(k) {
					t, ok := c.st.Transfers[k], c.okParam(int32(i))
					c.storedMismatch.describe(k, fmt.Sprintf("%s: acknowledged %s fen to %s, stored %s fen to %s",
						k, groupDigits(ok.amount), ok.to, groupDigits(t.AmountFen), t.To))
				}
			}
			if r.fresh > 1 || r.flags&(keyRevConflict|keyStoredRevOff) != 0 {
				if c.twice.note(k) {
					c.twice.describe(k, k+sourceNote(op.Source)+": "+c.twiceWhy(k, int32(i)))
				}
			}
		case r.flags&keyUnknown != 0:
			if isStored {
				res.UnknownApplied++
				t.UnknownApplied++
			} else {
				res.UnknownNotFound++
				t.UnknownNotFound++
			}
		default: // every attempt failed
			res.Failed++
			t.Failed++
			if isStored {
				if k := string(buf); c.failedPresent.note(k) {
					c.failedPresent.describe(k, k+sourceNote(op.Source)+": every attempt failed, yet it is stored")
				}
			}
		}
	}
	res.Invented = c.invented.n
}

// tally returns the counts of a named source, adding them on first use;
// nil for the load's (source "").
func (c *checker) tally(source string) *Tally {
	if source == "" {
		return nil
	}
	for i := range c.tallies {
		if c.tallies[i].Source == source {
			return &c.tallies[i]
		}
	}
	c.tallies = append(c.tallies, Tally{Source: source})
	return &c.tallies[len(c.tallies)-1]
}

// sourceNote names a named source after an offender, " (audience)".
func sourceNote(source string) string {
	if source == "" {
		return ""
	}
	return " (" + source + ")"
}

// okParam is the payee and amount the first ok attempt of recs[i] asked for.
func (c *checker) okParam(i int32) param {
	if r := &c.recs[i]; r.flags&keyOKOther == 0 {
		return param{r.to, r.amount}
	}
	return c.okOther[i]
}

// twiceWhy says why key k looks committed more than once.
func (c *checker) twiceWhy(k string, i int32) string {
	r := &c.recs[i]
	switch {
	case r.fresh > 1:
		return "more than one ok answer says it created it (none replayed)"
	case r.flags&keyRevConflict != 0:
		return fmt.Sprintf("ok answers name commit revisions %d and %d", r.rev, c.otherRev[i])
	default:
		return fmt.Sprintf("acknowledged at revision %d, stored at revision %d", r.rev, c.st.Transfers[k].Revision)
	}
}

func (c *checker) moneyConserved() Check {
	ch := Check{Name: CheckMoneyConserved}
	st := c.st
	var bad offenders
	if st.InitialBalanceFen <= 0 {
		ch.Detail = fmt.Sprintf("the state's initial balance is %d fen: not a ledger's final state", st.InitialBalanceFen)
		return ch
	}
	var sum int64
	sumOK := true
	for id, fen := range st.Balances {
		var ok bool
		if sum, ok = addFen(sum, fen); !ok {
			sumOK = false
		}
		if c.inState(id) == nil && bad.note(id) {
			bad.describe(id, fmt.Sprintf("%s: balance of %s fen without an account", id, groupDigits(fen)))
		}
	}
	for i := range c.accts {
		a := &c.accts[i]
		if !a.inState {
			continue
		}
		if _, ok := st.Balances[a.id]; !ok && bad.note(a.id) {
			bad.describe(a.id, a.id+": account without a balance")
		}
	}
	n := int64(c.nInState)
	want, wantOK := mulFen(n, st.InitialBalanceFen)
	switch {
	case !sumOK:
		ch.Detail = "the balances overflow int64 when summed"
	case !wantOK:
		ch.Detail = fmt.Sprintf("%s accounts × %s fen overflows int64", groupDigits(n), groupDigits(st.InitialBalanceFen))
	case sum != want:
		ch.Detail = fmt.Sprintf("balances sum to %s fen, want %s (%s accounts × %s): %s fen %s",
			groupDigits(sum), groupDigits(want), groupDigits(n), groupDigits(st.InitialBalanceFen), groupDigits(absFen(sum-want)), moreOrLess(sum-want))
	case bad.n == 0:
		ch.OK = true
		ch.Detail = fmt.Sprintf("%s hold %s fen = %s × %s", plural(int(n), "account", "accounts"), groupDigits(sum), groupDigits(n), groupDigits(st.InitialBalanceFen))
		return ch
	}
	if bad.n > 0 {
		if ch.Detail != "" {
			ch.Detail += "; "
		}
		ch.Detail += bad.summary("difference between balances and accounts", "differences between balances and accounts")
	}
	return ch
}

func (c *checker) noNegative() Check {
	ch := Check{Name: CheckNoNegative}
	bad := c.negativeSeen
	var lowest int64
	first := true
	for id, fen := range c.st.Balances {
		if first || fen < lowest {
			lowest, first = fen, false
		}
		if fen < 0 && bad.note(id) {
			bad.describe(id, fmt.Sprintf("%s: %s fen in the ledger", id, groupDigits(fen)))
		}
	}
	if bad.n > 0 {
		ch.Detail = bad.summary("negative balance", "negative balances")
		return ch
	}
	ch.OK = true
	ch.Detail = fmt.Sprintf("%s, lowest %s fen; none negative in any ok answer", plural(len(c.st.Balances), "balance", "balances"), groupDigits(lowest))
	return ch
}

func (c *checker) ackedPresent() Check {
	ch := Check{Name: CheckAckedPresent}
	res := c.result
	if res.Lost == 0 && c.storedMismatch.n == 0 {
		ch.OK = true
		ch.Detail = plural(res.Acknowledged, "acknowledged transfer", "acknowledged transfers") + ", all present"
		return ch
	}
	var parts []string
	if res.Lost > 0 {
		parts = append(parts, fmt.Sprintf("%s of %s acknowledged transfers missing (RPO > 0): %s",
			groupDigits(int64(res.Lost)), groupDigits(int64(res.Acknowledged)), c.lost.list()))
	}
	if c.storedMismatch.n > 0 {
		parts = append(parts, c.storedMismatch.summary("acknowledged transfer stored with another payee or amount", "acknowledged transfers stored with another payee or amount"))
	}
	ch.Detail = strings.Join(parts, "; ")
	return ch
}

// noneTwice reports keys that look committed more than once.
//
// What it can see: the ledger stores a transfer under one key, so a key is
// in the state at most once by construction; what could still break "at
// most once" is a key written again (deleted and re-created, or
// overwritten), or a ledger that moves money twice for one key. The first
// shows as ok answers for the key naming different commit revisions (a
// replayed answer returns the revision of the first commit), as more than
// one answer that created the key (ok, not replayed, revision known), or as
// a stored revision other than the acknowledged one. The second shows in
// the replay check: balances moved twice differ from initial balances plus
// the stored transfers.
//
// What it cannot see: a second commit no client heard of (every answer
// lost) that left the key at the same revision, or ok answers without a
// revision (a body that did not decode); and nothing here can tell which
// of two conflicting revisions moved the money.
func (c *checker) noneTwice() Check {
	ch := Check{Name: CheckNoneTwice}
	if c.twice.n > 0 {
		ch.Detail = c.twice.summary("transfer committed twice", "transfers committed twice")
		return ch
	}
	ch.OK = true
	ch.Detail = fmt.Sprintf("%s, each key once; %s the first commit",
		plural(len(c.st.Transfers), "stored transfer", "stored transfers"), plural(c.replayed, "replayed answer names", "replayed answers name"))
	return ch
}

func (c *checker) noneInvented() Check {
	ch := Check{Name: CheckNoneInvented}
	if c.invented.n > 0 {
		ch.Detail = c.invented.summary("stored transfer never issued", "stored transfers never issued")
		return ch
	}
	ch.OK = true
	ch.Detail = plural(len(c.st.Transfers), "stored transfer", "stored transfers") + ", all issued in the history"
	return ch
}

func (c *checker) replay() Check {
	ch := Check{Name: CheckReplay}
	bad := c.replayBad
	for i := range c.accts {
		a := &c.accts[i]
		if !a.inState {
			continue
		}
		id, want := a.id, a.replay
		got, ok := c.st.Balances[id]
		switch {
		case a.overflow:
			if bad.note(id) {
				bad.describe(id, id+": replay overflows int64")
			}
		case !ok:
			if bad.note(id) {
				bad.describe(id, fmt.Sprintf("%s: replay %s fen, no balance in the ledger", id, groupDigits(want)))
			}
		case got != want:
			if bad.note(id) {
				bad.describe(id, fmt.Sprintf("%s: replay %s fen, ledger %s (%s%s)", id, groupDigits(want), groupDigits(got), signOf(got-want), groupDigits(absFen(got-want))))
			}
		}
	}
	for id, got := range c.st.Balances {
		if c.inState(id) == nil && bad.note(id) {
			bad.describe(id, fmt.Sprintf("%s: ledger %s fen for no account", id, groupDigits(got)))
		}
	}
	if bad.n > 0 {
		ch.Detail = bad.summary("replay mismatch", "replay mismatches")
		return ch
	}
	ch.OK = true
	ch.Detail = fmt.Sprintf("%s: initial balances plus %s equal the ledger",
		plural(c.nInState, "account", "accounts"), plural(len(c.st.Transfers), "stored transfer", "stored transfers"))
	return ch
}

func membersAgree(st FinalState) Check {
	ch := Check{Name: CheckMembersAgree}
	if len(st.Members) == 0 {
		ch.Detail = "no member hashes in the state"
		return ch
	}
	// The hash most members hold (the lowest on a tie) is the reference;
	// the members that hold another, or could not be asked, are named.
	votes := map[uint32]int{}
	for _, m := range st.Members {
		if m.Err == "" {
			votes[m.Hash]++
		}
	}
	var ref uint32
	best := 0
	for h, n := range votes {
		if n > best || n == best && h < ref {
			ref, best = h, n
		}
	}
	var bad offenders
	for _, m := range st.Members {
		switch {
		case m.Err != "":
			if bad.note(m.DC) {
				bad.describe(m.DC, fmt.Sprintf("%s: %s", m.DC, m.Err))
			}
		case m.Hash != ref:
			if bad.note(m.DC) {
				bad.describe(m.DC, fmt.Sprintf("%s: hash 0x%08x, %d others hold 0x%08x", m.DC, m.Hash, best, ref))
			}
		}
	}
	if bad.n > 0 {
		ch.Detail = fmt.Sprintf("%d of %d members: %s", bad.n, len(st.Members), bad.list())
		return ch
	}
	ch.OK = true
	ch.Detail = fmt.Sprintf("%d members agree, hash 0x%08x at revision %d", len(st.Members), ref, st.Revision)
	return ch
}

func (c *checker) failedAbsent() Check {
	ch := Check{Name: CheckFailedAbsent}
	if c.failedPresent.n > 0 {
		ch.Detail = fmt.Sprintf("%s of %s failed transfers present: %s",
			groupDigits(int64(c.failedPresent.n)), groupDigits(int64(c.result.Failed)), c.failedPresent.list())
		return ch
	}
	ch.OK = true
	ch.Detail = plural(c.result.Failed, "failed transfer", "failed transfers") + ", none present"
	return ch
}

func (c *checker) accountsPresent() Check {
	ch := Check{Name: CheckAccountsPresent}
	var bad offenders
	for i := range c.accts {
		if a := &c.accts[i]; a.opened && !a.inState && bad.note(a.id) {
			bad.describe(a.id, a.id)
		}
	}
	if bad.n > 0 {
		ch.Detail = fmt.Sprintf("%s of %s accounts opened ok missing from the ledger: %s",
			groupDigits(int64(bad.n)), groupDigits(int64(c.nOpened)), bad.list())
		return ch
	}
	ch.OK = true
	ch.Detail = fmt.Sprintf("%s opened ok, all present; %s in the ledger",
		plural(c.nOpened, "account", "accounts"), groupDigits(int64(c.nInState)))
	return ch
}

// offenders counts what breaks a check and keeps the maxShown with the
// smallest keys, sorted, so that details are the same from run to run
// whatever the order of maps. Use: if o.note(key) { o.describe(key, text) }
// — the text is built only when it will be kept.
type offenders struct {
	n    int
	keys []string
	text []string
}

// note counts an offender and reports whether it is among the kept ones so
// far, so that describe should be called.
func (o *offenders) note(key string) bool {
	o.n++
	return len(o.keys) < maxShown || key < o.keys[len(o.keys)-1]
}

// describe keeps key with its text, dropping the largest kept key when
// more than maxShown are kept.
func (o *offenders) describe(key, text string) {
	i, _ := slices.BinarySearch(o.keys, key)
	o.keys = slices.Insert(o.keys, i, key)
	o.text = slices.Insert(o.text, i, text)
	if len(o.keys) > maxShown {
		o.keys, o.text = o.keys[:maxShown], o.text[:maxShown]
	}
}

// list is the kept offenders' texts, and how many more there are.
func (o *offenders) list() string {
	s := strings.Join(o.text, ", ")
	if more := o.n - len(o.text); more > 0 {
		s += fmt.Sprintf(" and %s more", groupDigits(int64(more)))
	}
	return s
}

// summary is "N things: first, second, … and M more", with one or many
// the name of the things.
func (o *offenders) summary(one, many string) string {
	what := many
	if o.n == 1 {
		what = one
	}
	return fmt.Sprintf("%s %s: %s", groupDigits(int64(o.n)), what, o.list())
}

// group formats n with thousands separators: 1234567 → "1,234,567".
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	sign := ""
	if s[0] == '-' {
		sign, s = "-", s[1:]
	}
	var b strings.Builder
	b.WriteString(sign)
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// plural is "1 thing" or "n things", n with thousands separators.
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return groupDigits(int64(n)) + " " + many
}

// addFen adds two amounts and reports whether the sum fits in an int64.
func addFen(a, b int64) (int64, bool) {
	s := a + b
	return s, (b >= 0) == (s >= a)
}

// mulFen multiplies a count by an amount and reports whether it fits.
func mulFen(n, fen int64) (int64, bool) {
	if n == 0 || fen == 0 {
		return 0, true
	}
	p := n * fen
	return p, p/n == fen && !(n == -1 && fen == -1<<63)
}

func absFen(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

func signOf(n int64) string {
	if n < 0 {
		return "-"
	}
	return "+"
}

func moreOrLess(diff int64) string {
	if diff > 0 {
		return "too many"
	}
	return "missing"
}
