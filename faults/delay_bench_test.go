package faults_test

import (
	"context"
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
	var rtts []time.Duration
	b.ResetTimer()
	inNetns(b, f, "hz-a", func() {
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
