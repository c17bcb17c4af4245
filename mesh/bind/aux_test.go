package bind

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/weftmesh/weft/wire"
	"golang.org/x/net/ipv4"
	"golang.zx2c4.com/wireguard/conn"
)

// TestAux: aux sockets open and close as asked, send disco and WireGuard's packets from
// their own port, and hand what arrives to the disco handler or to WireGuard as their
// peer's.
func TestAux(t *testing.T) {
	discoSeen := make(chan Source, 4)
	b, fns, port := openBind(t, Config{Disco: func(src Source, pkt []byte) { discoSeen <- src }})
	relayFn := fns[len(fns)-1]
	l, addr := listener(t)

	if err := b.SetAux(map[uint32]wire.Key{1: keyA, 2: keyA, 3: keyB}); err != nil {
		t.Fatal(err)
	}
	p1, p2 := b.AuxPort(1), b.AuxPort(2)
	if p1 == 0 || p2 == 0 || p1 == p2 || p1 == port {
		t.Fatalf("aux ports %d, %d (WireGuard's %d): want two new ones", p1, p2, port)
	}

	// Disco out, from the aux socket's own port; a TTL-limited probe too.
	if err := b.SendAux(1, addr, []byte("probe"), 0); err != nil {
		t.Fatal(err)
	}
	if _, from := readOne(t, l); from.Port() != p1 {
		t.Fatalf("aux disco came from port %d, want %d", from.Port(), p1)
	}
	switch err := b.SendAux(2, addr, []byte("ttl"), 2); {
	case err == nil:
		if _, from := readOne(t, l); from.Port() != p2 {
			t.Fatalf("aux probe came from port %d, want %d", from.Port(), p2)
		}
	case !errors.Is(err, errors.ErrUnsupported):
		t.Fatal(err)
	}
	if err := b.SendAux(9, addr, []byte("x"), 0); !errors.Is(err, ErrNoAux) {
		t.Fatalf("send from a socket never opened: %v", err)
	}

	// WireGuard's packets follow a route through aux socket 1.
	b.SetRoute(keyA, Route{Direct: addr, Aux: 1})
	pkt := wgPacket(300, 5)
	if err := b.Send([][]byte{pkt, pkt}, b.Peer(keyA)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		got, from := readOne(t, l)
		if !bytes.Equal(got, pkt) || from.Port() != p1 {
			t.Fatalf("WireGuard packet from port %d (want %d), equal %v", from.Port(), p1, bytes.Equal(got, pkt))
		}
	}

	// In: disco to the handler with the socket's ID; WireGuard to WireGuard as keyA's.
	to1 := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p1)
	if _, err := l.WriteToUDPAddrPort(discoPacket(t), to1); err != nil {
		t.Fatal(err)
	}
	select {
	case src := <-discoSeen:
		if src.Aux != 1 || src.Addr != addr {
			t.Fatalf("disco source %+v, want %s on aux 1", src, addr)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no disco from the aux socket")
	}
	l.WriteToUDPAddrPort([]byte("garbage"), to1)
	if _, err := l.WriteToUDPAddrPort(wgPacket(120, 8), to1); err != nil {
		t.Fatal(err)
	}
	bufs, sizes, eps := [][]byte{make([]byte, 2048)}, make([]int, 1), make([]conn.Endpoint, 1)
	if n, err := relayFn(bufs, sizes, eps); err != nil || n != 1 || sizes[0] != 120 || bufs[0][5] != 8 || eps[0] != conn.Endpoint(b.Peer(keyA)) {
		t.Fatalf("WireGuard from the aux socket: %d packets, %v, size %d, endpoint %v", n, err, sizes[0], eps[0])
	}

	// Now a tunnel's socket, it reads in batches (with GRO): packets still arrive whole.
	for i := range 20 {
		l.WriteToUDPAddrPort(wgPacket(1000, byte(i)), to1)
	}
	l.WriteToUDPAddrPort(discoPacket(t), to1)
	got := 0
	for got < 20 {
		n, err := relayFn(bufs, sizes, eps)
		if err != nil || n != 1 || sizes[0] != 1000 || bufs[0][5] != byte(got) {
			t.Fatalf("packet %d in batch mode: n %d, %v, size %d, tag %d", got, n, err, sizes[0], bufs[0][5])
		}
		got++
	}
	select {
	case src := <-discoSeen:
		if src.Aux != 1 {
			t.Fatalf("disco in batch mode from %+v", src)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no disco in batch mode")
	}

	// Sockets no longer wanted close; one that moves to another peer is made anew.
	if err := b.SetAux(map[uint32]wire.Key{1: keyA, 3: keyA}); err != nil {
		t.Fatal(err)
	}
	if b.AuxPort(2) != 0 || b.AuxPort(1) != p1 {
		t.Fatalf("after SetAux: aux 2 on port %d, aux 1 on %d (want %d)", b.AuxPort(2), b.AuxPort(1), p1)
	}
	c2, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p2)))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.Write([]byte("anyone?"))
	c2.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := c2.Read(make([]byte, 64)); err == nil {
		t.Fatal("closed aux socket answered")
	}

	b.Close()
	if b.AuxPort(1) != 0 {
		t.Fatal("Close left an aux socket open")
	}
}

// The fallback for platforms without a per-packet TTL sets the aux socket's own TTL around
// the one send and puts it back.
func TestSendSocketTTL(t *testing.T) {
	l, addr := listener(t)
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	before, err := ipv4.NewConn(c).TTL()
	if err != nil {
		t.Fatal(err)
	}
	if err := sendSocketTTL(c, addr, []byte("probe"), 2); err != nil {
		t.Fatal(err)
	}
	if got, _ := readOne(t, l); string(got) != "probe" {
		t.Fatalf("got %q", got)
	}
	if after, err := ipv4.NewConn(c).TTL(); err != nil || after != before {
		t.Fatalf("TTL after the probe %d (%v), want %d back", after, err, before)
	}
}

// coalesce turns WireGuard's batch into GSO runs of equal-sized packets (a shorter one
// ends a run) whose segments are the packets, in order.
func TestCoalesce(t *testing.T) {
	sizes := []int{100, 100, 100, 60, 100, 200, 200, 200, 200, 10, 10, 300}
	var bufs [][]byte
	for i, n := range sizes {
		bufs = append(bufs, bytes.Repeat([]byte{byte(i)}, n))
	}
	addr := netip.MustParseAddrPort("192.0.2.1:9")
	for _, gso := range []bool{false, true} {
		msgs, _ := coalesce(nil, nil, bufs, addr, gso)
		var back [][]byte
		for i := range msgs {
			m := msgs[i]
			if m.Addr != addr {
				t.Fatalf("message to %s", m.Addr)
			}
			m.N = len(m.Buf)
			m.Segments(func(p []byte) { back = append(back, p) })
		}
		if len(back) != len(bufs) {
			t.Fatalf("gso %v: %d packets back, want %d", gso, len(back), len(bufs))
		}
		for i := range bufs {
			if !bytes.Equal(back[i], bufs[i]) {
				t.Fatalf("gso %v: packet %d differs", gso, i)
			}
		}
		want := len(bufs)
		if gso {
			want = 5 // [100 100 100 60] [100] [200 200 200 200 10] [10] [300]
		}
		if len(msgs) != want {
			t.Fatalf("gso %v: %d messages, want %d", gso, len(msgs), want)
		}
	}
}
