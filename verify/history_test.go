package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func sampleOps() []Op {
	return []Op{
		{Seq: 1, User: 0, Kind: KindOpen, From: "acc-1", Invoke: 10, Complete: 2_000_000, Outcome: OK,
			Status: 201, ServedBy: "hz-a", HomeDC: "hz-a", State: "serving", BalanceFen: 100_000_000},
		{Seq: 2, User: 3, Kind: KindTransfer, Key: "r1-u3-1", Attempt: 1, From: "acc-1", To: "acc-2", AmountFen: 1234,
			Invoke: 3_000_000, Complete: 5_000_000, Outcome: Unknown, Error: "timeout after 2s", HomeDC: "hz-a"},
		{Seq: 3, User: 3, Kind: KindTransfer, Key: "r1-u3-1", Attempt: 2, From: "acc-1", To: "acc-2", AmountFen: 1234,
			Invoke: 6_000_000, Complete: 7_500_000, Outcome: OK, Status: 200, ServedBy: "sh-a", HomeDC: "hz-a",
			State: "switched", Revision: 42, Replayed: true, BalanceFen: 99_998_766},
		{Seq: 4, User: 1, Kind: KindRead, From: "acc-2", Invoke: 8_000_000, Complete: 9_000_000, Outcome: Fail,
			Status: 503, Error: "no quorum"},
	}
}

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	base := time.Now()
	w, err := NewWriter(&buf, Header{Base: base, Lab: "drill", Target: "http://127.0.0.1:8080", Users: 8, Rate: 400})
	if err != nil {
		t.Fatal(err)
	}
	if w.Clock().Base() != base {
		t.Errorf("clock base %v, want %v", w.Clock().Base(), base)
	}
	want := sampleOps()
	for _, op := range want {
		if err := w.Append(op); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Append(want[0]); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v, want ErrClosed", err)
	}
	if w.Len() != int64(len(want)) {
		t.Errorf("Len %d, want %d", w.Len(), len(want))
	}

	h, got, err := ReadHistory(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if h.Format != FormatV1 || !h.Base.Equal(base) || h.Lab != "drill" || h.Users != 8 || h.Rate != 400 {
		t.Errorf("header %+v", h)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ops differ:\n got %+v\nwant %+v", got, want)
	}
	if got[2].Latency() != 1_500_000 {
		t.Errorf("latency %v", got[2].Latency())
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1+len(want)+1 {
		t.Fatalf("%d lines, want %d (a header, the ops, an end record)", len(lines), 1+len(want)+1)
	}
	if end := fmt.Sprintf(`{"end":{"ops":%d}}`, len(want)); lines[len(lines)-1] != end {
		t.Errorf("last line %s, want the end record %s", lines[len(lines)-1], end)
	}
	if !strings.HasPrefix(lines[0], `{"format":"fibercut-history/1","base":`) {
		t.Errorf("header line %s", lines[0])
	}
	t.Logf("example line: %s", lines[3])
}

func TestHeaderFlushedAtOnce(t *testing.T) {
	var buf bytes.Buffer
	if _, err := NewWriter(&buf, Header{}); err != nil {
		t.Fatal(err)
	}
	// A recorder that dies now leaves a history that says what it is,
	// and that it is not whole.
	h, ops, err := ReadHistory(&buf)
	if !errors.Is(err, ErrTruncated) || len(ops) != 0 || h.Format != FormatV1 || h.Base.IsZero() {
		t.Fatalf("header %+v ops %d err %v; want the header and ErrTruncated", h, len(ops), err)
	}
}

// TestHistoryCutAtALineBoundary: without its end record, a history cut
// between two lines is not taken for a whole one; an end record that
// miscounts, or a line after it, is refused.
func TestHistoryCutAtALineBoundary(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		w.Append(Op{Seq: int64(i + 1), Kind: KindTransfer, Key: fmt.Sprint("k", i), From: "a", To: "b", AmountFen: 1, Outcome: OK})
	}
	w.Close()
	whole := buf.String()
	if _, ops, err := ReadHistory(strings.NewReader(whole)); err != nil || len(ops) != 3 {
		t.Fatalf("the whole history: %d ops, %v", len(ops), err)
	}
	lines := strings.SplitAfter(whole, "\n")
	cut := strings.Join(lines[:3], "") // the header and two ops, cut cleanly
	if _, ops, err := ReadHistory(strings.NewReader(cut)); !errors.Is(err, ErrTruncated) || len(ops) != 2 {
		t.Errorf("a history cut at a line boundary: %d ops, %v; want the 2 ops and ErrTruncated", len(ops), err)
	}
	for name, text := range map[string]string{
		"miscounting end":  strings.Join(lines[:3], "") + `{"end":{"ops":3}}` + "\n",
		"op after the end": whole + lines[1],
	} {
		if _, _, err := ReadHistory(strings.NewReader(text)); err == nil || errors.Is(err, ErrTruncated) {
			t.Errorf("%s: %v; want an error naming the line", name, err)
		}
	}
}

func TestConcurrentWriters(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{Users: 16})
	if err != nil {
		t.Fatal(err)
	}
	clock := w.Clock()
	const users, each = 16, 200
	var wg sync.WaitGroup
	for u := range users {
		wg.Go(func() {
			for i := range each {
				seq, inv := clock.Begin()
				op := Op{Seq: seq, User: u, Kind: KindTransfer, Key: fmt.Sprintf("u%d-%d", u, i),
					Invoke: inv, Complete: clock.Since(), Outcome: OK}
				if err := w.Append(op); err != nil {
					t.Error(err)
					return
				}
				if i%50 == 0 {
					if err := w.Flush(); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, ops, err := ReadHistory(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != users*each {
		t.Fatalf("%d ops, want %d", len(ops), users*each)
	}
	seqs := make(map[int64]Op, len(ops))
	for _, op := range ops {
		if _, dup := seqs[op.Seq]; dup {
			t.Fatalf("seq %d twice", op.Seq)
		}
		seqs[op.Seq] = op
		if op.Complete < op.Invoke {
			t.Errorf("op %d completes before it is invoked", op.Seq)
		}
	}
	// Seq order is invocation order.
	for s := int64(2); s <= users*each; s++ {
		if seqs[s].Invoke < seqs[s-1].Invoke {
			t.Errorf("seq %d invoked at %v, before seq %d at %v", s, seqs[s].Invoke, s-1, seqs[s-1].Invoke)
		}
	}
}

func TestBadHeader(t *testing.T) {
	for name, in := range map[string]string{
		"empty":       "",
		"not json":    "hello\n",
		"no format":   `{"seq":1,"kind":"open","outcome":"ok"}` + "\n",
		"other":       `{"format":"fibercut-history/2","base":"2024-01-01T00:00:00Z"}` + "\n",
		"jepsen edn":  "{:type :invoke, :f :transfer}\n",
		"format null": `{"format":null}` + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := ReadHistory(strings.NewReader(in))
			if !errors.Is(err, ErrUnknownFormat) {
				t.Fatalf("err %v, want ErrUnknownFormat", err)
			}
			if !strings.Contains(err.Error(), "format") {
				t.Errorf("error does not say what is wrong: %v", err)
			}
		})
	}
	if _, err := NewWriter(io.Discard, Header{Format: "fibercut-history/9"}); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("NewWriter with format 9: %v", err)
	}
}

func historyText(t *testing.T) string {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{})
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range sampleOps() {
		if err := w.Append(op); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestTruncatedLastLine(t *testing.T) {
	full := historyText(t)
	cut := full[:len(full)-20] // mid-way through the last op
	h, ops, err := ReadHistory(strings.NewReader(cut))
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("err %v, want ErrTruncated", err)
	}
	if !strings.Contains(err.Error(), "line 5") {
		t.Errorf("error does not name line 5: %v", err)
	}
	if h.Format != FormatV1 || len(ops) != 3 {
		t.Errorf("header %+v, %d ops; want the header and 3 complete ops", h, len(ops))
	}

	// A complete last record without its newline is not truncated.
	if _, ops, err := ReadHistory(strings.NewReader(strings.TrimSuffix(full, "\n"))); err != nil || len(ops) != 4 {
		t.Errorf("no final newline: %d ops, err %v", len(ops), err)
	}
}

func TestBadLineNamed(t *testing.T) {
	lines := strings.Split(historyText(t), "\n")
	for name, bad := range map[string]string{
		"garbage": `{"seq":2,`,
		"outcome": `{"seq":2,"kind":"transfer","outcome":"timeout"}`,
		"kind":    `{"seq":2,"kind":"withdraw","outcome":"ok"}`,
	} {
		t.Run(name, func(t *testing.T) {
			l := append([]string(nil), lines...)
			l[2] = bad // line 3
			_, _, err := ReadHistory(strings.NewReader(strings.Join(l, "\n")))
			if err == nil || errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), "line 3") {
				t.Fatalf("err %v, want an error naming line 3", err)
			}
		})
	}
	if _, err := appendOne(Op{Seq: 1, Kind: KindTransfer, Outcome: "maybe"}); err == nil {
		t.Error("Append accepted outcome \"maybe\"")
	}
	if _, err := appendOne(Op{Seq: 1, Kind: "pay", Outcome: OK}); err == nil {
		t.Error("Append accepted kind \"pay\"")
	}
}

// appendOne appends op to a fresh history in memory.
func appendOne(op Op) (string, error) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{})
	if err != nil {
		return "", err
	}
	if err := w.Append(op); err != nil {
		return "", err
	}
	return buf.String(), w.Close()
}

func TestLongLine(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 200_000) // longer than bufio.Scanner's default 64 KiB
	if err := w.Append(Op{Seq: 1, Kind: KindRead, Outcome: Unknown, Error: long}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	_, ops, err := ReadHistory(&buf)
	if err != nil || len(ops) != 1 || ops[0].Error != long {
		t.Fatalf("%d ops, err %v", len(ops), err)
	}
}

// failingWriter accepts ok writes, then fails every one.
type failingWriter struct{ ok int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.ok == 0 {
		return 0, errors.New("disk full")
	}
	f.ok--
	return len(p), nil
}

func TestWriteErrorSticks(t *testing.T) {
	if _, err := NewWriter(&failingWriter{}, Header{}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("NewWriter on a failing writer: %v", err)
	}
	w, err := NewWriter(&failingWriter{ok: 1}, Header{}) // the header goes through
	if err != nil {
		t.Fatal(err)
	}
	op := sampleOps()[0]
	if err := w.Append(op); err != nil {
		t.Fatal(err) // buffered
	}
	if err := w.Flush(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Flush: %v", err)
	}
	if err := w.Append(op); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Append after a failed flush: %v, want the same error", err)
	}
	if err := w.Close(); err == nil {
		t.Error("Close after a failed flush returned nil")
	}
}

func TestClassify(t *testing.T) {
	timeout := context.DeadlineExceeded
	netErr := &net.OpError{Op: "dial", Err: os.ErrDeadlineExceeded}
	for _, c := range []struct {
		status  int
		err     error
		unknown bool
		want    Outcome
	}{
		{200, nil, false, OK},
		{201, nil, false, OK},
		{204, nil, false, OK},
		{200, io.ErrUnexpectedEOF, false, OK}, // committed; only the body was lost
		{400, nil, false, Fail},
		{401, nil, false, Fail},
		{403, nil, false, Fail},
		{404, nil, false, Fail},
		{409, nil, false, Fail},
		{429, nil, false, Fail},
		{503, nil, false, Fail},
		{503, nil, true, Unknown},
		{409, nil, true, Unknown},
		{500, nil, false, Unknown},
		{502, nil, false, Unknown},
		{504, nil, false, Unknown},
		{302, nil, false, Unknown},
		{0, timeout, false, Unknown},
		{0, netErr, false, Unknown},
		{0, io.EOF, false, Unknown},
		{0, nil, false, Unknown},
		{503, io.ErrUnexpectedEOF, false, Unknown},
	} {
		if got := Classify(c.status, c.err, c.unknown); got != c.want {
			t.Errorf("Classify(%d, %v, %v) = %s, want %s", c.status, c.err, c.unknown, got, c.want)
		}
	}
}
