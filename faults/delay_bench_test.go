package faults_test

import (
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fibercut/fibercut/demoapp"
	"github.com/fibercut/fibercut/faults"
	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/topology"
)

// BenchmarkDelayAccuracy is issue 12's accuracy and cost of a delay by
// NFQUEUE. On a default lab under atec-2018's load (64 users at 400/s
// through the gateway), hz-a–sz-a is delayed 15 ms each way; b.N TCP
// connects from hz-a to sz-a, one after another, each take one round
// trip: 30 ms asked. It reports their p50 and p99, the holder's CPU as a
// share of the machine while they ran, and the load's transfers/s and p99
// without the delay and with it. Run it with -benchtime 500x.
func BenchmarkDelayAccuracy(b *testing.B) {
	f := newFixture(b, topology.Default)
	const delay = 15 * time.Millisecond
	load := func(d time.Duration) demoapp.LoadStats {
		st, err := demoapp.RunLoad(context.Background(), demoapp.LoadConfig{BaseURL: f.lab.Gateway.URL(), Users: 64, Rate: 400, Duration: d})
		if err != nil {
			b.Fatal(err)
		}
		return st
	}
	off := load(15 * time.Second)
	rec := f.apply(faults.Spec{Kind: faults.KindDelay, Delay: delay, A: "hz-a", B: "sz-a", For: 10 * time.Minute, Engine: faults.EngineNFQueue})
	defer f.in.Heal(context.Background(), rec.ID)
	sz, _ := f.lab.DC("sz-a")
	addr := netip.AddrPortFrom(sz.WANIP, lab.NodePort).String()
	on := make(chan demoapp.LoadStats, 1)
	go func() { on <- load(max(15*time.Second, time.Duration(b.N)*3*delay)) }()
	time.Sleep(2 * time.Second) // the load up to speed
	cpu0, wall0 := procCPU(b, rec.Holder.PID), time.Now()
	b.ResetTimer()
	rtts := connects(b, f, "hz-a", addr)
	b.StopTimer()
	cpu, wall := procCPU(b, rec.Holder.PID)-cpu0, time.Since(wall0)
	with := <-on
	if len(rtts) == 0 {
		b.Fatal("no connect completed")
	}
	slices.Sort(rtts)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(rtts[len(rtts)/2]), "rtt-p50-ms")
	b.ReportMetric(ms(rtts[len(rtts)*99/100]), "rtt-p99-ms")
	b.ReportMetric(100*cpu.Seconds()/wall.Seconds()/float64(runtime.NumCPU()), "holder-cpu-%")
	b.ReportMetric(off.CommittedPerSec, "transfers/s-off")
	b.ReportMetric(with.CommittedPerSec, "transfers/s-on")
	b.ReportMetric(ms(off.Latency.P99), "p99-ms-off")
	b.ReportMetric(ms(with.Latency.P99), "p99-ms-on")
	b.ReportMetric(0, "ns/op")
}

// connects times b.N TCP connects from inside dc to addr, one after
// another: each takes one round trip.
func connects(b *testing.B, f *fixture, dc, addr string) []time.Duration {
	var rtts []time.Duration
	inNetns(b, f, dc, func() {
		for range b.N {
			t0 := time.Now()
			c, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				b.Error(err)
				return
			}
			rtts = append(rtts, time.Since(t0))
			c.Close()
		}
	})
	return rtts
}

// procCPU is the CPU time (user and system) process pid has used.
func procCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the command name, which is in parentheses.
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	utime, _ := strconv.Atoi(fields[11])
	stime, _ := strconv.Atoi(fields[12])
	return time.Duration(utime+stime) * time.Second / 100 // clock ticks (USER_HZ)
}

// BenchmarkWANLatencyCost is issue 12's cost of the baseline WAN latency,
// on and off in one run. On a default lab under atec-2018's load (64
// users at 400/s through the gateway) for 20 s without the baseline, then
// 20 s with it, it reports the load's transfers/s and p99 each way, the
// holder's CPU as a share of the machine and per queued packet, and the
// packets it queued a second. While the baseline is on, b.N TCP connects
// from hz-a to sz-a, one after another, each take one round trip over a
// link of 15 ms one way: their p50 and p99 are the accuracy (30 ms asked).
// Run it with -benchtime 300x.
func BenchmarkWANLatencyCost(b *testing.B) {
	f := newFixture(b, topology.Default)
	ctx := context.Background()
	const phase = 20 * time.Second
	load := func() demoapp.LoadStats {
		st, err := demoapp.RunLoad(ctx, demoapp.LoadConfig{BaseURL: f.lab.Gateway.URL(), Users: 64, Rate: 400, Duration: phase})
		if err != nil {
			b.Fatal(err)
		}
		return st
	}
	if _, err := faults.StopWAN(ctx, f.store, f.lab); err != nil {
		b.Fatal(err)
	}
	off := load()
	w, err := faults.StartWAN(ctx, f.lab, f.store)
	if err != nil {
		b.Fatal(err)
	}
	defer faults.StopWAN(ctx, f.store, nil)
	on := make(chan demoapp.LoadStats, 1)
	go func() { on <- load() }()
	time.Sleep(2 * time.Second) // the load up to speed
	cpu0, queued0, wall0 := procCPU(b, w.Holder.PID), wanQueued(b, f.lab), time.Now()
	sz, _ := f.lab.DC("sz-a")
	addr := netip.AddrPortFrom(sz.WANIP, lab.NodePort).String()
	b.ResetTimer()
	rtts := connects(b, f, "hz-a", addr)
	b.StopTimer()
	with := <-on
	cpu, queued, wall := procCPU(b, w.Holder.PID)-cpu0, wanQueued(b, f.lab)-queued0, time.Since(wall0)
	if len(rtts) == 0 || queued == 0 {
		b.Fatalf("%d connects completed, %d packets queued", len(rtts), queued)
	}
	slices.Sort(rtts)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(rtts[len(rtts)/2]), "rtt-p50-ms")
	b.ReportMetric(ms(rtts[len(rtts)*99/100]), "rtt-p99-ms")
	b.ReportMetric(100*cpu.Seconds()/wall.Seconds()/float64(runtime.NumCPU()), "holder-cpu-%")
	b.ReportMetric(float64(cpu.Microseconds())/float64(queued), "holder-us/packet")
	b.ReportMetric(float64(queued)/wall.Seconds(), "packets/s")
	b.ReportMetric(off.CommittedPerSec, "transfers/s-off")
	b.ReportMetric(with.CommittedPerSec, "transfers/s-on")
	b.ReportMetric(ms(off.Latency.P99), "p99-ms-off")
	b.ReportMetric(ms(with.Latency.P99), "p99-ms-on")
	b.ReportMetric(0, "ns/op")
}

// wanQueued is how many packets the DCs' baseline queues have taken so far.
func wanQueued(tb testing.TB, l *lab.Lab) uint64 {
	tb.Helper()
	var n uint64
	for _, d := range l.DCs {
		n += queued(tb, d.Pid, 0xfb00, 0xfc00)
	}
	return n
}

// queued is how many packets the queues numbered [lo, hi) have taken so
// far in the namespace of process pid: the sum of each queue's id
// sequence, which the kernel keeps in /proc/PID/net/netfilter/nfnetlink_queue
// (queue number, portid, queued, copy mode, copy range, dropped, user
// dropped, id sequence, 1).
func queued(tb testing.TB, pid, lo, hi int) uint64 {
	tb.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/net/netfilter/nfnetlink_queue")
	if err != nil {
		tb.Fatal(err)
	}
	var n uint64
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		if q, _ := strconv.Atoi(f[0]); q >= lo && q < hi {
			seq, _ := strconv.ParseUint(f[7], 10, 64)
			n += seq
		}
	}
	return n
}

// BenchmarkThroughput is what one TCP connection carries from hz-a to
// sz-a (15 ms apart, one way) at bridge speed, with the baseline WAN
// latency on, and with a 20 ms delay fault on hz-a on top: b.N transfers
// of 8 MB each, from inside the DCs' namespaces. Packets held in their
// sender's namespace starved TCP's small-queues budget (0.4 MB/s with the
// baseline); held where they arrive, a connection gets what a 30 ms round
// trip allows. Run it with -benchtime 3x.
func BenchmarkThroughput(b *testing.B) {
	f := newFixture(b, topology.Default)
	ctx := context.Background()
	sz, _ := f.lab.DC("sz-a")
	var ln net.Listener
	inNetns(b, f, "sz-a", func() {
		var err error
		if ln, err = net.Listen("tcp", netip.AddrPortFrom(sz.WANIP, 0).String()); err != nil {
			b.Error(err)
		}
	})
	if ln == nil {
		b.FailNow()
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(time.Minute))
				io.Copy(io.Discard, c)
			}()
		}
	}()
	const size = 8 << 20
	send := func() float64 {
		var took time.Duration
		inNetns(b, f, "hz-a", func() {
			buf := make([]byte, 64<<10)
			for range b.N {
				c, err := net.DialTimeout("tcp", ln.Addr().String(), 2*time.Second)
				if err != nil {
					b.Error(err)
					return
				}
				c.SetDeadline(time.Now().Add(time.Minute)) // bounded: 0.14 MB/s at least
				t0 := time.Now()
				for n := 0; n < size && err == nil; n += len(buf) {
					_, err = c.Write(buf)
				}
				if err == nil {
					c.(*net.TCPConn).CloseWrite()
					_, err = c.Read(buf[:1]) // EOF: the receiver has read it all
				}
				took += time.Since(t0)
				c.Close()
				if err != io.EOF {
					b.Errorf("8 MB from hz-a to sz-a: %v", err)
					return
				}
			}
		})
		return float64(b.N*size) / took.Seconds() / 1e6
	}
	if _, err := faults.StopWAN(ctx, f.store, f.lab); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.ReportMetric(send(), "MB/s-bridge")
	if _, err := faults.StartWAN(ctx, f.lab, f.store); err != nil {
		b.Fatal(err)
	}
	defer faults.StopWAN(ctx, f.store, nil)
	b.ReportMetric(send(), "MB/s-baseline")
	rec := f.apply(faults.Spec{Kind: faults.KindDelay, Delay: 20 * time.Millisecond, DC: "hz-a", For: 10 * time.Minute, Engine: faults.EngineNFQueue})
	defer f.in.Heal(ctx, rec.ID)
	b.ReportMetric(send(), "MB/s-delay20ms")
	b.ReportMetric(0, "ns/op")
}
