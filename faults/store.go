package faults

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The phases of a record.
const (
	// PhaseApplying: the record was written before any change, so that
	// whatever a kill leaves half done is known and ends on time.
	PhaseApplying = "applying"
	// PhaseInForce: every change is in place.
	PhaseInForce = "in-force"
)

// Record is a fault that was applied: what, when, until when, who holds
// it, and every change made, so that any process can revert it.
type Record struct {
	ID   string `json:"id"`
	Spec Spec   `json:"spec"`
	Desc string `json:"desc"`
	// Lab is the incarnation of the lab the fault was applied to (its WAN
	// network's id): a lab taken down and brought up again is another.
	Lab string `json:"lab"`
	// Phase is PhaseApplying until every change is in place.
	Phase string `json:"phase"`
	// AppliedAt is when applying began; InForceAt when every change was in
	// place. Recovery times are measured from InForceAt.
	AppliedAt time.Time `json:"applied_at"`
	InForceAt time.Time `json:"in_force_at,omitzero"`
	// Until is when the fault ends; zero means when healed.
	Until time.Time `json:"until,omitzero"`
	// Owner is the process holding the fault: when it dies, what is left
	// is a leftover that lab up and drill run heal. Nil for a fault kept
	// on purpose (fault --detach), which only a heal ends.
	Owner *Process `json:"owner,omitempty"`
	// Watchdog is the process that ends the fault on time, for faults the
	// kernel cannot expire.
	Watchdog *Process `json:"watchdog,omitempty"`
	// Holder is the process that delays the packets a delay fault queues
	// (the nfqueue engine). When it dies, the delay ends: the queue lets
	// packets pass when no one holds it.
	Holder *Process `json:"holder,omitempty"`
	// The changes, by mechanism.
	NFT    []NFTChange `json:"nft,omitempty"`
	Qdisc  []string    `json:"qdisc,omitempty"`  // DCs given fibercut's root qdisc
	Killed []string    `json:"killed,omitempty"` // DCs powered off
	Paused []string    `json:"paused,omitempty"` // DCs frozen
}

// NFTChange is a set of addresses added to one of the fault's own sets
// (by role: drop_in, isolated, ...) in one DC's namespace.
type NFTChange struct {
	DC    string       `json:"dc"`
	Set   string       `json:"set"`
	Addrs []netip.Addr `json:"addrs"`
}

// KernelExpires reports whether the kernel ends the fault on its own: only
// nftables changes with a duration do.
func (r Record) KernelExpires() bool {
	return !r.Until.IsZero() && len(r.Qdisc)+len(r.Killed)+len(r.Paused) == 0
}

// Over reports whether the fault's time is up at now.
func (r Record) Over(now time.Time) bool {
	return !r.Until.IsZero() && !now.Before(r.Until)
}

// Orphaned reports whether the process that held the fault is gone (a
// kept fault has no owner and is never orphaned).
func (r Record) Orphaned() bool { return r.Owner != nil && !r.Owner.Alive() }

// DCs lists the DCs the record changed, in the order first changed.
func (r Record) DCs() []string {
	var dcs []string
	add := func(dc string) {
		for _, d := range dcs {
			if d == dc {
				return
			}
		}
		dcs = append(dcs, dc)
	}
	for _, ch := range r.NFT {
		add(ch.DC)
	}
	for _, l := range [][]string{r.Qdisc, r.Killed, r.Paused} {
		for _, dc := range l {
			add(dc)
		}
	}
	return dcs
}

// Stop asks the process to end (SIGTERM), if it is still the process
// recorded.
func (p *Process) Stop() {
	if p != nil && p.Alive() {
		syscall.Kill(p.PID, syscall.SIGTERM)
	}
}

// Process identifies a process on this host: its pid and its start time,
// so that a pid reused by another process is not taken for it.
type Process struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"` // clock ticks after boot, /proc/PID/stat field 22
}

// Self returns the calling process.
func Self() Process {
	p := Process{PID: os.Getpid()}
	p.Start, _ = procStart(p.PID)
	return p
}

// Alive reports whether the process still runs.
func (p Process) Alive() bool {
	start, err := procStart(p.PID)
	return err == nil && start == p.Start
}

// procStart reads a process's start time from /proc.
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: count fields
	// from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("faults: bad /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, fmt.Errorf("faults: short /proc/%d/stat", pid)
	}
	if f[0] == "Z" || f[0] == "X" {
		return 0, fmt.Errorf("faults: process %d is dead", pid)
	}
	return strconv.ParseUint(f[19], 10, 64) // field 22; f[0] is field 3
}

// State is the content of a lab's fault file.
type State struct {
	Records []Record `json:"records"`
	// CatchUps are DCs at a low CPU weight after a heal.
	CatchUps []CatchUp `json:"catch_ups,omitempty"`
	// WAN is the lab's baseline WAN latency, nil when it is off.
	WAN *WAN `json:"wan,omitempty"`
}

// Store keeps a lab's fault records in a JSON file. Its lock is the lab's
// lock: [Injector.Apply] and [Injector.Heal] hold it while they change
// the lab, so one fibercut process at a time changes a lab.
type Store struct {
	path string
}

// NewStore returns a store kept at path. Fault ids are numbered by a
// sequence kept beside it, shared by every lab whose store is in the same
// directory and never reset.
func NewStore(path string) *Store { return &Store{path: path} }

// StateDir is where fault files live: $FIBERCUT_STATE_DIR, else
// $XDG_STATE_HOME/fibercut, else ~/.local/state/fibercut.
func StateDir() (string, error) {
	if d := os.Getenv("FIBERCUT_STATE_DIR"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "fibercut"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("faults: no state directory: set FIBERCUT_STATE_DIR: %w", err)
	}
	return filepath.Join(home, ".local", "state", "fibercut"), nil
}

// OpenStore returns the store of the named lab in [StateDir].
func OpenStore(lab string) (*Store, error) {
	dir, err := StateDir()
	if err != nil {
		return nil, err
	}
	return NewStore(filepath.Join(dir, lab+".faults.json")), nil
}

// Path is the file the store keeps its records in.
func (s *Store) Path() string { return s.path }

// Load reads the records; a missing file is an empty state. It takes no
// lock: files are replaced whole.
func (s *Store) Load() (State, error) {
	var st State
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("faults: read %s: %w", s.path, err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("faults: %s is not a fault file: %w", s.path, err)
	}
	return st, nil
}

// flock opens path and locks it exclusively; the returned func unlocks.
func flock(path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("faults: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("faults: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("faults: lock %s: %w", path, err)
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// locked runs fn holding the lab's lock. The lock is not reentrant: fn
// must not call locked or Update.
func (s *Store) locked(fn func() error) error {
	unlock, err := flock(s.path + ".lock")
	if err != nil {
		return err
	}
	defer unlock()
	return fn()
}

// save writes the state atomically; the caller holds the lock.
func (s *Store) save(st State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("faults: %w", err)
	}
	tmp := s.path + ".tmp." + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("faults: write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("faults: %w", err)
	}
	return nil
}

// modify changes the records: fn gets the current state and its changes
// are written back unless it fails. The caller holds the lock.
func (s *Store) modify(fn func(*State) error) error {
	st, err := s.Load()
	if err != nil {
		return err
	}
	if err := fn(&st); err != nil {
		return err
	}
	return s.save(st)
}

// Update changes the records under the lab's lock: fn gets the current
// state and its changes are written back atomically unless it fails.
func (s *Store) Update(fn func(*State) error) error {
	return s.locked(func() error { return s.modify(fn) })
}

// nextID returns a fault id never given before by a store of this
// directory: "f" and a number from a sequence file that survives labs.
func (s *Store) nextID() (string, error) {
	seq := filepath.Join(filepath.Dir(s.path), "fault-ids")
	unlock, err := flock(seq + ".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	n := 0
	if b, err := os.ReadFile(seq); err == nil {
		n, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("faults: %w", err)
	}
	n++
	tmp := seq + ".tmp." + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(n)+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("faults: %w", err)
	}
	if err := os.Rename(tmp, seq); err != nil {
		return "", fmt.Errorf("faults: %w", err)
	}
	return "f" + strconv.Itoa(n), nil
}

// Remove deletes the fault file (after the lab is gone). The id sequence
// stays, so ids are never given twice, and so does the lock file, which
// another process may hold.
func (s *Store) Remove() error {
	return s.locked(func() error {
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("faults: %w", err)
		}
		return nil
	})
}
