package faults

// The watchdog: a detached process that ends one fault on time, armed by
// [Injector.Apply] before the fault changes anything, for the kinds the
// kernel cannot expire (bandwidth, delay, power-off, pause). It is the
// calling program itself, started again with the environment variable
// watchdogEnv: this package's init sees it and runs the watchdog instead of
// the program, so every program that applies faults (the fibercut command,
// a test binary, a dashboard) arms watchdogs without doing anything.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/fibercut/fibercut/lab"
	"github.com/fibercut/fibercut/lab/kube"
)

// watchdogEnv carries a watchdog's orders, as JSON.
const watchdogEnv = "FIBERCUT_FAULTS_WATCHDOG"

// watchdogOrders is what a watchdog is armed for: exactly one fault, of
// one incarnation of one lab.
type watchdogOrders struct {
	Store       string `json:"store"`
	Lab         string `json:"lab"`
	ID          string `json:"id"`
	Incarnation string `json:"incarnation"`
	// Kube, when set, says the lab is on Kubernetes, not Docker.
	Kube *kubeOrders `json:"kube,omitempty"`
}

// kubeOrders say where a lab on Kubernetes is.
type kubeOrders struct {
	Kubeconfig string `json:"kubeconfig"` // "" for the default loading rules
	Via        Via    `json:"via"`
}

// armedLine is what a watchdog writes on its pipe once it runs.
const armedLine = "armed"

func init() {
	if v := os.Getenv(watchdogEnv); v != "" {
		os.Exit(runWatchdog(v))
	}
}

// spawnWatchdog starts the watchdog of rec and returns once it runs.
func (in *Injector) spawnWatchdog(ctx context.Context, rec Record) (*Process, error) {
	return spawnDetached(ctx, watchdogEnv, watchdogOrders{Store: in.store.Path(), Lab: in.name, ID: rec.ID, Incarnation: rec.Lab})
}

// spawnDetached starts this program again as a detached process (its own
// session, no terminal) with orders, as JSON, in the environment variable
// env, and returns once the process has written armedLine on fd 3. Any
// other line is its error.
func spawnDetached(ctx context.Context, env string, orders any) (*Process, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(orders)
	if err != nil {
		return nil, err
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), env+"="+string(b))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	cmd.ExtraFiles = []*os.File{w} // fd 3
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return nil, err
	}
	pid := cmd.Process.Pid
	armed := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		if err == nil && line != armedLine+"\n" {
			err = errors.New(strings.TrimSpace(line))
		}
		armed <- err
	}()
	select {
	case err = <-armed:
	case <-time.After(10 * time.Second):
		err = errors.New("it did not start within 10 s")
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	go cmd.Wait() // reap it when it ends: a long-lived caller collects no zombies
	p := Process{PID: pid}
	p.Start, _ = procStart(pid)
	return &p, nil
}

// takeOrders decodes a detached process's orders, from its environment
// variable's value v, into o, and says on fd 3 that it runs; false when
// they do not decode.
func takeOrders(v string, o any) bool {
	if err := json.Unmarshal([]byte(v), o); err != nil {
		return false
	}
	if f := os.NewFile(3, "armed"); f != nil {
		fmt.Fprintln(f, armedLine)
		f.Close()
	}
	return true
}

// runWatchdog is the watchdog process: it says it is armed, then waits
// for the fault's time and heals it, unless it was healed or forgotten
// before, or the lab is another incarnation by then.
func runWatchdog(v string) int {
	var o watchdogOrders
	if !takeOrders(v, &o) {
		return 2
	}
	ctx := context.Background()
	store := NewStore(o.Store)
	connect := func() (*Injector, func(), error) {
		if o.Kube != nil {
			cs, _, err := kube.Connect(o.Kube.Kubeconfig)
			if err != nil {
				return nil, nil, err
			}
			in, err := NewKubeInjector(ctx, kube.NewCluster(cs, o.Lab), o.Kube.Kubeconfig, o.Kube.Via, store)
			return in, func() {}, err
		}
		cli, err := lab.Connect(ctx)
		if err != nil {
			return nil, nil, err
		}
		l, err := lab.Inspect(ctx, cli, o.Lab)
		if err != nil {
			cli.Close()
			return nil, nil, err
		}
		return NewInjector(cli, l, store), func() { cli.Close() }, nil
	}
	if err := watch(ctx, store, o.ID, o.Incarnation, connect); err != nil {
		return 1
	}
	return 0
}

// watch waits until fault id's time is up, then heals it with an injector
// from connect. It returns at once when the fault is healed or forgotten,
// lasts until healed, or belongs to another incarnation of the lab.
func watch(ctx context.Context, store *Store, id, incarnation string, connect func() (*Injector, func(), error)) error {
	for {
		st, err := store.Load()
		if err != nil {
			return err
		}
		i := slices.IndexFunc(st.Records, func(r Record) bool { return r.ID == id })
		if i < 0 || st.Records[i].Lab != incarnation || st.Records[i].Until.IsZero() {
			return nil
		}
		// Re-read now and then: the record's time is confirmed after the
		// change, and a heal may come first.
		if wait := time.Until(st.Records[i].Until); wait > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(min(wait, 2*time.Second)):
			}
			continue
		}
		var last error
		notYet := false
		for range 30 {
			in, done, err := connect()
			if errors.Is(err, lab.ErrNoLab) {
				return nil // the lab is gone, and the fault with it
			}
			if err == nil {
				err = in.heal(ctx, id, incarnation)
				done()
				if err == nil || errors.Is(err, ErrNoFault) {
					return nil
				}
				if errors.Is(err, errNotYet) {
					notYet = true
					break // the confirmed end is later: wait for it
				}
			}
			last = err
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
		}
		if notYet {
			continue
		}
		return last
	}
}
