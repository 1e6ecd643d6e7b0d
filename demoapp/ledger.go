package demoapp

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/fibercut/fibercut/ledgerkeys"
	"github.com/fibercut/fibercut/nodeapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// Keys in the ledger's key space: package ledgerkeys is their one
// definition.
const (
	prefixAccount  = ledgerkeys.Accounts  // acct/<id>: accountRecord (JSON)
	prefixBalance  = ledgerkeys.Balances  // bal/<id>: balance in fen, decimal
	prefixTransfer = ledgerkeys.Transfers // xfer/<from>/<key>: Transfer (JSON)
)

// Ports of a ledger member on its DC's WAN address.
const (
	PeerPort   = nodeapi.LedgerPeerPort
	ClientPort = nodeapi.LedgerClientPort
)

// Errors of the ledger, tested with errors.Is.
var (
	ErrNoAccount     = errors.New("no such account")
	ErrBadToken      = errors.New("wrong token")
	ErrFunds         = errors.New("insufficient funds")
	ErrKeyReused     = errors.New("idempotency key already used for another transfer")
	ErrNoQuorum      = errors.New("ledger unavailable here: no quorum")
	ErrUnknownResult = errors.New("transfer outcome unknown")
	// ErrFull: the ledger's backend quota is reached (etcd's NOSPACE
	// alarm); etcd refused the write, so nothing was applied.
	ErrFull = errors.New("the ledger is full: its backend quota is reached")
)

// Peer is one ledger member: a DC and where its peers reach it, by its WAN
// address (a Docker lab) or by a stable host name (a Kubernetes lab, where
// a pod's address changes on each restart).
type Peer struct {
	DC   string
	City string
	WAN  netip.Addr // invalid when the peer goes by Host
	Host string     // "" when the peer goes by WAN
}

// Addr is the host part of the peer's URLs: its name, or its address.
func (p Peer) Addr() string {
	if p.Host != "" {
		return p.Host
	}
	return p.WAN.String()
}

// HostPort is the peer's address and port, as a URL's host.
func (p Peer) HostPort(port int) string {
	return net.JoinHostPort(p.Addr(), strconv.Itoa(port))
}

// TransferKey is the ledger key of a transfer: idempotency keys are scoped to
// the account that pays.
func TransferKey(from, key string) string { return ledgerkeys.Transfer(from, key) }

// BalanceKey is the ledger key of an account's balance.
func BalanceKey(id string) string { return ledgerkeys.Balance(id) }

type accountRecord struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	HomeDC      string `json:"home_dc"`
	HomeCity    string `json:"home_city"`
	TokenSHA256 string `json:"token_sha256"`
}

// LedgerConfig configures a DC's ledger member.
type LedgerConfig struct {
	DC    string
	Dir   string // data directory (on the DC's volume)
	Token string // cluster token: the lab name
	Peers []Peer // every member, this DC included
	// TickMS and ElectionMS are the raft heartbeat and election timeout.
	TickMS, ElectionMS int
	// Listen, when valid, is where the member listens instead of its WAN
	// address (tests on loopback).
	MaxBatch int // transfers per group commit; 1 disables batching
	// QuotaBytes is the backend quota; DefaultQuotaBytes when 0.
	QuotaBytes int64

	// breakExtraFen, when not 0, is credited to every recipient on top of
	// the amount: a deliberately broken ledger, for tests that prove the
	// checker can fail. Set only through [EnvBreakLedger].
	breakExtraFen int64
}

// The ledger's space: a lab's five members share one host's disk, and a
// drill's ledger holds some 300 B per account and 270 B per transfer, so
// 1 GiB holds millions of either between resets. A lab holds 5 of them.
//
// Nothing reads the ledger at a revision older than a moment: the drill's
// final read is made after the load has stopped, at the current revision.
const (
	DefaultQuotaBytes = 1 << 30
	CompactAfter      = time.Minute
)

// EnvLedgerQuota sets a node's backend quota in bytes (tests fill a small
// one).
const EnvLedgerQuota = "FIBERCUT_LEDGER_QUOTA"

// EnvBreakLedger, set to "extra-fen" in a node's environment, breaks its
// ledger on purpose: every transfer credits one fen more than it debits.
// It exists so that tests can prove the drill's checker catches it.
const EnvBreakLedger = "FIBERCUT_TEST_BREAK_LEDGER"

// Ledger is a DC's part of the replicated ledger: its embedded etcd member,
// a client of that member alone for every read and write, a health manager
// that asks every member for its status and so knows the leader and which
// members are current, and the group-commit writer.
//
// Reading and writing through the local member only is what keeps a link
// cut from stalling anyone: a client balancing over every member sends some
// requests to a blackholed one, where they hang until their deadline (and
// a plain clientv3 keeps such an endpoint for about 10 s).
type Ledger struct {
	cfg    LedgerConfig
	self   Peer
	member *embed.Etcd
	// probes ask each member for its status over a connection kept open
	// (clientv3's Maintenance.Status dials anew on every call).
	probes []memberProbe
	// local talks to this DC's own member only. The writer uses it: it
	// runs in the leader's DC, so its member is the leader, and no link
	// cut can leave one of its transactions hanging on another member.
	local  *clientv3.Client
	view   atomic.Pointer[clusterView]
	writer *writer

	// accounts caches account records (they never change while they
	// exist); watchAccounts drops one when its key is deleted, as a ledger
	// reset does, so that no record outlives the account it copies.
	accounts sync.Map // id → accountRecord
	nAcct    atomic.Int64
	opens    chan *openReq // openings waiting for their group
	stop     context.CancelFunc
	done     chan struct{}
}

// clusterView is what the health manager last saw.
type clusterView struct {
	At       time.Time
	Healthy  []string // DCs whose members answered and have a leader
	LeaderDC string   // "" when no reachable member knows a leader
	// Reachable is whether this DC reaches the leader's member: when not,
	// this DC cannot commit and says so at once.
	Reachable bool
}

func peerURL(p Peer, port int) url.URL {
	return url.URL{Scheme: "http", Host: p.HostPort(port)}
}

// listenURL is where a member listens: its WAN address, or every address
// of its network namespace when it goes by name (a pod has one interface,
// and its name may not resolve yet when it starts).
func listenURL(self Peer, port int) url.URL {
	if self.Host != "" {
		return url.URL{Scheme: "http", Host: net.JoinHostPort("0.0.0.0", strconv.Itoa(port))}
	}
	return peerURL(self, port)
}

// StartLedger starts the DC's member and returns when it has joined the
// cluster or ctx is done. On a data directory that already holds a member
// (after power-off), the member restarts from it.
func StartLedger(ctx context.Context, cfg LedgerConfig) (*Ledger, error) {
	l := &Ledger{cfg: cfg, done: make(chan struct{}), opens: make(chan *openReq, 4*maxOpenBatch)}
	var initial string
	for _, p := range cfg.Peers {
		if p.DC == cfg.DC {
			l.self = p
		}
		u := peerURL(p, PeerPort)
		if initial != "" {
			initial += ","
		}
		initial += p.DC + "=" + u.String()
	}
	if l.self.DC == "" {
		return nil, fmt.Errorf("demoapp: dc %s is not among the ledger peers", cfg.DC)
	}
	ec := embed.NewConfig()
	ec.Name = cfg.DC
	ec.Dir = cfg.Dir
	ec.TickMs = uint(cfg.TickMS)
	ec.ElectionMs = uint(cfg.ElectionMS)
	ec.InitialCluster = initial
	ec.InitialClusterToken = cfg.Token
	ec.ClusterState = embed.ClusterStateFlagNew
	pu := peerURL(l.self, PeerPort)
	cu := peerURL(l.self, ClientPort)
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{listenURL(l.self, PeerPort)}, []url.URL{pu}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{listenURL(l.self, ClientPort)}, []url.URL{cu}
	ec.ListenMetricsUrls = nil
	ec.MaxTxnOps = 4096
	ec.MaxRequestBytes = 8 << 20
	ec.LogLevel = "error"
	ec.Logger = "zap"
	ec.PreVote = true
	ec.SnapshotCount = 20000
	// etcd keeps only SnapshotCatchUpEntries of raft log in memory (5,000
	// by default, compacted every 100 entries since 3.6): a member cut off
	// for longer than that many entries can only catch up from a snapshot
	// of the whole database, which on a loaded two-core lab was seen to
	// leave a rejoining member stuck for over a minute (drill atec-2018:
	// hz-a at index 1,875, the others at 10,855). Keep enough log for a
	// DC cut off for a minute or more at the lab's rate (a few hundred
	// entries a second) to catch up from the log: about 2 KB an entry,
	// so some 100 MB per member at most.
	ec.SnapshotCatchUpEntries = 50000
	// The ledger must stay healthy for days of drills: revisions older
	// than CompactAfter are compacted (etcd's periodic compactor, every
	// CompactAfter), a reset is followed by a defrag (drill), and the
	// backend has an explicit quota. Past it etcd raises NOSPACE: health
	// says so and writes fail definitely (ErrFull).
	ec.AutoCompactionMode = "periodic"
	ec.AutoCompactionRetention = CompactAfter.String()
	ec.QuotaBackendBytes = cmp.Or(cfg.QuotaBytes, DefaultQuotaBytes)
	member, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("demoapp: start ledger member %s: %w", cfg.DC, err)
	}
	l.member = member
	select {
	case <-member.Server.ReadyNotify():
	case err := <-member.Err():
		member.Close()
		return nil, fmt.Errorf("demoapp: ledger member %s: %w", cfg.DC, err)
	case <-ctx.Done():
		member.Close()
		return nil, ctx.Err()
	}
	l.probes = make([]memberProbe, len(cfg.Peers))
	for i, p := range cfg.Peers {
		c, err := newProbeClient(peerURL(p, ClientPort))
		if err != nil {
			l.closeProbes()
			member.Close()
			return nil, fmt.Errorf("demoapp: ledger status client for %s: %w", p.DC, err)
		}
		l.probes[i] = memberProbe{peer: p, cli: c, mc: pb.NewMaintenanceClient(c.ActiveConnection())}
	}
	self := peerURL(l.self, ClientPort)
	l.local, err = clientv3.New(clientv3.Config{
		Endpoints: []string{self.String()}, DialTimeout: time.Second,
		Logger: zap.NewNop(), MaxCallSendMsgSize: 16 << 20,
	})
	if err != nil {
		l.closeProbes()
		member.Close()
		return nil, fmt.Errorf("demoapp: local ledger client: %w", err)
	}
	mctx, cancel := context.WithCancel(context.Background())
	l.stop = cancel
	l.writer = newWriter(l, max(cfg.MaxBatch, 1))
	go l.watchMembers(mctx)
	go l.writer.run(mctx)
	go l.watchAccounts(mctx)
	go l.runOpener(mctx)
	return l, nil
}

// watchAccounts drops cached account records whose key is deleted. When
// the watch breaks (compaction, a restarted member), events may have been
// missed: the whole cache is dropped before watching again.
func (l *Ledger) watchAccounts(ctx context.Context) {
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(ctx)
		for resp := range l.local.Watch(wctx, prefixAccount, clientv3.WithPrefix(), clientv3.WithFilterPut()) {
			if resp.Err() != nil {
				break
			}
			for _, ev := range resp.Events {
				if _, ok := l.accounts.LoadAndDelete(strings.TrimPrefix(string(ev.Kv.Key), prefixAccount)); ok {
					l.nAcct.Add(-1)
				}
			}
		}
		cancel()
		l.accounts.Range(func(k, _ any) bool {
			if _, ok := l.accounts.LoadAndDelete(k); ok {
				l.nAcct.Add(-1)
			}
			return true
		})
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Close stops the writer, the client and the member.
func (l *Ledger) Close() {
	l.stop()
	l.local.Close()
	l.closeProbes()
	l.member.Close()
}

// View returns what the endpoint manager last saw of the cluster.
func (l *Ledger) View() clusterView {
	if v := l.view.Load(); v != nil {
		return *v
	}
	return clusterView{}
}

// OK reports whether this DC can serve: it reaches the leader's member, and
// its own member, which serves its reads and writes, is current (not
// catching up after a partition).
func (l *Ledger) OK() bool {
	v := l.View()
	return v.LeaderDC != "" && v.Reachable && time.Since(v.At) < time.Second && slices.Contains(v.Healthy, l.self.DC)
}

// A member is healthy only when it is at most maxLagEntries behind the most
// advanced member, and has been healthy for rejoinHold.
const (
	maxLagEntries = 100
	rejoinHold    = time.Second
)

// probeInterval is how often the health manager asks every member for its
// status.
const probeInterval = 150 * time.Millisecond

// watchMembers asks every member for its status every probeInterval and
// records what [judge] makes of the answers.
func (l *Ledger) watchMembers(ctx context.Context) {
	tick := time.NewTicker(probeInterval)
	defer tick.Stop()
	lastBad := map[string]time.Time{} // when each member was last unhealthy
	for {
		answers := make([]memberStatus, len(l.probes))
		var wg sync.WaitGroup
		for i, pr := range l.probes {
			wg.Go(func() {
				sctx, cancel := context.WithTimeout(ctx, probeInterval)
				defer cancel()
				st, err := pr.mc.Status(sctx, &pb.StatusRequest{})
				a := memberStatus{peer: pr.peer}
				if err == nil && st.Header != nil {
					a = memberStatus{peer: pr.peer, answered: true, leader: st.Leader, member: st.Header.MemberId,
						committed: st.RaftIndex, applied: st.RaftAppliedIndex}
				}
				answers[i] = a
			})
		}
		wg.Wait()
		view := judge(answers, lastBad, time.Now())
		l.view.Store(view)
		slog.Debug("ledger view", "dc", l.cfg.DC, "healthy", view.Healthy, "leader", view.LeaderDC)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// memberStatus is one member's answer to a status probe.
type memberStatus struct {
	peer     Peer
	answered bool
	leader   uint64 // the leader's member id; 0 while it knows none (an election)
	member   uint64
	// committed is the last raft entry it knows committed; applied, the
	// last it applied to its store, which its reads wait for.
	committed, applied uint64
}

// judge makes a view of the cluster from one round of status answers: the
// leader is the one most members follow, and a member is healthy when it
// answered, follows that leader, and is current. lastBad (when each DC's
// member was last cut off, behind, or following another leader) is updated.
//
// A member that rejoins after a partition is far behind and answers reads
// and proposals only once it has caught up: sending it requests stalls them
// (a brownout after the heal). Its committed index catches up within one
// heartbeat, long before it has applied what it received: it is current
// only once its applied index is within maxLagEntries of the most advanced
// member's committed index, and has been for rejoinHold. A
// current member that merely knows no leader yet is in an election: it is
// not healthy until it does, but the hold is not for it.
func judge(answers []memberStatus, lastBad map[string]time.Time, now time.Time) *clusterView {
	var maxIndex uint64
	byID := map[uint64]string{}
	votes := map[uint64]int{}
	for _, a := range answers {
		if a.answered {
			maxIndex = max(maxIndex, a.committed, a.applied)
			byID[a.member] = a.peer.DC
		}
		if a.answered && a.leader != 0 {
			votes[a.leader]++
		}
	}
	var leaderID uint64
	for id, n := range votes {
		if n > votes[leaderID] || (n == votes[leaderID] && id < leaderID) {
			leaderID = id
		}
	}
	view := &clusterView{At: now}
	for _, a := range answers {
		if !a.answered || maxIndex-a.applied > maxLagEntries || (a.leader != 0 && a.leader != leaderID) {
			lastBad[a.peer.DC] = now
			continue
		}
		if a.leader == 0 || now.Sub(lastBad[a.peer.DC]) < rejoinHold {
			continue
		}
		view.Healthy = append(view.Healthy, a.peer.DC)
	}
	if dc, ok := byID[leaderID]; ok && leaderID != 0 {
		view.LeaderDC = dc
		view.Reachable = true
	}
	return view
}

// memberProbe is the health manager's line to one member.
type memberProbe struct {
	peer Peer
	cli  *clientv3.Client
	mc   pb.MaintenanceClient
}

// newProbeClient is a client of one member that fails fast while the member
// is unreachable and reconnects within a fraction of a second once it is
// back (gRPC's default backoff grows to two minutes), so that a healed
// member is seen as soon as it answers.
func newProbeClient(u url.URL) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:            []string{u.String()},
		DialKeepAliveTime:    time.Second,
		DialKeepAliveTimeout: time.Second,
		Logger:               zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 250 * time.Millisecond},
			MinConnectTimeout: 250 * time.Millisecond,
		})},
	})
}

func (l *Ledger) closeProbes() {
	for _, p := range l.probes {
		if p.cli != nil {
			p.cli.Close()
		}
	}
}

// callCtx gives every ledger call a deadline and requires a leader, so that a
// member without quorum fails at once instead of hanging.
func callCtx(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(clientv3.WithRequireLeader(ctx), d)
}

const (
	readTimeout   = 700 * time.Millisecond
	commitTimeout = 1500 * time.Millisecond
)

// idAlphabet is what account ids are made of: no 0/o, 1/l/i.
const idAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"

// AccountIDLen is the length of new account ids: 31^12, about 2^59, so an
// id is never drawn twice, across ledger resets too (a reused id would
// meet tokens and caches of the account it belonged to before).
const AccountIDLen = 12

// ValidAccountID reports whether id can be an account id: 6 to 24
// characters of idAlphabet (6 was the length before AccountIDLen). The
// gateway and the nodes refuse any other before using it.
func ValidAccountID(id string) bool {
	if len(id) < 6 || len(id) > 24 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if strings.IndexByte(idAlphabet, id[i]) < 0 {
			return false
		}
	}
	return true
}

func randomID(n int) string {
	// Rejection sampling keeps every character equally likely.
	const limit = 256 - 256%len(idAlphabet)
	b := make([]byte, 0, n)
	buf := make([]byte, 2*n)
	for len(b) < n {
		rand.Read(buf)
		for _, c := range buf {
			if int(c) < limit && len(b) < n {
				b = append(b, idAlphabet[int(c)%len(idAlphabet)])
			}
		}
	}
	return string(b)
}

func tokenHash(token string) string {
	s := sha256.Sum256([]byte(token))
	return hex.EncodeToString(s[:])
}

// OpenAccount creates an account homed in this DC holding the initial
// balance, and returns it with its token (shown once: the ledger keeps
// only its hash). It is committed by this DC's own group commit
// ([Ledger.Create]); a node routes it to the leader's DC instead (node.open).
func (l *Ledger) OpenAccount(ctx context.Context) (Account, error) {
	return l.openWith(ctx, l.Create)
}

// openWith draws an id and a token and has create commit the record,
// drawing again when create says the id is taken (errIDTaken).
func (l *Ledger) openWith(ctx context.Context, create func(context.Context, accountRecord) error) (Account, error) {
	tok := make([]byte, 16)
	rand.Read(tok)
	token := hex.EncodeToString(tok)
	for range 3 {
		id := randomID(AccountIDLen)
		rec := accountRecord{ID: id, Name: guestName(id), HomeDC: l.self.DC, HomeCity: l.self.City, TokenSHA256: tokenHash(token)}
		err := create(ctx, rec)
		if errors.Is(err, errIDTaken) {
			continue // draw another
		}
		if err != nil {
			return Account{}, err
		}
		l.cache(id, rec)
		return Account{ID: id, Token: token, Name: rec.Name, HomeDC: rec.HomeDC, HomeCity: rec.HomeCity,
			BalanceFen: InitialBalanceFen, ServedBy: l.self.DC, ServedCity: l.self.City}, nil
	}
	return Account{}, fmt.Errorf("demoapp: could not draw a free account id")
}

// guestName is an account's display name.
func guestName(id string) string { return "游客 Guest " + id }

// Create commits a new account record through this member's group
// commit: one transaction creates every account that arrived while the
// last one was in flight (a hall joining at once). It returns errIDTaken
// when the id is an account's already, and nothing else is created then.
func (l *Ledger) Create(ctx context.Context, rec accountRecord) error {
	req := &openReq{rec: rec, res: make(chan error, 1)}
	select {
	case l.opens <- req:
	case <-ctx.Done():
		return l.unavailable(ctx.Err()) // never queued
	}
	select {
	case err := <-req.res:
		return err
	case <-ctx.Done():
		return l.unavailable(ctx.Err()) // an account no one holds the token of: harmless
	}
}

// openReq is one opening waiting for its group.
type openReq struct {
	rec accountRecord
	res chan error
}

// errIDTaken: the id drawn is an account's already.
var errIDTaken = errors.New("account id taken")

// maxOpenBatch bounds the accounts one transaction creates.
const maxOpenBatch = 256

// runOpener commits the queued openings in groups: it takes what has
// queued while the last transaction ran, up to maxOpenBatch, and creates
// them all in one transaction guarded by "none of these ids exists".
func (l *Ledger) runOpener(ctx context.Context) {
	for {
		select {
		case r := <-l.opens:
			l.openGroup(ctx, drain(l.opens, []*openReq{r}, maxOpenBatch))
		case <-ctx.Done():
			return
		}
	}
}

// openGroup creates a group of accounts at once; when an id of the group
// is taken (the guard fails), each is tried alone, so that only that one
// draws again.
func (l *Ledger) openGroup(ctx context.Context, batch []*openReq) {
	cmps := make([]clientv3.Cmp, 0, len(batch))
	puts := make([]clientv3.Op, 0, 2*len(batch))
	for _, r := range batch {
		b, _ := json.Marshal(r.rec)
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(prefixAccount+r.rec.ID), "=", 0))
		puts = append(puts, clientv3.OpPut(prefixAccount+r.rec.ID, string(b)), clientv3.OpPut(BalanceKey(r.rec.ID), strconv.FormatInt(InitialBalanceFen, 10)))
	}
	cctx, cancel := callCtx(ctx, commitTimeout)
	resp, err := l.local.Txn(cctx).If(cmps...).Then(puts...).Commit()
	cancel()
	switch {
	case err != nil:
		err = l.unavailable(err)
		for _, r := range batch {
			r.res <- err
		}
	case resp.Succeeded:
		for _, r := range batch {
			r.res <- nil
		}
	case len(batch) == 1:
		batch[0].res <- errIDTaken
	default:
		for _, r := range batch {
			l.openGroup(ctx, []*openReq{r})
		}
	}
}

// unavailable turns a ledger error into ErrNoQuorum: the caller may retry
// elsewhere; or into ErrFull when etcd refused it for want of space.
func (l *Ledger) unavailable(err error) error {
	if isNoSpace(err) {
		return fmt.Errorf("%w (dc %s): %v", ErrFull, l.self.DC, err)
	}
	return fmt.Errorf("%w (dc %s): %v", ErrNoQuorum, l.self.DC, err)
}

// isNoSpace reports whether etcd refused a write because its backend is
// full: it is refused before it is proposed, so nothing was applied.
func isNoSpace(err error) bool {
	return errors.Is(err, rpctypes.ErrNoSpace) || errors.Is(err, rpctypes.ErrGRPCNoSpace)
}

// Full reports whether this DC's member has raised the NOSPACE alarm:
// every write is refused until the space is freed and the alarm disarmed.
func (l *Ledger) Full() bool {
	for _, a := range l.member.Server.Alarms() {
		if a.Alarm == pb.AlarmType_NOSPACE {
			return true
		}
	}
	return false
}

// account returns an account's record, from the cache or the ledger.
func (l *Ledger) account(ctx context.Context, id string) (accountRecord, error) {
	if v, ok := l.accounts.Load(id); ok {
		return v.(accountRecord), nil
	}
	cctx, cancel := callCtx(ctx, readTimeout)
	defer cancel()
	resp, err := l.local.Get(cctx, prefixAccount+id)
	if err != nil {
		return accountRecord{}, l.unavailable(err)
	}
	if len(resp.Kvs) == 0 {
		return accountRecord{}, fmt.Errorf("%w %q", ErrNoAccount, id)
	}
	var rec accountRecord
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
		return accountRecord{}, fmt.Errorf("demoapp: account %s: %w", id, err)
	}
	l.cache(id, rec)
	return rec, nil
}

// maxCachedAccounts bounds the account cache.
const maxCachedAccounts = 1_000_000

// cache keeps an account's record, up to maxCachedAccounts.
func (l *Ledger) cache(id string, rec accountRecord) {
	if l.nAcct.Load() >= maxCachedAccounts {
		return
	}
	if _, loaded := l.accounts.LoadOrStore(id, rec); !loaded {
		l.nAcct.Add(1)
	}
}

// Authorize checks that token opens account id.
func (l *Ledger) Authorize(ctx context.Context, id, token string) (accountRecord, error) {
	rec, err := l.account(ctx, id)
	if err != nil {
		return rec, err
	}
	if subtle.ConstantTimeCompare([]byte(tokenHash(token)), []byte(rec.TokenSHA256)) != 1 {
		return rec, ErrBadToken
	}
	return rec, nil
}

// Balance reads an account's balance (a linearizable read).
func (l *Ledger) Balance(ctx context.Context, id string) (int64, error) {
	cctx, cancel := callCtx(ctx, readTimeout)
	defer cancel()
	resp, err := l.local.Get(cctx, BalanceKey(id))
	if err != nil {
		return 0, l.unavailable(err)
	}
	if len(resp.Kvs) == 0 {
		return 0, fmt.Errorf("%w %q", ErrNoAccount, id)
	}
	return strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64)
}

// Commit applies a transfer through this DC's group-commit writer.
func (l *Ledger) Commit(ctx context.Context, t TransferRequest, from string, batch bool) (TransferResponse, error) {
	return l.writer.submit(ctx, t, from, batch)
}
