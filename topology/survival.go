package topology

import "fmt"

// Loss says what is left of the ledger when a city or a single DC is lost.
// Each DC runs one ledger member, so the ledger keeps working (and no
// acknowledged write is lost) only while a strict majority of DCs remains.
type Loss struct {
	Kind         string `json:"kind"` // "city" or "dc"
	Name         string `json:"name"` // city name or DC id
	Remaining    int    `json:"remaining"`
	Total        int    `json:"total"`
	MajorityKept bool   `json:"majority_kept"`
}

// String reads like "lose hangzhou: 3 of 5 remain, majority kept".
func (l Loss) String() string {
	verdict := "majority kept"
	if !l.MajorityKept {
		verdict = "majority LOST"
	}
	return fmt.Sprintf("lose %s: %d of %d remain, %s", l.Name, l.Remaining, l.Total, verdict)
}

// Survival returns the loss of each city, then of each single DC, in
// display order.
func (t *Topology) Survival() []Loss {
	total := len(t.Datacenters)
	losses := make([]Loss, 0, len(t.Cities)+total)
	for _, c := range t.Cities {
		losses = append(losses, newLoss("city", c.Name, total-len(t.DCsIn(c.Name)), total))
	}
	for _, dc := range t.Datacenters {
		losses = append(losses, newLoss("dc", dc.ID, total-1, total))
	}
	return losses
}

func newLoss(kind, name string, remaining, total int) Loss {
	return Loss{Kind: kind, Name: name, Remaining: remaining, Total: total, MajorityKept: 2*remaining > total}
}
