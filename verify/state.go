package verify

import "time"

// FinalState is the ledger as read after a drill, straight from etcd, once
// the faults are healed and the members have caught up. It is saved as
// state.json beside the history so that a drill can be re-verified offline.
type FinalState struct {
	// Revision is the etcd revision all the reads below were made at.
	Revision int64 `json:"revision"`
	// InitialBalanceFen is what every account held when it was opened.
	InitialBalanceFen int64 `json:"initial_balance_fen"`
	// Accounts are the ids of every opened account (acct/<id>).
	Accounts []string `json:"accounts"`
	// Balances maps account id to balance in fen (bal/<id>).
	Balances map[string]int64 `json:"balances"`
	// Transfers maps "from/key" to the transfer stored under
	// xfer/<from>/<key>.
	Transfers map[string]StoredTransfer `json:"transfers"`
	// Members is each ledger member's hash of the whole key space at
	// Revision: they must all agree.
	Members []MemberHash `json:"members"`
}

// StoredTransfer is a transfer as the ledger holds it.
type StoredTransfer struct {
	From        string `json:"from"`
	To          string `json:"to"`
	AmountFen   int64  `json:"amount_fen"`
	Revision    int64  `json:"revision"` // ModRevision of its xfer key
	CommittedBy string `json:"committed_by,omitempty"`
}

// MemberHash is one member's hash of the key space (etcd HashKV) at the
// final state's revision.
type MemberHash struct {
	DC   string `json:"dc"`
	Hash uint32 `json:"hash"`
	// Err says why the member could not be asked; a member that cannot
	// be asked fails the agreement check.
	Err string `json:"error,omitempty"`
}

// FaultWindow is a fault as the drill applied it, on the history's clock.
type FaultWindow struct {
	ID   string `json:"id"`
	Desc string `json:"desc"` // e.g. "isolate city hangzhou"
	Kind string `json:"kind"` // faults.Kind
	// DCs the fault acts on, and the cities all of whose DCs it acts on
	// (the "cut city" for per-user outage splits).
	DCs    []string `json:"dcs"`
	Cities []string `json:"cities,omitempty"`
	// Start is when the fault was in force; End when it was healed, 0 if
	// it was still in force when the history ended.
	Start time.Duration `json:"start_ns"`
	End   time.Duration `json:"end_ns,omitempty"`
}

// Check is the outcome of one invariant.
type Check struct {
	Name string `json:"name"` // e.g. "money conserved"
	OK   bool   `json:"ok"`
	// Detail says what was found: counts when OK, the first offending
	// accounts or keys when not.
	Detail string `json:"detail"`
}

// Result is the outcome of checking a history against a final state.
type Result struct {
	Valid  bool    `json:"valid"` // every check OK
	Checks []Check `json:"checks"`
	// Counts of transfers by what the client was told and what the
	// ledger holds.
	Acknowledged    int `json:"acknowledged"`      // ok transfers (distinct keys)
	Lost            int `json:"lost"`              // acknowledged but absent: RPO
	Failed          int `json:"failed"`            // definite failures (absent, as they must be)
	UnknownApplied  int `json:"unknown_applied"`   // unknown to the client, present in the ledger
	UnknownNotFound int `json:"unknown_not_found"` // unknown to the client, absent
	Invented        int `json:"invented"`          // present but never issued
	// Sources counts the same apart for each named [Op.Source] (the
	// load's, Source "", is not listed), in order of first appearance.
	Sources []Tally `json:"sources,omitempty"`
}

// Tally is what one source of operations opened and transferred, and what
// the ledger holds of it.
type Tally struct {
	Source          string `json:"source"`
	Opened          int    `json:"opened"` // accounts opened ok
	Acknowledged    int    `json:"acknowledged"`
	Lost            int    `json:"lost"`
	Failed          int    `json:"failed"`
	UnknownApplied  int    `json:"unknown_applied"`
	UnknownNotFound int    `json:"unknown_not_found"`
}
