package faults

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Record is a fault that was applied: what, when, until when, and every
// change made, so that any process can revert it.
type Record struct {
	ID   string `json:"id"`
	Spec Spec   `json:"spec"`
	Desc string `json:"desc"`
	// AppliedAt is when applying began; InForceAt when every change was in
	// place. Recovery times are measured from InForceAt.
	AppliedAt time.Time `json:"applied_at"`
	InForceAt time.Time `json:"in_force_at"`
	// Until is when the fault ends; zero means when healed.
	Until time.Time `json:"until,omitzero"`
	// The changes, by mechanism.
	NFT    []NFTChange `json:"nft,omitempty"`
	Qdisc  []string    `json:"qdisc,omitempty"`  // DCs given fibercut's root qdisc
	Killed []string    `json:"killed,omitempty"` // DCs powered off
	Paused []string    `json:"paused,omitempty"` // DCs frozen
}

// NFTChange is a set of addresses added to one set of the fibercut table in
// one DC's namespace.
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

// State is the content of a lab's fault file.
type State struct {
	Next    int      `json:"next"`
	Records []Record `json:"records"`
}

// Store keeps a lab's fault records in a JSON file, locked while it is
// changed so that several fibercut processes can share it.
type Store struct {
	path string
}

// NewStore returns a store kept at path.
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

// Load reads the records; a missing file is an empty state.
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

// Update changes the records under an exclusive lock: fn gets the current
// state and its changes are written back atomically unless it fails.
func (s *Store) Update(fn func(*State) error) error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return fmt.Errorf("faults: %w", err)
	}
	lock, err := os.OpenFile(s.path+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("faults: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("faults: lock %s: %w", s.path, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	st, err := s.Load()
	if err != nil {
		return err
	}
	if err := fn(&st); err != nil {
		return err
	}
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

// Remove deletes the fault file (after the lab is gone).
func (s *Store) Remove() error {
	for _, p := range []string{s.path, s.path + ".lock"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("faults: %w", err)
		}
	}
	return nil
}
