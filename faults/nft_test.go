package faults

import (
	"crypto/rand"
	"encoding/hex"
	"flag"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// requireRoot skips the test (fails it when FIBERCUT_REQUIRE_DOCKER=1)
// unless it runs as root with ip and nft installed.
func requireRoot(t testing.TB) {
	t.Helper()
	fail := t.Skipf
	if os.Getenv("FIBERCUT_REQUIRE_DOCKER") == "1" {
		fail = t.Fatalf
	}
	if os.Geteuid() != 0 {
		fail("root required")
	}
	for _, cmd := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(cmd); err != nil {
			fail("%s required (Debian's iproute2 and nftables): %v", cmd, err)
		}
	}
}

// testNS is a fresh network namespace with a WAN interface (one end of a veth pair) holding
// wanIP, removed when the test ends.
type testNS struct {
	t    testing.TB
	name string
	conn *nsConn
}

func newTestNS(t testing.TB, wanIP string) *testNS {
	t.Helper()
	requireRoot(t)
	b := make([]byte, 4)
	rand.Read(b)
	n := &testNS{t: t, name: "fibercut-test-" + hex.EncodeToString(b)}
	n.ip("netns", "add", n.name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", n.name).Run() })
	n.ip("-n", n.name, "link", "add", "wan0", "type", "veth", "peer", "name", "wan1")
	n.ip("-n", n.name, "addr", "add", wanIP+"/24", "dev", "wan0")
	n.ip("-n", n.name, "link", "set", "wan0", "up")
	ns, err := netns.GetFromName(n.name)
	if err != nil {
		t.Fatal(err)
	}
	if n.conn, err = newNSConn("hz-a", ns, netip.MustParseAddr(wanIP)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.conn.Close)
	return n
}

func (n *testNS) ip(args ...string) {
	n.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		n.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// expires hides the time an element has left, which moves, and counters,
// which any stray packet would move.
var (
	expires  = regexp.MustCompile(`expires [0-9hms.]+`)
	counters = regexp.MustCompile(`packets [0-9]+ bytes [0-9]+`)
)

// golden compares `nft list ruleset` in the namespace with
// testdata/nft/NAME.golden.
func (n *testNS) golden(name string) {
	n.t.Helper()
	out, err := exec.Command("ip", "netns", "exec", n.name, "nft", "list", "ruleset").CombinedOutput()
	if err != nil {
		n.t.Fatalf("nft list ruleset: %v\n%s", err, out)
	}
	got := counters.ReplaceAll(expires.ReplaceAll(out, []byte("expires X")), []byte("packets N bytes N"))
	path := filepath.Join("testdata", "nft", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			n.t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			n.t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		n.t.Fatalf("%v (run with -update to write it)", err)
	}
	if string(got) != string(want) {
		n.t.Errorf("nft list ruleset after %s:\n%s\nwant (%s):\n%s", name, got, path, want)
	}
}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

// TestNFTRulesetGolden writes each kind of nftables fault into a fresh
// namespace and compares the ruleset with golden text: every fault has
// sets and rules of its own, removing one leaves the others whole, and
// dropping the table leaves nothing.
func TestNFTRulesetGolden(t *testing.T) {
	n := newTestNS(t, "10.99.0.10")
	c := n.conn
	steps := []struct {
		name string
		do   func() error
	}{
		{"cut", func() error {
			return c.addFault("f1", []setAdd{{setDropIn, addrs("10.99.0.14")}, {setDropOut, addrs("10.99.0.14")}}, 0)
		}},
		{"cut-twice", func() error { // the same link again, with a time limit
			return c.addFault("f2", []setAdd{{setDropIn, addrs("10.99.0.14")}, {setDropOut, addrs("10.99.0.14")}}, time.Hour)
		}},
		{"isolate", func() error {
			return c.addFault("f3", []setAdd{{setIsolated, addrs("10.99.0.10")}, {setKeep, addrs("10.99.0.11")}}, 0)
		}},
		{"loss", func() error {
			return c.addFault("f4", []setAdd{{prefixLossIn + "30", addrs("10.99.0.12")}, {prefixLossDC + "5", addrs("10.99.0.10")}}, 0)
		}},
		{"heal-f1", func() error { return c.removeFaults("f1") }},
		{"heal-f2-f3-f4", func() error { return c.removeFaults("f2", "f3", "f4") }},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		n.golden(st.name)
	}
	ids, err := c.faultIDs()
	if err != nil || len(ids) != 0 {
		t.Errorf("faults left after healing all: %v, %v", ids, err)
	}
	if had, err := c.dropTable(); err != nil || !had {
		t.Errorf("dropTable = %v, %v; want the (empty) table dropped", had, err)
	}
	n.golden("dropped")
}

// TestNFTElementsExpireInTheKernel adds a fault of one second and checks
// that the kernel removes its elements by itself, while a fault without a
// time limit on the same address stays.
func TestNFTElementsExpireInTheKernel(t *testing.T) {
	n := newTestNS(t, "10.99.0.10")
	c := n.conn
	if err := c.addFault("f1", []setAdd{{setDropIn, addrs("10.99.0.14")}}, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.addFault("f2", []setAdd{{setDropIn, addrs("10.99.0.14")}}, time.Second); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		els, err := c.elements()
		if err != nil {
			t.Fatal(err)
		}
		if len(els["f2_drop_in"]) == 0 {
			if len(els["f1_drop_in"]) != 1 {
				t.Fatalf("the fault without a time limit lost its element: %v", els)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the kernel did not expire f2's element within 10 s: %v", els)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// BenchmarkNFTAddFault measures the kernel side of one isolation in one
// namespace: creating the fault's two sets and two rules and filling
// them, in one batch (the fault's removal is not timed).
func BenchmarkNFTAddFault(b *testing.B) {
	n := newTestNS(b, "10.99.0.10")
	adds := []setAdd{{setIsolated, addrs("10.99.0.10")}, {setKeep, addrs("10.99.0.11")}}
	i := 0
	for b.Loop() {
		i++
		id := "f" + strconv.Itoa(i)
		if err := n.conn.addFault(id, adds, time.Minute); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := n.conn.removeFaults(id); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
