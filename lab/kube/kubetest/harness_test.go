package kubetest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fibercut/fibercut/lab/labtest"
)

func tempMarks(t *testing.T) marks {
	d := t.TempDir()
	return marks{
		record:   filepath.Join(d, "record"),
		fabric:   filepath.Join(d, "fck-fabric"),
		lockFile: filepath.Join(d, "test.lock"),
	}
}

func TestLeftover(t *testing.T) {
	m := tempMarks(t)
	if l := m.leftover(); l.found {
		t.Fatalf("nothing on the machine, leftover found %+v", l)
	}

	// An up interrupted before the fabric: only the record, by a test.
	state := filepath.Join(t.TempDir(), "cluster")
	if err := markOwner(state); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m.record, []byte(state+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if l := m.leftover(); !l.found || !l.byTest || l.state != state {
		t.Fatalf("a test's cluster: leftover %+v, want found by a test with state %s", l, state)
	}

	// Started by hand: recorded, with no owner mark.
	if err := os.Remove(filepath.Join(state, ownerFile)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m.fabric, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	l := m.leftover()
	if !l.found || l.byTest || !strings.Contains(l.String(), "by hand") || !strings.Contains(l.String(), state) {
		t.Fatalf("a cluster by hand: leftover %+v (%s)", l, l)
	}

	// The fabric with no record (an older script): never taken down.
	if err := os.Remove(m.record); err != nil {
		t.Fatal(err)
	}
	if l := m.leftover(); !l.found || l.byTest || !strings.Contains(l.String(), "no record") {
		t.Fatalf("an unrecorded cluster: leftover %+v (%s)", l, l)
	}
}

// TestLockHeldUntilHolderDies checks that a live holder of the lock keeps
// a test out, and that its death, however abrupt, lets the test in.
func TestLockHeldUntilHolderDies(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		labtest.SkipOrFail(t, "flock(1) (util-linux) is not installed")
	}
	m := tempMarks(t)
	// flock -o holds the lock in its own process, not in sleep's.
	holder := exec.Command("flock", "-o", m.lockFile, "sleep", "60")
	holder.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-holder.Process.Pid, syscall.SIGKILL); holder.Wait() })

	held := false
	for range 100 { // until flock has it: at most 10 s
		f, err := m.lock(nil)
		if err != nil {
			if !errors.Is(err, errHeld) {
				t.Fatalf("lock: %v, want a held lock", err)
			}
			held = true
			break
		}
		f.Close()
		time.Sleep(100 * time.Millisecond)
	}
	if !held {
		t.Fatal("flock(1) never took the lock")
	}

	if err := syscall.Kill(-holder.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	holder.Wait()
	f, err := m.lock(nil)
	if err != nil {
		t.Fatalf("lock after its holder was killed: %v", err)
	}
	defer f.Close()

	// Held here, it keeps another opener out.
	if g, err := m.lock(nil); err == nil {
		g.Close()
		t.Fatal("a second lock was taken while the first is held")
	}
}
