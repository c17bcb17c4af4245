package bind

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// receivedTTL reads one datagram on c (which has IP_RECVTTL set) and returns its TTL.
func receivedTTL(t *testing.T, c *net.UDPConn) int {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf, oob := make([]byte, 2048), make([]byte, 128)
	_, oobn, _, _, err := c.ReadMsgUDPAddrPort(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_TTL {
			return int(binary.NativeEndian.Uint32(m.Data))
		}
	}
	t.Fatal("no TTL control message")
	return 0
}

// TestSendTTL: a TTL-limited probe leaves the WireGuard socket with exactly that TTL, and
// the next packet has the normal TTL again.
func TestSendTTL(t *testing.T) {
	b, _, port := openBind(t, Config{})
	c, to := listener(t)
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_RECVTTL, 1) })
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SendTo(to, []byte("probe"), 2); err != nil {
		t.Fatal(err)
	}
	if ttl := receivedTTL(t, c); ttl != 2 {
		t.Fatalf("probe TTL %d, want 2", ttl)
	}
	if err := b.SendTo(to, []byte("normal"), 0); err != nil {
		t.Fatal(err)
	}
	if ttl := receivedTTL(t, c); ttl <= 2 {
		t.Fatalf("normal packet TTL %d", ttl)
	}
	// Both left from the WireGuard socket.
	if err := b.SendTo(to, []byte("x"), 3); err != nil {
		t.Fatal(err)
	}
	_, from := readOne(t, c)
	if from.Port() != port {
		t.Fatalf("probe came from port %d, the bind is on %d", from.Port(), port)
	}
	if err := b.SendTo(to, nil, 256); err == nil {
		t.Fatal("TTL 256 accepted")
	}
	b.Close()
	if err := b.SendTo(netip.MustParseAddrPort("127.0.0.1:9"), []byte("x"), 2); err == nil {
		t.Fatal("send on a closed bind succeeded")
	}
}
