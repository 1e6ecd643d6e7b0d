package nfqueue

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

var capture = flag.Bool("capture", false, "write the kernel's messages the namespace test receives to testdata/")

// testNS is a fresh network namespace with its loopback up and, in a
// table of its own, a rule that queues the UDP packets sent to port
// 9999 on queue 7 with bypass.
type testNS struct {
	ns   netns.NsHandle
	name string
}

func newTestNS(t *testing.T) *testNS {
	t.Helper()
	fail := t.Skipf
	if os.Getenv("FIBERCUT_REQUIRE_DOCKER") == "1" {
		fail = t.Fatalf
	}
	if os.Geteuid() != 0 {
		fail("root required")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		fail("ip required (Debian's iproute2): %v", err)
	}
	b := make([]byte, 4)
	rand.Read(b)
	n := &testNS{name: "fibercut-test-" + hex.EncodeToString(b)}
	if out, err := exec.Command("ip", "netns", "add", n.name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", n.name).Run() })
	if out, err := exec.Command("ip", "-n", n.name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v\n%s", err, out)
	}
	var err error
	if n.ns, err = netns.GetFromName(n.name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.ns.Close() })
	c, err := nftables.New(nftables.WithNetNSFd(int(n.ns)))
	if err != nil {
		t.Fatal(err)
	}
	tbl := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "fibercut"})
	ch := c.AddChain(&nftables.Chain{Name: "out", Table: tbl, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter})
	c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{9999 >> 8, 9999 & 0xff}},
		&expr.Target{Name: "NFQUEUE", Rev: 3, Info: ptr(xt.Unknown(XTTargetInfo(7, true)))},
	}})
	if err := c.Flush(); err != nil {
		t.Fatalf("add the queue rule: %v", err)
	}
	return n
}

func ptr[T any](v T) *T { return &v }

// udp opens a UDP socket on 127.0.0.1:port in the namespace.
func (n *testNS) udp(t *testing.T, port int) *net.UDPConn {
	t.Helper()
	done := make(chan struct{})
	var c *net.UDPConn
	var err error
	go func() {
		defer close(done)
		runtime.LockOSThread() // the thread leaves the host's namespace: it dies with the goroutine
		if err = netns.Set(n.ns); err != nil {
			return
		}
		c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	}()
	<-done
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// arrives reports whether a datagram reaches c within wait.
func arrives(c *net.UDPConn, wait time.Duration) (string, bool) {
	c.SetReadDeadline(time.Now().Add(wait))
	b := make([]byte, 100)
	n, _, err := c.ReadFromUDP(b)
	if err != nil {
		return "", false
	}
	return string(b[:n]), true
}

// TestQueueInNamespace runs the client against the kernel: a queued
// packet waits for its verdict, Accept delivers it, Drop does not, a
// batch verdict releases every earlier packet, and once the queue is
// closed the rule's bypass lets packets through with no one listening.
func TestQueueInNamespace(t *testing.T) {
	n := newTestNS(t)
	dst := n.udp(t, 9999)
	src := n.udp(t, 0)
	send := func(s string) {
		t.Helper()
		if _, err := src.WriteToUDP([]byte(s), dst.LocalAddr().(*net.UDPAddr)); err != nil {
			t.Fatal(err)
		}
	}
	q, err := Open(Config{Queue: 7, NetNS: int(n.ns), CopyRange: 64, MaxLen: 1024, FailOpen: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Config{Queue: 7, NetNS: int(n.ns)}); err == nil || !errors.Is(err, unix.EPERM) {
		t.Errorf("a second socket on the same queue: %v; want EPERM", err)
	}
	recv := func() Packet {
		t.Helper()
		q.SetReadDeadline(time.Now().Add(5 * time.Second))
		if *capture {
			msgs, err := q.conn.Receive()
			if err != nil || len(msgs) != 1 {
				t.Fatalf("receive: %d messages, %v", len(msgs), err)
			}
			raw, _ := msgs[0].MarshalBinary()
			os.WriteFile(filepath.Join("testdata", "packet.bin"), raw, 0o644)
			p, ok, err := parsePacket(msgs[0])
			if !ok || err != nil {
				t.Fatalf("parse: %v %v", ok, err)
			}
			return p
		}
		ps, err := q.Receive()
		if err != nil || len(ps) != 1 {
			t.Fatalf("receive: %d packets, %v", len(ps), err)
		}
		return ps[0]
	}

	send("one")
	p := recv()
	if p.HWProtocol != unix.ETH_P_IP || p.Length != 20+8+3 || len(p.Payload) != p.Length || string(p.Payload[28:]) != "one" {
		t.Fatalf("queued packet: %+v; want IPv4, 31 bytes ending in \"one\"", p)
	}
	if _, ok := arrives(dst, 300*time.Millisecond); ok {
		t.Fatal("the packet arrived before its verdict")
	}
	if err := q.Verdict(p.ID, Accept); err != nil {
		t.Fatal(err)
	}
	if got, ok := arrives(dst, 5*time.Second); !ok || got != "one" {
		t.Fatalf("after Accept: %q, %v", got, ok)
	}

	send("two")
	if err := q.Verdict(recv().ID, Drop); err != nil {
		t.Fatal(err)
	}
	if got, ok := arrives(dst, 300*time.Millisecond); ok {
		t.Fatalf("after Drop, %q arrived", got)
	}

	send("three")
	send("four")
	recv()
	last := recv()
	if err := q.VerdictBatch(last.ID, Accept); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"three", "four"} {
		if got, ok := arrives(dst, 5*time.Second); !ok || got != want {
			t.Fatalf("after the batch verdict: %q, %v; want %q", got, ok, want)
		}
	}

	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	send("five")
	if got, ok := arrives(dst, 5*time.Second); !ok || got != "five" {
		t.Fatalf("with the queue closed (bypass): %q, %v; want the packet through", got, ok)
	}
}

// TestOpenWhilePacketsFlow binds the queue while its rule already feeds
// it a stream of datagrams: packets come between the answers to Open's
// requests, and Open must still succeed (those packets pass). The stream
// is bounded in count and time.
func TestOpenWhilePacketsFlow(t *testing.T) {
	n := newTestNS(t)
	dst := n.udp(t, 9999)
	src := n.udp(t, 0)
	stop := make(chan struct{})
	sent := make(chan int)
	flowing := make(chan struct{})
	var once sync.Once
	go func() {
		i := 0
		defer func() { once.Do(func() { close(flowing) }); sent <- i }()
		deadline := time.Now().Add(20 * time.Second)
		for ; i < 200_000 && time.Now().Before(deadline); i++ {
			if i == 100 {
				once.Do(func() { close(flowing) })
			}
			select {
			case <-stop:
				return
			default:
			}
			src.WriteToUDP([]byte("flow"), dst.LocalAddr().(*net.UDPAddr))
		}
	}()
	<-flowing
	go func() { // keep the receiver's buffer from filling
		b := make([]byte, 100)
		for {
			dst.SetReadDeadline(time.Now().Add(time.Second))
			if _, _, err := dst.ReadFromUDP(b); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				return
			}
		}
	}()
	for i := range 20 {
		q, err := Open(Config{Queue: 7, NetNS: int(n.ns), CopyRange: 64, MaxLen: 1024, FailOpen: true})
		if err != nil {
			close(stop)
			<-sent
			t.Fatalf("open %d with packets flowing: %v", i+1, err)
		}
		q.Close()
	}
	close(stop)
	if got := <-sent; got >= 200_000 {
		t.Fatal("the stream ended before the queue's 20 opens did")
	}
}
