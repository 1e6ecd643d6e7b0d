package demoapp

import (
	"context"
	"testing"
	"time"

	"github.com/fibercut/fibercut/lab/labtest"
	"github.com/fibercut/fibercut/topology"
)

// TestPageOnRealLab drives the audience page in headless Chromium against a
// real five-DC lab: open an account, transfer, see the balance change; then
// the account's home city loses power, and the page must show the switch to
// another city and transfer from there.
func TestPageOnRealLab(t *testing.T) {
	requireChromium(t)
	cli := labtest.RequireDocker(t)
	l := labtest.Up(t, cli, topology.Default)
	p, peer := drivePage(t, l.Gateway.URL(), 3*time.Minute)
	homeCity := p.evalString(`document.querySelector('[data-testid="served-by"]').dataset.city`)
	if homeCity == "" {
		p.fatalf("the page does not say which city serves the account")
	}
	for _, d := range l.DCs {
		if d.City == homeCity {
			if err := cli.ContainerKill(context.Background(), d.ContainerID, "KILL"); err != nil {
				t.Fatal(err)
			}
		}
	}
	p.Step = 30 * time.Second
	p.WaitBanner(StateSwitched)
	if now := p.evalString(`document.querySelector('[data-testid="served-by"]').dataset.city`); now == homeCity || now == "" {
		p.fatalf("after %s lost power the page says it is served from %q", homeCity, now)
	}
	p.Transfer(peer.ID, "1.00")
	p.WaitBalance("¥999,986.66")
	p.Screenshot("/tmp/fibercut-page-real-lab.png")
}
