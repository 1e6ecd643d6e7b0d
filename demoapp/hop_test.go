package demoapp

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fibercut/fibercut/lab/labtest"
	"github.com/fibercut/fibercut/topology"
)

// BenchmarkHTTPHop measures one HTTP hop on this machine, with nothing behind
// it: 64 clients post a transfer-sized JSON body over loopback to a server
// that answers a transfer-sized JSON reply. It is the floor under the
// transfer benchmark in docs/benchmarks.md: a transfer through the gateway
// crosses about three such hops and a replicated commit, so its rate cannot
// exceed a third of this one's on the same cores. cpu-µs/op is the CPU the
// process (client and server both) spent per request.
func BenchmarkHTTPHop(b *testing.B) {
	const reply = `{"transfer":{"key":"k-000001","from":"abcdefgh","to":"hjkmnpqr","amount_fen":100,"committed_by":"sh-a","revision":123456},"balance_fen":99999900,"served_by":"hz-a","served_city":"hangzhou","state":"serving"}`
	const body = `{"to":"hjkmnpqr","amount_fen":100,"key":"k-000001"}`
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, reply)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	client := newLoadClient(64, 5*time.Second)
	url := "http://" + ln.Addr().String() + "/api/accounts/abcdefgh/transfers"
	b.Cleanup(client.CloseIdleConnections)
	hammer(b, client, func() (*http.Response, error) {
		return client.Post(url, "application/json", strings.NewReader(body))
	})
}

// BenchmarkGatewayHop is BenchmarkHTTPHop across processes as a transfer
// crosses them: 64 clients on the host ask a real lab's gateway container
// for its status (a small JSON answer from memory, nothing forwarded).
// machine-cpu-µs/op is the CPU the whole machine spent per request.
func BenchmarkGatewayHop(b *testing.B) {
	cli := labtest.RequireDocker(b)
	l := labtest.Up(b, cli, topology.Default)
	client := newLoadClient(64, 5*time.Second)
	b.Cleanup(client.CloseIdleConnections)
	url := l.Gateway.URL() + "/api/status"
	hammer(b, client, func() (*http.Response, error) { return client.Get(url) })
}

// BenchmarkLedgerCommit is the transfer benchmark without HTTP: 64 clients
// commit transfers between 64 accounts through the group-commit writer of
// the leader of a real five-member ledger in this process (the members talk
// over loopback). machine-cpu-µs/op is what one transfer costs the five
// members together.
func BenchmarkLedgerCommit(b *testing.B) {
	ls := startClusterOf(b, 5, 61, 256)
	var leader *Ledger
	for _, l := range ls {
		if l.View().LeaderDC == l.self.DC {
			leader = l
		}
	}
	if leader == nil {
		b.Fatal("no member leads")
	}
	ids := make([]string, 64)
	for i := range ids {
		a, err := ls[i%len(ls)].OpenAccount(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = a.ID
	}
	var seq atomic.Int64
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			from, to := ids[n%64], ids[(n*7+1)%64]
			if from == to {
				to = ids[(n+1)%64]
			}
			_, err := leader.Commit(context.Background(), TransferRequest{To: to, AmountFen: 1, Key: "b-" + strconv.FormatInt(n, 10)}, from, true)
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "machine-cpu-µs/op")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "transfers/s")
}

// hammer runs req from 64 goroutines b.N times in all and reports the
// rate, the CPU this process spent per request, and that of the machine.
func hammer(b *testing.B, client *http.Client, req func() (*http.Response, error)) {
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	busy0 := machineBusy(b)
	b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0)) // 64 clients
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := req()
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	busy := machineBusy(b) - busy0
	cpu := time.Duration(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) * time.Nanosecond
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
	b.ReportMetric(float64(busy.Microseconds())/float64(b.N), "machine-cpu-µs/op")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// machineBusy is the CPU time all CPUs have spent busy since boot, from the
// first line of /proc/stat (user nice system idle iowait irq softirq steal,
// in USER_HZ ticks, 100 a second on Linux).
func machineBusy(b *testing.B) time.Duration {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		b.Fatalf("/proc/stat starts %q, want the cpu line", line)
	}
	var busy int64
	for i, v := range f[1:9] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.Fatalf("/proc/stat: %q: %v", v, err)
		}
		if i != 3 && i != 4 { // not idle, not iowait
			busy += n
		}
	}
	return time.Duration(busy) * 10 * time.Millisecond
}

// BenchmarkLedgerSoak commits b.N transfers (run it with -benchtime
// 1000000x) among 1,000 accounts on an in-process three-member ledger, 64
// at a time, and reports the backend's size in use at the start and the
// end and its largest in between: with the periodic compaction it stays
// flat instead of growing with every transfer.
func BenchmarkLedgerSoak(b *testing.B) {
	ls := startClusterOf(b, 3, 101, 256)
	ctx := context.Background()
	l := ls[0]
	ids := make([]string, 1000)
	for i := range ids {
		a, err := l.OpenAccount(ctx)
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = a.ID
	}
	inUse := func() float64 {
		st, err := l.local.Status(ctx, peerURL(l.self, ClientPort).Host)
		if err != nil {
			b.Fatal(err)
		}
		return float64(st.DbSizeInUse) / (1 << 20)
	}
	start, peak := inUse(), 0.0
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for w := range 64 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				from, to := ids[(int(i)+w)%len(ids)], ids[(int(i)+w+1)%len(ids)]
				if _, err := l.Commit(ctx, TransferRequest{To: to, AmountFen: 1, Key: fmt.Sprint("s", i)}, from, true); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
wait:
	for {
		select {
		case <-done:
			break wait
		case <-tick.C:
			mb := inUse()
			peak = max(peak, mb)
			b.Logf("%d transfers: %.1f MiB in use", next.Load(), mb)
		}
	}
	b.StopTimer()
	end := inUse()
	b.ReportMetric(start, "MiB-start")
	b.ReportMetric(max(peak, end), "MiB-peak")
	b.ReportMetric(end, "MiB-end")
	b.ReportMetric(float64(failed.Load()), "failed")
}
