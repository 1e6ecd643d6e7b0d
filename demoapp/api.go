package demoapp

// The HTTP JSON API. A node serves it on its WAN address; the gateway serves
// the same paths to users and forwards them to the user's serving DC.
//
//	POST /api/accounts                        open an account (no body)
//	GET  /api/accounts/{id}                   read it      (Authorization: Bearer TOKEN)
//	POST /api/accounts/{id}/transfers         transfer     (Authorization: Bearer TOKEN, body TransferRequest)
//
// Errors are an [ErrorResponse] with the HTTP status: 400 bad input (Field
// names the field), 401 missing token, 403 wrong token, 404 unknown account,
// 409 insufficient funds or an idempotency key reused for another transfer,
// 503 the ledger has no quorum here (retry elsewhere; nothing was applied
// unless Unknown is true).

// InitialBalanceFen is every new account's balance: ¥1,000,000.
const InitialBalanceFen int64 = 100_000_000

// Serving states shown to users.
const (
	StateServing   = "serving"   // served by the home DC
	StateSwitching = "switching" // the home DC failed; looking for another
	StateSwitched  = "switched"  // served by a DC in another city
)

// Account is an account as users see it.
type Account struct {
	ID         string `json:"id"`
	Token      string `json:"token,omitempty"` // only when opened
	Name       string `json:"name"`
	HomeDC     string `json:"home_dc"`
	HomeCity   string `json:"home_city"`
	BalanceFen int64  `json:"balance_fen"`
	// ServedBy is the DC that answered; ServedCity its city.
	ServedBy   string `json:"served_by"`
	ServedCity string `json:"served_city"`
	// State is set by the gateway: serving, switching or switched.
	State string `json:"state,omitempty"`
}

// TransferRequest moves AmountFen from the caller's account to To. Key is the
// idempotency key chosen by the client: the same key twice moves money once
// and returns the first transfer.
type TransferRequest struct {
	To        string `json:"to"`
	AmountFen int64  `json:"amount_fen"`
	Key       string `json:"key"`
}

// Transfer is a committed transfer.
type Transfer struct {
	Key         string `json:"key"`
	From        string `json:"from"`
	To          string `json:"to"`
	AmountFen   int64  `json:"amount_fen"`
	CommittedBy string `json:"committed_by"` // DC whose node committed it
	Revision    int64  `json:"revision"`     // etcd revision of the commit
}

// TransferResponse answers a transfer.
type TransferResponse struct {
	Transfer   Transfer `json:"transfer"`
	Replayed   bool     `json:"replayed"`    // the key had already moved money
	BalanceFen int64    `json:"balance_fen"` // the caller's balance after
	ServedBy   string   `json:"served_by"`
	ServedCity string   `json:"served_city"`
	State      string   `json:"state,omitempty"`
}

// ErrorResponse is the body of every error.
type ErrorResponse struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
	// ServedBy, ServedCity and State as in the other responses, when known.
	ServedBy   string `json:"served_by,omitempty"`
	ServedCity string `json:"served_city,omitempty"`
	State      string `json:"state,omitempty"`
	// Unknown is true when the transfer may or may not have been applied
	// (a timeout on the way to the ledger): retry with the same key.
	Unknown bool `json:"unknown,omitempty"`
}
