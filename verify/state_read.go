package verify

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/fibercut/fibercut/ledgerkeys"
)

// The ledger's key space (package ledgerkeys, which the demo app writes
// by).
const (
	prefixAccount  = ledgerkeys.Accounts  // acct/<id>: the account record (JSON)
	prefixBalance  = ledgerkeys.Balances  // bal/<id>: the balance in fen, decimal
	prefixTransfer = ledgerkeys.Transfers // xfer/<from>/<key>: the transfer (JSON)
)

// ErrCorruptLedger: a balance or transfer value in the ledger does not
// parse. [ReadFinalState] names the key.
var ErrCorruptLedger = errors.New("verify: corrupt ledger value")

// Variables so that tests can make them small.
var (
	// readPage is how many keys one Get of [ReadFinalState] returns.
	readPage int64 = 10_000
	// hashCallTimeout bounds one HashKV call: a member that is down
	// costs this long.
	hashCallTimeout = 5 * time.Second
)

const (
	// readTimeout bounds one Get; hashTimeout the HashKV calls to one
	// member, retries while it has not caught up with the revision
	// included.
	readTimeout = 10 * time.Second
	hashTimeout = 30 * time.Second
)

// ReadFinalState reads the ledger's final state through cli: every account,
// balance and transfer at one revision (that of the first read), then each
// member's hash of the key space at that revision, asked of the member's
// client URL (members maps a DC to a URL like http://10.200.0.10:2379). A
// member that cannot be asked gets an Err, not an error of ReadFinalState:
// the check that members agree then fails and says why. initialBalance is
// what every account was opened with.
//
// Call it once the faults are healed and the members have caught up; a
// member still behind the revision is asked again, up to 30 s. A member
// that does not answer costs 5 s.
func ReadFinalState(ctx context.Context, cli *clientv3.Client, members map[string]string, initialBalance int64) (FinalState, error) {
	st := FinalState{
		InitialBalanceFen: initialBalance,
		Balances:          map[string]int64{},
		Transfers:         map[string]StoredTransfer{},
	}
	var rev int64 // 0 until the first Get fixes it
	err := readPrefix(ctx, cli, prefixAccount, &rev, func(kv *mvccpb.KeyValue) error {
		st.Accounts = append(st.Accounts, string(kv.Key[len(prefixAccount):]))
		return nil
	})
	if err != nil {
		return st, err
	}
	err = readPrefix(ctx, cli, prefixBalance, &rev, func(kv *mvccpb.KeyValue) error {
		id := string(kv.Key[len(prefixBalance):])
		fen, err := strconv.ParseInt(string(kv.Value), 10, 64)
		if err != nil {
			return fmt.Errorf("%w: %s = %q: %w", ErrCorruptLedger, kv.Key, kv.Value, err)
		}
		st.Balances[id] = fen
		return nil
	})
	if err != nil {
		return st, err
	}
	err = readPrefix(ctx, cli, prefixTransfer, &rev, func(kv *mvccpb.KeyValue) error {
		k := string(kv.Key[len(prefixTransfer):])
		id, ok := splitXferKey(k)
		if !ok {
			return fmt.Errorf("%w: %s: not xfer/<from>/<key>", ErrCorruptLedger, kv.Key)
		}
		var t StoredTransfer
		if err := json.Unmarshal(kv.Value, &t); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrCorruptLedger, kv.Key, err)
		}
		if t.From == "" {
			t.From = id.from
		}
		t.Revision = kv.ModRevision // the value holds 0: it is written before its commit has one
		st.Transfers[k] = t
		return nil
	})
	if err != nil {
		return st, err
	}
	slices.Sort(st.Accounts)
	st.Revision = rev
	st.Members = hashMembers(ctx, cli, members, rev)
	return st, nil
}

// readPrefix reads every key under prefix, a page at a time, calling fn on
// each. The first Get of all, made with *rev 0, sets *rev to its revision;
// every other Get reads at *rev.
func readPrefix(ctx context.Context, cli *clientv3.Client, prefix string, rev *int64, fn func(*mvccpb.KeyValue) error) error {
	end := clientv3.GetPrefixRangeEnd(prefix)
	key := prefix
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(readPage)}
		if *rev != 0 {
			opts = append(opts, clientv3.WithRev(*rev))
		}
		gctx, cancel := context.WithTimeout(ctx, readTimeout)
		resp, err := cli.Get(gctx, key, opts...)
		cancel()
		if err != nil {
			return fmt.Errorf("verify: read %s* at revision %d: %w", prefix, *rev, err)
		}
		if *rev == 0 {
			*rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			if err := fn(kv); err != nil {
				return err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// hashMembers asks every member for its hash of the key space at rev, all
// at once, and returns the answers sorted by DC.
func hashMembers(ctx context.Context, cli *clientv3.Client, members map[string]string, rev int64) []MemberHash {
	out := make([]MemberHash, 0, len(members))
	for dc := range members {
		out = append(out, MemberHash{DC: dc})
	}
	slices.SortFunc(out, func(a, b MemberHash) int { return cmp.Compare(a.DC, b.DC) })
	var wg sync.WaitGroup
	for i := range out {
		wg.Go(func() {
			hash, err := hashMember(ctx, cli, members[out[i].DC], rev)
			out[i].Hash = hash
			if err != nil {
				out[i].Err = err.Error()
			}
		})
	}
	wg.Wait()
	return out
}

// hashMember asks one member for its HashKV at rev, again while the member
// says rev is still in its future (it has not caught up yet).
func hashMember(ctx context.Context, cli *clientv3.Client, url string, rev int64) (uint32, error) {
	ctx, cancel := context.WithTimeout(ctx, hashTimeout)
	defer cancel()
	for {
		cctx, ccancel := context.WithTimeout(ctx, hashCallTimeout)
		resp, err := cli.HashKV(cctx, url, rev)
		ccancel()
		if err == nil {
			return resp.Hash, nil
		}
		if !errors.Is(err, rpctypes.ErrFutureRev) {
			return 0, fmt.Errorf("hash of %s at revision %d: %w", url, rev, err)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("hash of %s at revision %d: %w (still behind at %v)", url, rev, err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// SaveState writes st to path as JSON, atomically: to a temporary file in
// the same directory, synced, then renamed over path.
func SaveState(path string, st FinalState) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("verify: save state %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(f, 256<<10)
	if err := json.NewEncoder(bw).Encode(st); err != nil {
		return fmt.Errorf("verify: save state %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("verify: save state %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("verify: save state %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("verify: save state %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("verify: save state %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("verify: save state %s: %w", path, err)
	}
	return nil
}

// LoadState reads a state written by [SaveState]. It rejects a file that is
// not one JSON object, or one without a positive initial balance (a history
// or some other JSON passed by mistake), saying which file and what is
// wrong.
func LoadState(path string) (FinalState, error) {
	var st FinalState
	f, err := os.Open(path)
	if err != nil {
		return st, fmt.Errorf("verify: load state: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(bufio.NewReaderSize(f, 256<<10))
	if err := dec.Decode(&st); err != nil {
		if errors.Is(err, io.EOF) {
			return st, fmt.Errorf("verify: load state %s: empty file", path)
		}
		if se, ok := errors.AsType[*json.SyntaxError](err); ok {
			return st, fmt.Errorf("verify: load state %s: not JSON at byte %d: %w", path, se.Offset, err)
		}
		return st, fmt.Errorf("verify: load state %s: %w", path, err)
	}
	if err := dec.Decode(&json.RawMessage{}); !errors.Is(err, io.EOF) {
		return st, fmt.Errorf("verify: load state %s: data after the JSON object (is it a history?)", path)
	}
	if st.InitialBalanceFen <= 0 {
		return st, fmt.Errorf("verify: load state %s: initial_balance_fen is %d; a final state has the positive balance accounts open with", path, st.InitialBalanceFen)
	}
	if st.Balances == nil {
		st.Balances = map[string]int64{}
	}
	if st.Transfers == nil {
		st.Transfers = map[string]StoredTransfer{}
	}
	return st, nil
}
