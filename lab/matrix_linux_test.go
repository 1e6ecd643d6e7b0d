package lab

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// requireRoot skips the test (fails it when FIBERCUT_REQUIRE_DOCKER=1)
// unless it runs as root; labtest.RequireRoot cannot be imported from here.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("FIBERCUT_REQUIRE_DOCKER") == "1" {
			t.Fatal("root required (FIBERCUT_REQUIRE_DOCKER=1)")
		}
		t.Skip("root required")
	}
}

// listenInFreshNetns creates a network namespace with its loopback up and a
// TCP listener on 127.0.0.1 inside it. It returns the listener and a handle
// to the namespace, both closed when the test ends.
func listenInFreshNetns(t *testing.T) (net.Listener, netns.NsHandle) {
	t.Helper()
	type result struct {
		ln  net.Listener
		ns  netns.NsHandle
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer orig.Close()
		r := func() (r result) {
			if r.ns, r.err = netns.New(); r.err != nil {
				return r
			}
			lo, err := netlink.LinkByName("lo")
			if err == nil {
				err = netlink.LinkSetUp(lo)
			}
			if err == nil {
				r.ln, err = net.Listen("tcp", "127.0.0.1:0")
			}
			r.err = err
			return r
		}()
		if err := netns.Set(orig); err != nil {
			r.err = errors.Join(r.err, err) // thread stays locked and dies
		} else {
			runtime.UnlockOSThread()
		}
		ch <- r
	}()
	r := <-ch
	if r.ns.IsOpen() {
		t.Cleanup(func() { r.ns.Close() })
	}
	if r.ln != nil {
		t.Cleanup(func() { r.ln.Close() })
	}
	if r.err != nil {
		t.Fatalf("fresh network namespace: %v", r.err)
	}
	go func() { // accept and drop, until the listener is closed
		for {
			c, err := r.ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return r.ln, r.ns
}

// TestDialInNetns connects to a listener that exists only in a fresh
// namespace: from inside it works, from the host's namespace it cannot.
func TestDialInNetns(t *testing.T) {
	requireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ln, ns := listenInFreshNetns(t)
	nsPath := "/proc/self/fd/" + strconv.Itoa(int(ns))
	addr := ln.Addr().String()

	for i := range 3 {
		conn, rtt, err := dialInNetns(ctx, nsPath, addr, time.Second)
		if err != nil {
			t.Fatalf("dial %d in namespace: %v", i, err)
		}
		if rtt <= 0 {
			t.Errorf("dial %d: rtt %s", i, rtt)
		}
		conn.Close()
	}
	// The dialling thread went home: the host has no such listener.
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("dial %s from the host namespace connected; want it to fail", addr)
	}
	// Every thread of the process is still in the host's namespace.
	host, err := netns.GetFromPath("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		h, err := netns.GetFromPath("/proc/self/task/" + task.Name() + "/ns/net")
		if err != nil {
			continue // the thread ended meanwhile
		}
		if !h.Equal(host) {
			t.Errorf("thread %s is left in another network namespace", task.Name())
		}
		h.Close()
	}
}

func TestDialInNetnsErrors(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	var nerr *netnsError
	_, _, err := dialInNetns(ctx, "/proc/self/ns/net", "127.0.0.1:1", time.Second)
	if !errors.As(err, &nerr) || !errors.Is(err, errSameNetns) {
		t.Errorf("dial in own namespace = %v, want errSameNetns", err)
	}
	_, _, err = dialInNetns(ctx, "/proc/0/ns/net", "127.0.0.1:1", time.Second)
	if !errors.As(err, &nerr) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("dial in missing namespace = %v, want a netnsError wrapping fs.ErrNotExist", err)
	}
}
