package verify

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// FormatV1 names the history format this package writes and reads: a
// [Header] line, then one [Op] per line, then an end record
// {"end":{"ops":N}} written by [Writer.Close], all JSON. Without the end
// record a history cannot be told from one cut short at a line boundary.
const FormatV1 = "fibercut-history/1"

// Sentinel errors.
var (
	// ErrUnknownFormat: the file is not a history, or one of a format this
	// fibercut does not read.
	ErrUnknownFormat = errors.New("verify: unknown history format")
	// ErrTruncated: the history has no end record, or its last line stops
	// mid-record, as when the recorder was killed or the file was cut
	// short. [ReadHistory] still returns the header and every complete op.
	ErrTruncated = errors.New("verify: history truncated")
	// ErrClosed: Append or Flush after Close.
	ErrClosed = errors.New("verify: history writer closed")
)

// Outcome is what a client learnt from one operation.
type Outcome string

const (
	// OK: the service acknowledged the operation; it was applied.
	OK Outcome = "ok"
	// Fail: the service answered that nothing was applied.
	Fail Outcome = "fail"
	// Unknown: it may or may not have been applied (timeout, lost
	// connection, an error on the way to the ledger). Never a failure:
	// settled later from the final state.
	Unknown Outcome = "unknown"
)

// Valid reports whether o is one of [OK], [Fail] and [Unknown].
func (o Outcome) Valid() bool { return o == OK || o == Fail || o == Unknown }

// Kinds of operation.
const (
	KindOpen     = "open"     // POST /api/accounts
	KindTransfer = "transfer" // POST /api/accounts/{id}/transfers
	KindRead     = "read"     // GET /api/accounts/{id}
)

func validKind(k string) bool { return k == KindOpen || k == KindTransfer || k == KindRead }

// Header is the first line of a history file. It says which format the rest
// is in and when the base instant, from which every Op's times count, was.
type Header struct {
	// Format is [FormatV1]; [NewWriter] fills it in.
	Format string `json:"format"`
	// Base is the wall-clock time of the base instant, for humans and for
	// lining the history up with other logs. Op times are monotonic
	// durations since that instant, not offsets of this wall clock.
	Base time.Time `json:"base"`
	// Lab is the lab the load ran against, when known.
	Lab string `json:"lab,omitempty"`
	// Target is where requests went (the gateway URL).
	Target string `json:"target,omitempty"`
	// Users is the number of virtual users; Rate the target transfers per
	// second, all users together.
	Users int     `json:"users,omitempty"`
	Rate  float64 `json:"rate,omitempty"`
}

// Op is one client operation: one HTTP request and what came of it. A
// retried request is a new Op with the same Key.
type Op struct {
	// Seq numbers operations in order of invocation, from 1.
	Seq int64 `json:"seq"`
	// User is the index of the virtual user that made the call.
	User int `json:"user"`
	// Kind is [KindOpen], [KindTransfer] or [KindRead].
	Kind string `json:"kind"`
	// Key is the transfer's idempotency key; every attempt of one transfer
	// carries the same key.
	Key string `json:"key,omitempty"`
	// Attempt counts the tries of one operation (one transfer key, one
	// user's account opening), from 1.
	Attempt int `json:"attempt,omitempty"`
	// From is the account acting: the payer of a transfer, the account read,
	// or the account opened (once known). To is a transfer's payee.
	From      string `json:"from,omitempty"`
	To        string `json:"to,omitempty"`
	AmountFen int64  `json:"amount_fen,omitempty"`
	// Invoke and Complete are nanoseconds since the history's base instant,
	// on one monotonic clock: when the request was started and when its
	// answer (or the error) came back.
	Invoke   time.Duration `json:"invoke_ns"`
	Complete time.Duration `json:"complete_ns"`
	Outcome  Outcome       `json:"outcome"`
	// Error says what went wrong when the outcome is not ok.
	Error string `json:"error,omitempty"`
	// Status is the HTTP status, 0 when no answer came.
	Status int `json:"status,omitempty"`
	// ServedBy is the DC that answered, HomeDC the user's home DC, State
	// serving, switching or switched, each as last known.
	ServedBy string `json:"served_by,omitempty"`
	HomeDC   string `json:"home_dc,omitempty"`
	State    string `json:"state,omitempty"`
	// Revision is the etcd revision that committed a transfer, when known.
	Revision int64 `json:"revision,omitempty"`
	// Replayed: the key had already moved money (an earlier attempt whose
	// answer was lost committed it); this answer returns that transfer.
	Replayed bool `json:"replayed,omitempty"`
	// BalanceFen is the account's balance after an ok open, transfer or
	// read; 0 when unknown.
	BalanceFen int64 `json:"balance_fen,omitempty"`
	// Source is who made the operation: "" for the load generator,
	// [SourceAudience] for the hall (recorded by the gateway). The checks
	// count every source together and [Result.Sources] reports each named
	// one apart.
	Source string `json:"source,omitempty"`
}

// SourceAudience marks operations the gateway recorded for anyone but the
// load generator: the hall's phones, or whoever else called the public API.
const SourceAudience = "audience"

// Latency is how long the operation took.
func (op Op) Latency() time.Duration { return op.Complete - op.Invoke }

// Classify is the rule that turns an HTTP exchange into an outcome. status is
// the HTTP status (0 when no answer arrived), err the transport error
// (timeout, refused or dropped connection), unknownFlag the Unknown field of
// the service's error body.
//
//   - 2xx: [OK]. The service committed; an error reading the body afterwards
//     loses only details.
//   - no status, or a transport error: [Unknown]. The request may have been
//     applied before the answer was lost; a timeout is never a failure.
//   - unknownFlag set, whatever the status: [Unknown].
//   - 4xx: [Fail], a definite rejection; nothing was applied.
//   - 503: [Fail]; the service says nothing was applied (no quorum here).
//   - any other status (500, 502, 504, 1xx, 3xx): [Unknown].
func Classify(status int, err error, unknownFlag bool) Outcome {
	switch {
	case status >= 200 && status <= 299:
		return OK
	case status == 0 || err != nil:
		return Unknown
	case unknownFlag:
		return Unknown
	case status >= 400 && status <= 499:
		return Fail
	case status == 503, status == 507:
		// No quorum here, or the ledger full: refused before anything
		// was proposed (an answer that may have applied says unknown).
		return Fail
	default:
		return Unknown
	}
}

// Clock is a history's one monotonic clock. It also numbers operations, so
// that Seq order is invocation order. Safe for concurrent use.
type Clock struct {
	base time.Time
	mu   sync.Mutex
	seq  int64
}

// NewClock returns a clock counting from base, which must come from
// time.Now in this process so that it carries a monotonic reading.
func NewClock(base time.Time) *Clock { return &Clock{base: base} }

// Base is the instant the clock counts from.
func (c *Clock) Base() time.Time { return c.base }

// Since is the time elapsed since the base instant.
func (c *Clock) Since() time.Duration { return time.Since(c.base) }

// Begin numbers a new operation and stamps its invocation time. Under one
// lock, so that a larger Seq never has an earlier Invoke.
func (c *Clock) Begin() (seq int64, invoke time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	return c.seq, time.Since(c.base)
}

// Writer records a history. It is safe for concurrent use and buffered:
// call Flush to push what was appended to the underlying writer, and Close
// at the end. It never closes the underlying writer.
type Writer struct {
	clock  *Clock
	header Header

	mu     sync.Mutex
	bw     *bufio.Writer
	err    error // first write error; sticky
	closed bool
	n      int64
}

// NewWriter writes h as the header line and returns a Writer for the ops
// that follow. An empty h.Format becomes [FormatV1]; a zero h.Base becomes
// time.Now(). The header is flushed at once, so even a history whose
// recorder dies says what it is.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	if h.Format == "" {
		h.Format = FormatV1
	}
	if h.Format != FormatV1 {
		return nil, fmt.Errorf("%w %q: this fibercut writes %q", ErrUnknownFormat, h.Format, FormatV1)
	}
	if h.Base.IsZero() {
		h.Base = time.Now()
	}
	hw := &Writer{clock: NewClock(h.Base), header: h, bw: bufio.NewWriterSize(w, 64<<10)}
	line, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("verify: encode history header: %w", err)
	}
	if err := hw.writeLine(line); err != nil {
		return nil, err
	}
	if err := hw.bw.Flush(); err != nil {
		return nil, fmt.Errorf("verify: write history header: %w", err)
	}
	return hw, nil
}

// Header is the header as written.
func (w *Writer) Header() Header { return w.header }

// Clock is the clock every op's times must come from.
func (w *Writer) Clock() *Clock { return w.clock }

// Len is the number of ops appended.
func (w *Writer) Len() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// Append records op. It fails on an op that the reader would reject (an
// unknown kind or outcome), after Close, and once any write has failed.
func (w *Writer) Append(op Op) error {
	if !validKind(op.Kind) {
		return fmt.Errorf("verify: append op %d: kind %q is not open, transfer or read", op.Seq, op.Kind)
	}
	if !op.Outcome.Valid() {
		return fmt.Errorf("verify: append op %d: outcome %q is not ok, fail or unknown", op.Seq, op.Outcome)
	}
	line, err := json.Marshal(op)
	if err != nil {
		return fmt.Errorf("verify: encode op %d: %w", op.Seq, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.writeLine(line); err != nil {
		return err
	}
	w.n++
	return nil
}

// writeLine writes line and a newline. Callers hold mu, or own w alone.
func (w *Writer) writeLine(line []byte) error {
	if w.closed {
		return ErrClosed
	}
	if w.err != nil {
		return w.err
	}
	if _, err := w.bw.Write(line); err != nil {
		w.err = fmt.Errorf("verify: write history: %w", err)
		return w.err
	}
	if err := w.bw.WriteByte('\n'); err != nil {
		w.err = fmt.Errorf("verify: write history: %w", err)
		return w.err
	}
	return nil
}

// Flush writes buffered ops to the underlying writer.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	return w.flush()
}

func (w *Writer) flush() error {
	if w.err != nil {
		return w.err
	}
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("verify: write history: %w", err)
	}
	return w.err
}

// Close writes the end record, flushes and stops the writer; later calls
// to Close return nil, and Append and Flush return [ErrClosed]. It does
// not close the underlying writer.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	defer func() { w.closed = true }()
	if w.err != nil {
		return w.err
	}
	line, _ := json.Marshal(endRecord{End: &historyEnd{Ops: w.n}})
	if err := w.writeLine(line); err != nil {
		return err
	}
	return w.flush()
}

// endRecord is a history's last line.
type endRecord struct {
	End *historyEnd `json:"end"`
}

type historyEnd struct {
	Ops int64 `json:"ops"` // the ops before it
}

// maxLine bounds one line of a history; ops are a few hundred bytes.
const maxLine = 4 << 20

// ReadHistory reads a history written by [Writer]. It rejects a file whose
// first line is not a header of a format it knows ([ErrUnknownFormat]),
// and a line that is not a valid op, naming the line. When only the last
// line is incomplete (the recorder died mid-write) it returns the header,
// every complete op and an error wrapping [ErrTruncated]. Blank lines are
// skipped.
func ReadHistory(r io.Reader) (Header, []Op, error) {
	var h Header
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	unterminated := false // the last token had no newline
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		adv, tok, err := bufio.ScanLines(data, atEOF)
		if atEOF && tok != nil && adv == len(data) && bytes.IndexByte(data, '\n') < 0 {
			unterminated = true
		}
		return adv, tok, err
	})
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return h, nil, fmt.Errorf("verify: history line 1: %w", err)
		}
		return h, nil, fmt.Errorf("%w: empty file, no header line", ErrUnknownFormat)
	}
	if err := decodeHeader(sc.Bytes(), &h); err != nil {
		return h, nil, err
	}
	var ops []Op
	line := 1
	ended := 0 // the end record's line
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		if ended != 0 {
			return h, ops, fmt.Errorf("verify: history line %d: a record after the end record of line %d", line, ended)
		}
		if bytes.HasPrefix(bytes.TrimSpace(b), []byte(`{"end"`)) {
			var e endRecord
			if err := json.Unmarshal(b, &e); err != nil || e.End == nil {
				if unterminated {
					return h, ops, fmt.Errorf("%w: line %d stops mid-record", ErrTruncated, line)
				}
				return h, ops, fmt.Errorf("verify: history line %d: not an end record: %v", line, err)
			}
			if e.End.Ops != int64(len(ops)) {
				return h, ops, fmt.Errorf("verify: history line %d: the end record counts %d ops, the history holds %d", line, e.End.Ops, len(ops))
			}
			ended = line
			continue
		}
		var op Op
		if err := json.Unmarshal(b, &op); err != nil {
			if unterminated {
				return h, ops, fmt.Errorf("%w: line %d stops mid-record: %w", ErrTruncated, line, err)
			}
			return h, ops, fmt.Errorf("verify: history line %d: %w", line, err)
		}
		if !validKind(op.Kind) {
			return h, ops, fmt.Errorf("verify: history line %d: kind %q is not open, transfer or read", line, op.Kind)
		}
		if !op.Outcome.Valid() {
			return h, ops, fmt.Errorf("verify: history line %d: outcome %q is not ok, fail or unknown", line, op.Outcome)
		}
		ops = append(ops, op)
	}
	if err := sc.Err(); err != nil {
		return h, ops, fmt.Errorf("verify: history line %d: %w", line+1, err)
	}
	if ended == 0 {
		return h, ops, fmt.Errorf("%w: no end record after line %d: the history may have been cut short (a recorder killed, or a file cut at a line boundary)", ErrTruncated, line)
	}
	return h, ops, nil
}

func decodeHeader(b []byte, h *Header) error {
	var probe struct {
		Format *string `json:"format"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return fmt.Errorf("%w: line 1 is not a JSON header: %w", ErrUnknownFormat, err)
	}
	if probe.Format == nil {
		return fmt.Errorf("%w: line 1 has no \"format\" field; not a fibercut history", ErrUnknownFormat)
	}
	if *probe.Format != FormatV1 {
		return fmt.Errorf("%w %q on line 1: this fibercut reads %q", ErrUnknownFormat, *probe.Format, FormatV1)
	}
	if err := json.Unmarshal(b, h); err != nil {
		return fmt.Errorf("verify: history line 1: header: %w", err)
	}
	return nil
}
