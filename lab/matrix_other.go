//go:build !linux

package lab

import (
	"net"
	"time"
)

// handshakeRTT has no kernel measurement to read outside Linux; callers use
// the time the connect took instead.
func handshakeRTT(net.Conn) (time.Duration, bool) { return 0, false }
