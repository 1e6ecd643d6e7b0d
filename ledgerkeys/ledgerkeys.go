// Package ledgerkeys is the key layout of the transfer ledger in etcd: the
// one definition that the ledger (demoapp), its checker (verify) and the
// drill that clears it (drill) share. It needs no privileges.
//
//	acct/ID        the account record (JSON)
//	bal/ID         the balance in fen, decimal
//	xfer/FROM/KEY  a committed transfer (JSON); account ids hold no slash,
//	               idempotency keys may
//	reset          when the ledger was last cleared (RFC 3339)
package ledgerkeys

// Prefixes of the key spaces.
const (
	Accounts  = "acct/"
	Balances  = "bal/"
	Transfers = "xfer/"
)

// Reset is the key a reset writes after clearing the key spaces: the
// compaction that follows must be at a revision past the deletions for
// their tombstones to go (etcd keeps those at the compacted revision).
const Reset = "reset"

// All lists every key space of the ledger, as a reset clears them.
var All = []string{Accounts, Balances, Transfers}

// Account is the key of an account's record.
func Account(id string) string { return Accounts + id }

// Balance is the key of an account's balance.
func Balance(id string) string { return Balances + id }

// Transfer is the key of a transfer: idempotency keys are scoped to the
// paying account.
func Transfer(from, key string) string { return Transfers + from + "/" + key }
