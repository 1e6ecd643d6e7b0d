package nfqueue

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/mdlayher/netlink"
)

// TestParseCapturedPacket reads a packet message the kernel sent
// (TestQueueInNamespace -capture): a 32-byte UDP datagram "four" queued
// at the output hook of loopback.
func TestParseCapturedPacket(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "packet.bin"))
	if err != nil {
		t.Fatal(err)
	}
	var m netlink.Message
	if err := m.UnmarshalBinary(raw); err != nil {
		t.Fatal(err)
	}
	p, ok, err := parsePacket(m)
	if err != nil || !ok {
		t.Fatalf("parsePacket: %v, %v", ok, err)
	}
	if p.ID != 4 || p.HWProtocol != 0x0800 || p.Hook != 3 || p.Length != 32 || !bytes.HasSuffix(p.Payload, []byte("four")) || p.Payload[0] != 0x45 {
		t.Errorf("parsed %+v; want id 4, IPv4, hook 3 (output), a 32-byte IPv4 packet ending in \"four\"", p)
	}

	// Not a packet: skipped, not an error. Cut short: an error.
	other := m
	other.Header.Type = netlink.HeaderType(3<<8 | 2)
	if _, ok, err := parsePacket(other); ok || err != nil {
		t.Errorf("a config message parsed as a packet: %v, %v", ok, err)
	}
	short := m
	short.Data = short.Data[:2]
	if _, _, err := parsePacket(short); err == nil {
		t.Error("a message of 2 bytes parsed")
	}
	noHdr := m
	noHdr.Data = append([]byte{}, m.Data[:4]...) // the nfgenmsg alone
	if _, _, err := parsePacket(noHdr); err == nil {
		t.Error("a packet message without its header parsed")
	}
}

// TestMessagesLayout checks the requests against the layout of
// linux/netfilter/nfnetlink_queue.h, written out by hand: the netlink
// type is subsystem 3 (queue) << 8 | message type; nfgenmsg is family,
// version, then the queue number big-endian; attributes are
// length/type/value, their fields big-endian.
func TestMessagesLayout(t *testing.T) {
	for _, c := range []struct {
		name string
		m    netlink.Message
		typ  uint16
		data string // hex: nfgenmsg, then attributes
	}{
		{"accept packet 4", verdictMessage(msgVerdict, 7, 4, Accept), 0x0301,
			"00000007" + "0c000200" + "00000001" + "00000004"},
		{"drop up to 9", verdictMessage(msgVerdictBatch, 7, 9, Drop), 0x0303,
			"00000007" + "0c000200" + "00000000" + "00000009"},
	} {
		if uint16(c.m.Header.Type) != c.typ || hex.EncodeToString(c.m.Data) != c.data {
			t.Errorf("%s: type %#04x data %x; want %#04x %s", c.name, c.m.Header.Type, c.m.Data, c.typ, c.data)
		}
	}
	cfg := configMessages(Config{Queue: 7, CopyRange: 64, MaxLen: 4096, FailOpen: true})
	want := []string{
		"00000007" + "08000100" + "01000000",                           // bind; pf 0
		"00000007" + "09000200" + "00000040" + "02000000",              // copy 64 bytes of the packet (5 bytes, padded)
		"00000007" + "08000300" + "00001000",                           // max length 4096
		"00000007" + "08000500" + "00000001" + "08000400" + "00000001", // flags fail-open, mask fail-open
	}
	if len(cfg) != len(want) {
		t.Fatalf("%d config messages; want %d", len(cfg), len(want))
	}
	for i, m := range cfg {
		if uint16(m.Header.Type) != 0x0302 || m.Header.Flags&netlink.Acknowledge == 0 || hex.EncodeToString(m.Data) != want[i] {
			t.Errorf("config %d: type %#04x flags %v data %x; want 0x0302, acknowledged, %s", i, m.Header.Type, m.Header.Flags, m.Data, want[i])
		}
	}
	if got := configMessages(Config{Queue: 7, FailOpen: true, GSO: true}); len(got) != 3 || hex.EncodeToString(got[2].Data) != "00000007"+"08000500"+"00000005"+"08000400"+"00000005" {
		t.Errorf("fail-open and GSO: %d messages, flags %x", len(got), got[len(got)-1].Data)
	}
	if got := configMessages(Config{Queue: 1}); len(got) != 2 || hex.EncodeToString(got[1].Data) != "00000001"+"09000200"+"00000000"+"01000000" {
		t.Errorf("metadata only: %d messages, params %x", len(got), got[1].Data)
	}
	if got := hex.EncodeToString(XTTargetInfo(7, true)); got != "0700"+"0100"+"0100"+"0000" {
		t.Errorf("xt_NFQ_info_v3 of queue 7 with bypass: %s", got)
	}
}

// TestSplitMessages reads a datagram the way the kernel packs one: the
// captured packet message twice, then a netlink error message (what a
// verdict on an unknown packet gets). A datagram cut inside a message is
// an error, not a short read.
func TestSplitMessages(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "packet.bin"))
	if err != nil {
		t.Fatal(err)
	}
	errMsg := []byte{36, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // nlmsghdr: 36 bytes, NLMSG_ERROR
		0xfe, 0xff, 0xff, 0xff, // -2, ENOENT
		16, 0, 0, 0, 1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0} // the header of the message it answers
	dgram := bytes.Join([][]byte{raw, raw, errMsg}, nil)
	msgs, err := splitMessages(dgram)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 {
		t.Fatalf("%d messages in a datagram of 3", len(msgs))
	}
	var packets int
	for _, m := range msgs {
		p, ok, err := parsePacket(m)
		if err != nil {
			t.Fatalf("parsePacket: %v", err)
		}
		if ok {
			packets++
			if p.ID != 4 || !bytes.HasSuffix(p.Payload, []byte("four")) {
				t.Errorf("packet %+v; want id 4 ending in \"four\"", p)
			}
		}
	}
	if packets != 2 || msgs[2].Header.Type != netlink.Error {
		t.Errorf("%d packets, last message of type %d; want 2 packets and an error message", packets, msgs[2].Header.Type)
	}
	if _, err := splitMessages(dgram[:len(raw)+10]); err == nil {
		t.Error("a datagram cut inside its second message split without error")
	}
}
