package faults

import (
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// releaseTimer wakes a delayer's release loop when its next packet is due.
// It is a timerfd, waited on through the runtime's poller: it wakes within
// microseconds of its time. The runtime's own timers wake up to a
// millisecond late (its poller sleeps in whole milliseconds), a
// millisecond a 1 ms link cannot spare. Every call on it is a raw system
// call, one the scheduler does not see (nfqueue's verdicts explain why).
// Where the kernel has no timerfd it is a runtime timer.
type releaseTimer struct {
	C  chan struct{} // receives when the time set has come
	f  *os.File      // the timerfd; nil for a runtime timer
	rt *time.Timer
}

func newReleaseTimer() *releaseTimer {
	t := &releaseTimer{C: make(chan struct{}, 1)}
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		t.rt = time.AfterFunc(time.Hour, t.fire)
		return t
	}
	t.f = os.NewFile(uintptr(fd), "timerfd") // non-blocking: the poller waits on it
	rc, err := t.f.SyscallConn()
	if err != nil {
		t.f.Close()
		t.f = nil
		t.rt = time.AfterFunc(time.Hour, t.fire)
		return t
	}
	go func() {
		var expirations uint64
		for {
			err := rc.Read(func(fd uintptr) bool {
				_, _, errno := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&expirations)), 8)
				return errno != unix.EAGAIN
			})
			if err != nil {
				return // closed
			}
			t.fire()
		}
	}()
	return t
}

func (t *releaseTimer) fire() {
	select {
	case t.C <- struct{}{}:
	default:
	}
}

// Reset sets the timer to fire after d, in place of what it was set to.
// A firing of the old time not yet received is dropped first; one on its
// way may still come, early: the caller looks at the time when woken.
func (t *releaseTimer) Reset(d time.Duration) {
	select {
	case <-t.C:
	default:
	}
	d = max(d, time.Microsecond)
	if t.f == nil {
		t.rt.Reset(d)
	} else {
		spec := unix.ItimerSpec{Value: unix.NsecToTimespec(d.Nanoseconds())}
		rc, err := t.f.SyscallConn()
		if err == nil {
			rc.Control(func(fd uintptr) {
				unix.RawSyscall6(unix.SYS_TIMERFD_SETTIME, fd, 0, uintptr(unsafe.Pointer(&spec)), 0, 0, 0)
			})
		}
	}
}

// Stop ends the timer for good.
func (t *releaseTimer) Stop() {
	if t.f == nil {
		t.rt.Stop()
		return
	}
	t.f.Close()
}
