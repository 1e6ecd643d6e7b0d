package lab

import (
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// handshakeRTT returns the round-trip time the kernel measured on conn's TCP
// handshake (TCP_INFO), free of the prober's own scheduling delays. ok is
// false when the kernel has no sample, e.g. after a retransmitted SYN.
func handshakeRTT(conn net.Conn) (rtt time.Duration, ok bool) {
	tc, isTCP := conn.(*net.TCPConn)
	if !isTCP {
		return 0, false
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var (
		info *unix.TCPInfo
		ierr error
	)
	if err := raw.Control(func(fd uintptr) {
		info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil || ierr != nil || info.Rtt == 0 {
		return 0, false
	}
	return time.Duration(info.Rtt) * time.Microsecond, true
}
