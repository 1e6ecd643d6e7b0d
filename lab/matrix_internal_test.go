package lab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		ok, tries int
		want      Reach
	}{
		{0, 0, ReachDown},
		{4, 4, ReachOK},
		{1, 1, ReachOK},
		{0, 4, ReachCut},
		{1, 4, ReachLossy},
		{3, 4, ReachLossy},
	}
	for _, tt := range tests {
		if got := classify(tt.ok, tt.tries); got != tt.want {
			t.Errorf("classify(%d, %d) = %q, want %q", tt.ok, tt.tries, got, tt.want)
		}
	}
}

func TestMedian(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		var ds []time.Duration
		for _, x := range n {
			ds = append(ds, time.Duration(x)*time.Millisecond)
		}
		return ds
	}
	tests := []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{ms(7), 7 * time.Millisecond},
		{ms(9, 1, 5), 5 * time.Millisecond},
		{ms(4, 1, 3, 2), 2500 * time.Microsecond},
	}
	for _, tt := range tests {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestFormatRTT(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{time.Microsecond, "<0.01ms"},
		{44 * time.Microsecond, "0.04ms"},
		{120 * time.Microsecond, "0.12ms"},
		{1500 * time.Microsecond, "1.5ms"},
		{42 * time.Millisecond, "42.0ms"},
	}
	for _, tt := range tests {
		if got := formatRTT(tt.in); got != tt.want {
			t.Errorf("formatRTT(%s) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// fakeConn is a connection that only counts its Close.
type fakeConn struct {
	net.Conn
	closed *int
}

func (c fakeConn) Close() error { *c.closed++; return nil }

// TestProbe drives probe with scripted dials: nil is a connect that succeeds.
func TestProbe(t *testing.T) {
	timeout := fmt.Errorf("dial tcp: i/o timeout")
	refused := fmt.Errorf("dial tcp: %w", syscall.ECONNREFUSED)
	tests := []struct {
		name    string
		to      netip.Addr
		script  []error
		want    Probe
		wantErr string
	}{
		{"all connect", netip.MustParseAddr("10.0.0.2"), []error{nil, nil, nil, nil},
			Probe{Reach: ReachOK, OK: 4, Tries: 4, RTT: 2500 * time.Microsecond}, ""},
		{"none connects", netip.MustParseAddr("10.0.0.2"), []error{timeout, timeout, timeout, timeout},
			Probe{Reach: ReachCut, Tries: 4, Err: timeout.Error()}, ""},
		{"some connect, last error kept", netip.MustParseAddr("10.0.0.2"), []error{nil, refused, nil, timeout},
			Probe{Reach: ReachLossy, OK: 2, Tries: 4, RTT: 2 * time.Millisecond, Err: timeout.Error()}, ""},
		{"no address", netip.Addr{}, nil,
			Probe{Reach: ReachCut, Tries: 4, Err: "no WAN address"}, ""},
		{"source gone", netip.MustParseAddr("10.0.0.2"), []error{&netnsError{"open", "/proc/1/ns/net", fs.ErrNotExist}},
			Probe{Reach: ReachDown, Err: "network namespace /proc/1/ns/net: open: file does not exist"}, ""},
		{"no privilege", netip.MustParseAddr("10.0.0.2"), []error{&netnsError{"enter", "/proc/1/ns/net", syscall.EPERM}},
			Probe{}, "needs root"},
		{"stale pid", netip.MustParseAddr("10.0.0.2"), []error{&netnsError{"check", "/proc/1/ns/net", errSameNetns}},
			Probe{}, "inventory stale"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				n, closed int
				addrs     []string
			)
			dial := func(_ context.Context, addr string, _ time.Duration) (net.Conn, time.Duration, error) {
				addrs = append(addrs, addr)
				err := tt.script[n]
				n++
				if err != nil {
					return nil, 0, err
				}
				return fakeConn{closed: &closed}, time.Duration(n) * time.Millisecond, nil
			}
			p := Probe{From: "a", To: "b"}
			err := probe(context.Background(), &p, dial, tt.to, MatrixOptions{Tries: 4, Timeout: time.Second})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "lab: probe a→b: ") {
					t.Fatalf("probe error = %v, want one starting \"lab: probe a→b: \" and saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.want.From, tt.want.To = "a", "b"
			if p != tt.want {
				t.Errorf("probe = %+v\nwant    %+v", p, tt.want)
			}
			if closed != p.OK {
				t.Errorf("%d connections closed, want %d", closed, p.OK)
			}
			for _, a := range addrs {
				if a != "10.0.0.2:7100" {
					t.Errorf("dialled %s, want 10.0.0.2:7100", a)
				}
			}
		})
	}
}

// TestProbeStopsWhenCancelled checks that a cancelled context ends a probe
// with an error instead of a matrix of cuts.
func TestProbeStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	dial := func(ctx context.Context, _ string, _ time.Duration) (net.Conn, time.Duration, error) {
		n++
		cancel()
		return nil, 0, ctx.Err()
	}
	p := Probe{From: "a", To: "b"}
	err := probe(ctx, &p, dial, netip.MustParseAddr("10.0.0.2"), MatrixOptions{Tries: 4, Timeout: time.Second})
	if !errors.Is(err, context.Canceled) || n != 1 {
		t.Fatalf("probe after cancel = %v after %d dials, want context.Canceled after 1", err, n)
	}
}

func TestMatrixOptionsRange(t *testing.T) {
	l := &Lab{Name: "x"}
	for _, o := range []MatrixOptions{{Tries: -1}, {Tries: 101}, {Timeout: -time.Second}, {Timeout: time.Minute}} {
		if _, err := l.Matrix(context.Background(), o); err == nil || !strings.HasPrefix(err.Error(), "lab: matrix: ") {
			t.Errorf("Matrix(%+v) = %v, want an error saying what is valid", o, err)
		}
	}
}

func TestMatrixDefaults(t *testing.T) {
	m, err := (&Lab{Name: "x"}).Matrix(context.Background(), MatrixOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Tries != DefaultMatrixTries || m.Timeout != DefaultMatrixTimeout {
		t.Errorf("Matrix with zero options ran %d tries of %s, want %d of %s",
			m.Tries, m.Timeout, DefaultMatrixTries, DefaultMatrixTimeout)
	}
}
