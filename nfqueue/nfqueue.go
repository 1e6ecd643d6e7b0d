// Package nfqueue is a small client of the kernel's netfilter queue
// (nfnetlink_queue): it binds a queue number, receives the packets that
// nftables or iptables rules send to it ("queue num N bypass", "-j NFQUEUE
// --queue-bypass"), and gives each its verdict. It is built on
// github.com/ti-mo/netfilter's nfnetlink framing over
// github.com/mdlayher/netlink and knows nothing of fibercut.
//
// Privileges: CAP_NET_ADMIN in the network namespace the socket is opened
// in (Config.NetNS, or the caller's). A socket belongs to that namespace
// for its lifetime, so a process on the host can serve a container's
// queue.
package nfqueue

import (
	"unsafe"

	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// Message types of the queue subsystem (linux/netfilter/nfnetlink_queue.h).
const (
	msgPacket       netfilter.MessageType = 0 // kernel → user: a queued packet
	msgVerdict      netfilter.MessageType = 1 // user → kernel: one packet's verdict
	msgConfig       netfilter.MessageType = 2 // user → kernel: bind, parameters
	msgVerdictBatch netfilter.MessageType = 3 // user → kernel: every id up to one
)

// Attributes of a packet message (enum nfqnl_attr_type).
const (
	attrPacketHdr  = 1
	attrVerdictHdr = 2
	attrMark       = 3
	attrPayload    = 10
	attrCapLen     = 13
)

// Attributes of a config message (enum nfqnl_attr_config).
const (
	attrCfgCmd      = 1
	attrCfgParams   = 2
	attrCfgMaxLen   = 3
	attrCfgMask     = 4
	attrCfgFlags    = 5
	cfgCmdBind      = 1
	cfgCmdUnbind    = 2
	copyMeta        = 1
	copyPacket      = 2
	cfgFlagFailOpen = 1 << 0
	cfgFlagGSO      = 1 << 2
)

// Verdict is what becomes of a packet (NF_DROP, NF_ACCEPT, ...).
type Verdict uint32

const (
	Drop   Verdict = 0
	Accept Verdict = 1
)

// Config says which queue to bind and how.
type Config struct {
	// Queue is the queue number the rules name.
	Queue uint16
	// NetNS is a file descriptor of the network namespace to open the
	// socket in (e.g. of /proc/PID/ns/net); 0 is the caller's.
	NetNS int
	// CopyRange is how many bytes of each packet to receive: 0 for none
	// (metadata only), e.g. 64 for the IP and transport headers.
	CopyRange uint32
	// MaxLen bounds the packets the kernel holds for this queue, waiting
	// for a verdict; 0 leaves the kernel's default (1,024).
	MaxLen uint32
	// FailOpen accepts packets that arrive while the queue is full
	// instead of dropping them.
	FailOpen bool
	// GSO takes large (segmentation-offloaded) packets whole instead of
	// having the kernel split them first: far fewer packets for a holder
	// that does not change payloads.
	GSO bool
	// ReadBuffer is the socket's receive buffer in bytes; 0 leaves the
	// system's default. Messages that do not fit are lost to the reader
	// (their packets wait for a verdict until the queue is unbound).
	ReadBuffer int
}

// Packet is one queued packet.
type Packet struct {
	ID         uint32 // what its verdict names
	HWProtocol uint16 // e.g. 0x0800 for IPv4
	Hook       uint8  // the netfilter hook it was queued at
	Mark       uint32
	Payload    []byte // the first CopyRange bytes
	Length     int    // the whole packet's length (Payload's when not cut)
}

// Queue is a bound queue. Receive and the verdicts may be called from
// different goroutines.
type Queue struct {
	conn  *netlink.Conn
	queue uint16
	buf   []byte // Receive's, reused
}

// Open binds cfg.Queue and sets its parameters. Only one socket can bind
// a queue number in a namespace: a second gets EPERM.
func Open(cfg Config) (*Queue, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: cfg.NetNS})
	if err != nil {
		return nil, fmt.Errorf("nfqueue: open a netfilter socket: %w", err)
	}
	q := &Queue{conn: c, queue: cfg.Queue}
	if cfg.ReadBuffer > 0 {
		if err := c.SetReadBuffer(cfg.ReadBuffer); err != nil {
			c.Close()
			return nil, fmt.Errorf("nfqueue: receive buffer: %w", err)
		}
	}
	// A reader that falls behind loses messages, not the socket.
	_ = c.SetOption(netlink.NoENOBUFS, true)
	for _, m := range configMessages(cfg) {
		if err := q.configure(m); err != nil {
			c.Close()
			if errors.Is(err, unix.EPERM) {
				return nil, fmt.Errorf("nfqueue: queue %d: another socket in this namespace has bound it, or this process lacks CAP_NET_ADMIN there: %w", cfg.Queue, err)
			}
			return nil, fmt.Errorf("nfqueue: configure queue %d: %w", cfg.Queue, err)
		}
	}
	return q, nil
}

// configure sends one configuration request and waits for its answer.
// Once the queue is bound, packets may come before the answer (rules that
// feed the queue can be there first): each is accepted at once, as if no
// one were bound.
func (q *Queue) configure(m netlink.Message) error {
	sent, err := q.conn.Send(m)
	if err != nil {
		return err
	}
	q.conn.SetReadDeadline(time.Now().Add(configTimeout))
	defer q.conn.SetReadDeadline(time.Time{})
	for {
		msgs, err := q.conn.Receive() // an error answer comes back as err
		if err != nil {
			return err
		}
		for _, r := range msgs {
			if r.Header.Type == netlink.Error && r.Header.Sequence == sent.Header.Sequence {
				return nil
			}
			if p, ok, _ := parsePacket(r); ok {
				q.Verdict(p.ID, Accept)
			}
		}
	}
}

// configTimeout bounds the wait for the kernel's answer to a request.
const configTimeout = 5 * time.Second

// configMessages are the requests that bind a queue and set it up.
func configMessages(cfg Config) []netlink.Message {
	mode := uint8(copyMeta)
	if cfg.CopyRange > 0 {
		mode = copyPacket
	}
	params := make([]byte, 5)
	binary.BigEndian.PutUint32(params, cfg.CopyRange)
	params[4] = mode
	msgs := []netlink.Message{
		configMessage(cfg.Queue, netfilter.Attribute{Type: attrCfgCmd, Data: []byte{cfgCmdBind, 0, 0, 0}}),
		configMessage(cfg.Queue, netfilter.Attribute{Type: attrCfgParams, Data: params}),
	}
	if cfg.MaxLen > 0 {
		msgs = append(msgs, configMessage(cfg.Queue, netfilter.Attribute{Type: attrCfgMaxLen, Data: netfilter.Uint32Bytes(cfg.MaxLen)}))
	}
	var flags uint32
	if cfg.FailOpen {
		flags |= cfgFlagFailOpen
	}
	if cfg.GSO {
		flags |= cfgFlagGSO
	}
	if flags != 0 {
		msgs = append(msgs, configMessage(cfg.Queue,
			netfilter.Attribute{Type: attrCfgFlags, Data: netfilter.Uint32Bytes(flags)},
			netfilter.Attribute{Type: attrCfgMask, Data: netfilter.Uint32Bytes(flags)}))
	}
	return msgs
}

func configMessage(queue uint16, attrs ...netfilter.Attribute) netlink.Message {
	return message(msgConfig, queue, netlink.Request|netlink.Acknowledge, attrs...)
}

func message(t netfilter.MessageType, queue uint16, flags netlink.HeaderFlags, attrs ...netfilter.Attribute) netlink.Message {
	m, err := netfilter.MarshalNetlink(netfilter.Header{
		SubsystemID: netfilter.NFSubsysQueue, MessageType: t, Family: netfilter.ProtoUnspec,
		Version: 0, ResourceID: queue, Flags: flags, // NFNETLINK_V0
	}, attrs)
	if err != nil {
		panic("nfqueue: " + err.Error()) // fixed-size attributes always encode
	}
	return m
}

// Receive waits for queued packets and returns them. Messages that are not
// packets of this queue (errors the kernel reports on verdicts among them)
// are skipped. Like the verdicts, the read is a raw system call
// ([Queue.sendVerdict]); the wait is the runtime's poller's.
func (q *Queue) Receive() ([]Packet, error) {
	rc, err := q.conn.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("nfqueue: receive: %w", err)
	}
	if q.buf == nil {
		q.buf = make([]byte, receiveBuffer)
	}
	var n uintptr
	var errno unix.Errno
	rerr := rc.Read(func(fd uintptr) bool {
		n, _, errno = unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&q.buf[0])), uintptr(len(q.buf)), unix.MSG_DONTWAIT, 0, 0)
		return errno != unix.EAGAIN
	})
	switch {
	case rerr != nil:
		return nil, fmt.Errorf("nfqueue: receive: %w", rerr)
	case errno == unix.ENOBUFS:
		return nil, nil // the kernel dropped messages for a full buffer: read on
	case errno != 0:
		return nil, fmt.Errorf("nfqueue: receive: %w", errno)
	}
	msgs, err := splitMessages(slices.Clone(q.buf[:n]))
	if err != nil {
		return nil, err
	}
	out := make([]Packet, 0, len(msgs))
	for _, m := range msgs {
		p, ok, err := parsePacket(m)
		if err != nil {
			return out, err
		}
		if ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// receiveBuffer holds the largest datagram the kernel sends a queue's
// socket: it packs several messages into one up to a page or so.
const receiveBuffer = 64 << 10

// splitMessages reads the netlink messages of one datagram.
func splitMessages(b []byte) ([]netlink.Message, error) {
	var out []netlink.Message
	for len(b) >= nlmsgHeaderLen {
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		if l < nlmsgHeaderLen || l > len(b) {
			return out, fmt.Errorf("nfqueue: a message of %d bytes in a datagram of %d", l, len(b))
		}
		out = append(out, netlink.Message{Header: netlink.Header{
			Length:   uint32(l),
			Type:     netlink.HeaderType(binary.NativeEndian.Uint16(b[4:6])),
			Flags:    netlink.HeaderFlags(binary.NativeEndian.Uint16(b[6:8])),
			Sequence: binary.NativeEndian.Uint32(b[8:12]),
			PID:      binary.NativeEndian.Uint32(b[12:16]),
		}, Data: b[nlmsgHeaderLen:l]})
		b = b[min(nlmsgAlign(l), len(b)):]
	}
	if len(b) > 0 {
		return out, fmt.Errorf("nfqueue: %d bytes after the last message of a datagram", len(b))
	}
	return out, nil
}

// parsePacket reads a packet message; ok is false for other messages.
func parsePacket(m netlink.Message) (p Packet, ok bool, err error) {
	h, attrs, err := netfilter.UnmarshalNetlink(m)
	if err != nil {
		return p, false, fmt.Errorf("nfqueue: a message from the kernel: %w", err)
	}
	if h.SubsystemID != netfilter.NFSubsysQueue || h.MessageType != msgPacket {
		return p, false, nil
	}
	seenHdr := false
	for _, a := range attrs {
		switch a.Type {
		case attrPacketHdr:
			if len(a.Data) < 7 {
				return p, false, fmt.Errorf("nfqueue: packet header of %d bytes, want 7", len(a.Data))
			}
			p.ID = binary.BigEndian.Uint32(a.Data[0:4])
			p.HWProtocol = binary.BigEndian.Uint16(a.Data[4:6])
			p.Hook = a.Data[6]
			seenHdr = true
		case attrMark:
			if len(a.Data) == 4 {
				p.Mark = binary.BigEndian.Uint32(a.Data)
			}
		case attrPayload:
			p.Payload = a.Data
		case attrCapLen:
			if len(a.Data) == 4 {
				p.Length = int(binary.BigEndian.Uint32(a.Data))
			}
		}
	}
	if !seenHdr {
		return p, false, errors.New("nfqueue: a packet message without its header")
	}
	if p.Length == 0 {
		p.Length = len(p.Payload)
	}
	return p, true, nil
}

// Verdict gives packet id its verdict.
func (q *Queue) Verdict(id uint32, v Verdict) error {
	if err := q.sendVerdict(verdictMessage(msgVerdict, q.queue, id, v)); err != nil {
		return fmt.Errorf("nfqueue: verdict on packet %d: %w", id, err)
	}
	return nil
}

// VerdictBatch gives every packet of the queue whose id is id or less the
// same verdict, in one message.
func (q *Queue) VerdictBatch(id uint32, v Verdict) error {
	if err := q.sendVerdict(verdictMessage(msgVerdictBatch, q.queue, id, v)); err != nil {
		return fmt.Errorf("nfqueue: verdict on packets up to %d: %w", id, err)
	}
	return nil
}

// sendVerdict sends a verdict to the kernel as a raw system call, one the
// Go scheduler does not see. An accepted packet goes on through the
// network stack inside that call, tens of microseconds, long enough for
// the runtime to hand the caller's processor to another thread at every
// verdict if it saw the call: at a thousand packets a second that hand-off
// cost more CPU than the packets. The kernel takes a netlink message
// at once and never blocks its sender.
func (q *Queue) sendVerdict(m netlink.Message) error {
	m.Header.Length = uint32(nlmsgAlign(nlmsgHeaderLen + len(m.Data)))
	b, err := m.MarshalBinary()
	if err != nil {
		return err
	}
	rc, err := q.conn.SyscallConn()
	if err != nil {
		return err
	}
	var errno unix.Errno
	werr := rc.Write(func(fd uintptr) bool {
		_, _, errno = unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0, 0, 0)
		return true
	})
	if werr != nil {
		return werr
	}
	if errno != 0 {
		return errno
	}
	return nil
}

const nlmsgHeaderLen = 16

func nlmsgAlign(n int) int { return (n + 3) &^ 3 }

func verdictMessage(t netfilter.MessageType, queue uint16, id uint32, v Verdict) netlink.Message {
	hdr := make([]byte, 8)
	binary.BigEndian.PutUint32(hdr[0:4], uint32(v))
	binary.BigEndian.PutUint32(hdr[4:8], id)
	return message(t, queue, netlink.Request, netfilter.Attribute{Type: attrVerdictHdr, Data: hdr})
}

// SetReadDeadline bounds the wait of Receive (time.Time{} for none).
func (q *Queue) SetReadDeadline(t time.Time) error { return q.conn.SetReadDeadline(t) }

// Close unbinds the queue. Packets still waiting for a verdict are then
// dropped by the kernel; with the rule's bypass, new ones pass.
func (q *Queue) Close() error {
	_, _ = q.conn.Send(configMessage(q.queue, netfilter.Attribute{Type: attrCfgCmd, Data: []byte{cfgCmdUnbind, 0, 0, 0}}))
	return q.conn.Close()
}

// XTTargetInfo is the payload of iptables' NFQUEUE target, revision 3
// (struct xt_NFQ_info_v3, padded to 8 bytes as the kernel's compat layer
// wants it): for an nftables rule on a kernel that has the xt target
// (CONFIG_NETFILTER_XT_TARGET_NFQUEUE) but not nft's own queue expression
// (CONFIG_NFT_QUEUE), through nft_compat. With bypass, packets pass
// when no socket has bound the queue.
func XTTargetInfo(queue uint16, bypass bool) []byte {
	const flagBypass = 0x01
	b := make([]byte, 8)
	binary.NativeEndian.PutUint16(b[0:2], queue)
	binary.NativeEndian.PutUint16(b[2:4], 1) // queues_total: just this one
	if bypass {
		binary.NativeEndian.PutUint16(b[4:6], flagBypass)
	}
	return b
}
