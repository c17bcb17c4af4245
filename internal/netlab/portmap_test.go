package netlab

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"
)

// natpmpMap asks the LAN host's gateway (NAT-PMP, RFC 6886) for its external address and
// to map UDP port of conn, and returns the public address granted.
func natpmpMap(t *testing.T, conn net.PacketConn, gw netip.Addr, port uint16) netip.AddrPort {
	t.Helper()
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(gw, 5351))
	ask := func(req []byte, size int) []byte {
		t.Helper()
		buf := make([]byte, 64)
		for range 10 {
			if _, err := conn.WriteTo(req, to); err != nil {
				t.Fatal(err)
			}
			conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				continue
			}
			if n != size || buf[0] != 0 || buf[1] != 0x80|req[1] || binary.BigEndian.Uint16(buf[2:4]) != 0 {
				t.Fatalf("NAT-PMP answer %x to %x", buf[:n], req)
			}
			return buf[:n]
		}
		t.Fatalf("no NAT-PMP answer from %s", gw)
		return nil
	}
	addr := ask([]byte{0, 0}, 12)
	req := []byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x0e, 0x10} // UDP, an hour
	binary.BigEndian.PutUint16(req[4:6], port)
	binary.BigEndian.PutUint16(req[6:8], port)
	m := ask(req, 16)
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(addr[8:12])), binary.BigEndian.Uint16(m[10:12]))
}

// TestPortMappingRouter: a symmetric router with PortMapping grants a LAN host a public
// port over NAT-PMP; unsolicited packets to it reach the host through the router's filter,
// and the host's answers leave from it. After a renumbering the router announces (and
// grants) its new address.
func TestPortMappingRouter(t *testing.T) {
	t.Parallel()
	lab := New(t, "upnp")
	inet := lab.Internet()
	srv := lab.AddHost("srv", inet)
	r, lan := lab.AddRouterWith("gw", inet, RouterOptions{NAT: NATSymmetric, PortMapping: true})
	h := lab.AddHost("pc", lan)

	const port = 41641
	conn, err := h.ListenPacket("udp4", ":41641")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ext := natpmpMap(t, conn, lan.Gateway(), port)
	if ext.Addr() != r.Addr() || ext.Port() == 0 {
		t.Fatalf("mapped %s: want the router's WAN address %s", ext, r.Addr())
	}

	peer, err := srv.ListenPacket("udp4", ":7000")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if _, err := peer.WriteTo([]byte("hello"), net.UDPAddrFromAddrPort(ext)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := conn.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("the mapped port did not forward: %q from %v, %v\n%s", buf[:n], from, err, r.PortMappingLog())
	}
	if _, err := conn.WriteTo([]byte("back"), from); err != nil {
		t.Fatal(err)
	}
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, back, err := peer.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "back" || back.(*net.UDPAddr).AddrPort() != ext {
		t.Fatalf("answer %q from %v, %v: want it from %s", buf[:n], back, err, ext)
	}

	// Renumbered: the router announces its new address to the LAN (224.0.0.1:5350) and
	// maps with it.
	ann, err := h.ListenPacket("udp4", ":5350")
	if err != nil {
		t.Fatal(err)
	}
	defer ann.Close()
	now := r.Renumber()
	ann.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		n, _, err := ann.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no announcement of the new address %s: %v\n%s", now, err, r.PortMappingLog())
		}
		// NAT-PMP's address announcement: version 0, opcode 128, result 0, epoch, address.
		if n == 12 && buf[0] == 0 && buf[1] == 0x80 && netip.AddrFrom4([4]byte(buf[8:12])) == now {
			break
		}
	}
	if ext := natpmpMap(t, conn, lan.Gateway(), port); ext.Addr() != now {
		t.Fatalf("after renumbering mapped %s: want %s", ext, now)
	}
}

func TestSTUNAnswer(t *testing.T) {
	req := []byte{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	got := stunAnswer(req, netip.MustParseAddrPort("203.0.113.7:51820"))
	// RFC 5389 §15.2: port ^ 0x2112 = 0xca6c ^ 0x2112 = 0xeb7e; address ^ 0x2112a442.
	want := []byte{1, 1, 0, 12, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
		0, 0x20, 0, 8, 0, 1, 0xeb, 0x7e, 0xcb ^ 0x21, 0x00 ^ 0x12, 0x71 ^ 0xa4, 0x07 ^ 0x42}
	if string(got) != string(want) {
		t.Errorf("answer %x, want %x", got, want)
	}
	if stunAnswer(req[:19], netip.MustParseAddrPort("203.0.113.7:1")) != nil || stunAnswer(append([]byte{1, 1}, req[2:]...), netip.MustParseAddrPort("203.0.113.7:1")) != nil {
		t.Error("answered what is no binding request")
	}
}
