package bind

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/mesh/disco"
	"github.com/weftmesh/weft/mesh/stun"
	"github.com/weftmesh/weft/wire"
	"golang.zx2c4.com/wireguard/conn"
)

var (
	keyA = wire.Key{0xA}
	keyB = wire.Key{0xB}
)

// wgPacket is a WireGuard transport message of n bytes tagged with b.
func wgPacket(n int, b byte) []byte {
	p := make([]byte, n)
	p[0] = 4
	for i := 4; i < n; i++ {
		p[i] = b
	}
	return p
}

func discoPacket(t testing.TB) []byte {
	a, err := wire.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	pkt, err := disco.Seal(a, keyB, &disco.Ping{})
	if err != nil {
		t.Fatal(err)
	}
	return pkt
}

// recorder collects what the handlers get.
type recorder struct {
	mu    sync.Mutex
	disco []Source
	stun  []netip.AddrPort
}

func (r *recorder) handlers() Config {
	return Config{
		Disco: func(src Source, pkt []byte) { r.mu.Lock(); r.disco = append(r.disco, src); r.mu.Unlock() },
		STUN:  func(src netip.AddrPort, pkt []byte) { r.mu.Lock(); r.stun = append(r.stun, src); r.mu.Unlock() },
	}
}

func TestParseEndpoint(t *testing.T) {
	b := New(Config{})
	ep, err := b.ParseEndpoint(PeerEndpointString(keyA))
	if err != nil {
		t.Fatal(err)
	}
	pe, ok := ep.(*PeerEndpoint)
	if !ok || pe.Key() != keyA || pe != b.Peer(keyA) {
		t.Fatalf("got %#v, want the peer's one endpoint", ep)
	}
	if pe.DstToString() != "peer:"+keyA.Hex() || !pe.DstIP().IsValid() {
		t.Fatalf("endpoint strings: %q %v", pe.DstToString(), pe.DstIP())
	}
	if b.Peer(keyB).DstIP() == pe.DstIP() {
		t.Fatal("two peers share a rate-limiting address")
	}
	ep, err = b.ParseEndpoint("192.0.2.1:51820")
	if se, ok := ep.(*conn.StdNetEndpoint); err != nil || !ok || se.AddrPort != netip.MustParseAddrPort("192.0.2.1:51820") {
		t.Fatalf("plain endpoint: %#v, %v", ep, err)
	}
	for _, bad := range []string{"peer:", "peer:zz", "peer:" + keyA.Hex()[:62], "nonsense"} {
		if _, err := b.ParseEndpoint(bad); err == nil {
			t.Errorf("ParseEndpoint(%q) accepted", bad)
		}
	}
}

func TestDemux(t *testing.T) {
	var r recorder
	b := New(r.handlers())
	known := netip.MustParseAddrPort("203.0.113.1:1000")
	other := netip.MustParseAddrPort("203.0.113.2:2000")
	b.SetAddrs(map[netip.AddrPort]wire.Key{known: keyA})
	_, req := stun.Request()
	pkts := [][]byte{
		wgPacket(100, 1), // 0: WireGuard from a known address
		wgPacket(100, 2), // 1: WireGuard from elsewhere
		discoPacket(t),   // 2
		req,              // 3: STUN
		[]byte("GET / HTTP/1.1\r\n\r\n garbage!"), // 4
		{5, 0, 0, 0, 1, 2, 3},                     // 5: not a WireGuard type
	}
	srcs := []netip.AddrPort{known, other, other, other, other, known}
	bufs := make([][]byte, len(pkts))
	sizes := make([]int, len(pkts))
	eps := make([]conn.Endpoint, len(pkts))
	for i, p := range pkts {
		bufs[i] = append(make([]byte, 0, 2048), p...)[:2048]
		sizes[i] = len(p)
		eps[i] = &conn.StdNetEndpoint{AddrPort: srcs[i]}
	}
	b.demux(bufs, sizes, eps)
	if eps[0] != conn.Endpoint(b.Peer(keyA)) || sizes[0] != 100 {
		t.Errorf("known source: endpoint %#v size %d", eps[0], sizes[0])
	}
	if se, ok := eps[1].(*conn.StdNetEndpoint); !ok || se.AddrPort != other || sizes[1] != 100 {
		t.Errorf("unknown source: endpoint %#v size %d", eps[1], sizes[1])
	}
	if !slices.Equal(sizes[2:], []int{0, 0, 0, 0}) {
		t.Errorf("non-WireGuard sizes %v, want zeros", sizes[2:])
	}
	if len(r.disco) != 1 || r.disco[0].Addr != other || len(r.stun) != 1 || r.stun[0] != other {
		t.Errorf("handlers got disco %v, STUN %v", r.disco, r.stun)
	}
}

// fakeRelay records what goes through it.
type fakeRelay struct {
	mu   sync.Mutex
	dsts []wire.Key
	pkts [][]byte
	err  error
}

// batchRelay is a fakeRelay that also sends batches.
type batchRelay struct {
	fakeRelay
	batches int
}

func (f *batchRelay) SendBatch(dst wire.Key, pkts [][]byte) error {
	f.batches++
	for _, p := range pkts {
		f.Send(dst, p)
	}
	return f.err
}

func (f *fakeRelay) Send(dst wire.Key, pkt []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dsts = append(f.dsts, dst)
	f.pkts = append(f.pkts, bytes.Clone(pkt))
	return f.err
}

// listener is a plain UDP socket on loopback that tests read from.
func listener(t *testing.T) (*net.UDPConn, netip.AddrPort) {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, c.LocalAddr().(*net.UDPAddr).AddrPort()
}

func readOne(t *testing.T, c *net.UDPConn) ([]byte, netip.AddrPort) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65536)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return buf[:n], from
}

func nothingArrives(t *testing.T, c *net.UDPConn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, _, err := c.ReadFromUDPAddrPort(make([]byte, 2048)); err == nil {
		t.Fatalf("unexpected %d-byte packet", n)
	}
}

func openBind(t *testing.T, h Config) (*Bind, []conn.ReceiveFunc, uint16) {
	t.Helper()
	b := New(h)
	fns, port, err := b.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, fns, port
}

func TestSendRouting(t *testing.T) {
	b, _, _ := openBind(t, Config{})
	l1, a1 := listener(t)
	l2, a2 := listener(t)
	pe := b.Peer(keyA)
	pkt := wgPacket(200, 7)

	b.SetRoute(keyA, Route{Direct: a1})
	if err := b.Send([][]byte{pkt, pkt}, pe); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if got, _ := readOne(t, l1); !bytes.Equal(got, pkt) {
			t.Fatal("direct: wrong packet")
		}
	}
	if pe.LastSend().IsZero() {
		t.Fatal("data send not recorded")
	}

	relay := &fakeRelay{}
	b.SetRoute(keyA, Route{Relay: true})
	if err := b.Send([][]byte{pkt}, pe); !errors.Is(err, ErrNoPath) {
		t.Fatalf("relay route without a relay: %v", err)
	}
	b.SetRelay(relay)
	if err := b.Send([][]byte{pkt, wgPacket(32, 0)}, pe); err != nil {
		t.Fatal(err)
	}
	if len(relay.pkts) != 2 || relay.dsts[0] != keyA || !bytes.Equal(relay.pkts[0], pkt) {
		t.Fatalf("relay got %d packets to %v", len(relay.pkts), relay.dsts)
	}
	nothingArrives(t, l1)
	relay.err = errors.New("relay gone")
	if err := b.Send([][]byte{pkt}, pe); err == nil {
		t.Fatal("relay error not reported")
	}
	br := &batchRelay{}
	b.SetRelay(br)
	if err := b.Send([][]byte{pkt, pkt, pkt}, pe); err != nil || br.batches != 1 || len(br.pkts) != 3 {
		t.Fatalf("batch relay: %v, %d batches, %d packets", err, br.batches, len(br.pkts))
	}

	// A plain endpoint passes straight through.
	if err := b.Send([][]byte{pkt}, &conn.StdNetEndpoint{AddrPort: a2}); err != nil {
		t.Fatal(err)
	}
	readOne(t, l2)

	b.RemovePeer(keyA)
	if err := b.Send([][]byte{pkt}, pe); err != nil {
		t.Fatalf("a removed peer's packets are held, not refused: %v", err)
	}
	if pe.Route() != (Route{}) {
		t.Fatalf("removed peer still has route %+v", pe.Route())
	}
}

// TestHold: packets to a peer without a route wait (a few, briefly) and leave on the
// first route it gets.
func TestHold(t *testing.T) {
	b, _, _ := openBind(t, Config{})
	l, a := listener(t)
	pe := b.Peer(keyA)
	first := wgPacket(148, 1) // a handshake initiation's size
	buf := bytes.Clone(first)
	if err := b.Send([][]byte{buf}, pe); err != nil {
		t.Fatalf("no route: %v", err)
	}
	buf[10] = 0xFF // WireGuard reuses its buffers: the bind kept a copy
	nothingArrives(t, l)
	b.SetRoute(keyA, Route{Direct: a})
	if got, _ := readOne(t, l); !bytes.Equal(got, first) {
		t.Fatal("held packet differs")
	}
	// Sent once only.
	b.SetRoute(keyA, Route{Direct: a})
	nothingArrives(t, l)

	// Beyond maxHeld, the oldest go.
	b.SetRoute(keyA, Route{})
	for i := range maxHeld + 4 {
		b.Send([][]byte{wgPacket(100, byte(i))}, pe)
	}
	b.SetRoute(keyA, Route{Direct: a})
	for i := 4; i < maxHeld+4; i++ {
		if got, _ := readOne(t, l); got[4] != byte(i) {
			t.Fatalf("held packet %d: got tag %d", i, got[4])
		}
	}
	nothingArrives(t, l)

	// Stale ones are dropped.
	b.SetRoute(keyA, Route{})
	pe.hold([][]byte{wgPacket(100, 9)}, time.Now().Add(-holdFor-time.Second))
	b.SetRoute(keyA, Route{Direct: a})
	nothingArrives(t, l)
}

// TestKeepaliveIsNotData: WireGuard's keepalives do not make a peer look active.
func TestKeepaliveIsNotData(t *testing.T) {
	b := New(Config{})
	pe := b.Peer(keyA)
	b.SetRoute(keyA, Route{Relay: true})
	b.SetRelay(&fakeRelay{})
	b.Send([][]byte{wgPacket(keepaliveLen, 0)}, pe)
	if !pe.LastSend().IsZero() {
		t.Fatal("a keepalive counted as data")
	}
}

// TestLoopback: two real binds exchange WireGuard packets (attributed to the sending peer),
// disco and STUN over loopback; disco and STUN never reach WireGuard.
func TestLoopback(t *testing.T) {
	var ra, rb recorder
	a, _, portA := openBind(t, ra.handlers())
	b, fnsB, portB := openBind(t, rb.handlers())
	addrA := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), portA)
	addrB := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), portB)
	a.SetRoute(keyB, Route{Direct: addrB})
	b.SetAddrs(map[netip.AddrPort]wire.Key{addrA: keyA})

	var batch [][]byte
	for i := range 10 {
		batch = append(batch, wgPacket(1200, byte(i)))
	}
	if err := a.Send(batch, a.Peer(keyB)); err != nil {
		t.Fatal(err)
	}
	if err := a.SendTo(addrB, discoPacket(t), 0); err != nil {
		t.Fatal(err)
	}
	_, req := stun.Request()
	if err := a.SendTo(addrB, req, 0); err != nil {
		t.Fatal(err)
	}
	if err := a.SendTo(addrB, wgPacket(64, 0xEE), 0); err != nil { // from A, but A is known: attributed
		t.Fatal(err)
	}

	bufs := make([][]byte, b.BatchSize())
	for i := range bufs {
		bufs[i] = make([]byte, 65536)
	}
	sizes := make([]int, len(bufs))
	eps := make([]conn.Endpoint, len(bufs))
	var got [][]byte
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < 11 && time.Now().Before(deadline) {
		n, err := fnsB[0](bufs, sizes, eps) // IPv4
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if sizes[i] == 0 {
				continue
			}
			if eps[i] != conn.Endpoint(b.Peer(keyA)) {
				t.Fatalf("packet from A reported with endpoint %#v", eps[i])
			}
			got = append(got, bytes.Clone(bufs[i][:sizes[i]]))
		}
	}
	if len(got) != 11 {
		t.Fatalf("got %d WireGuard packets, want 11", len(got))
	}
	for i, p := range batch {
		if !bytes.Equal(got[i], p) {
			t.Fatalf("packet %d differs", i)
		}
	}
	rb.mu.Lock()
	defer rb.mu.Unlock()
	if len(rb.disco) != 1 || rb.disco[0].Addr != addrA || len(rb.stun) != 1 || rb.stun[0] != addrA {
		t.Fatalf("B's handlers got disco %v, STUN %v", rb.disco, rb.stun)
	}
}

// TestSendAllocs: routing a batch to a peer's direct path allocates nothing beyond what
// StdNetBind's own Send does.
func TestSendAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	b, _, _ := openBind(t, Config{})
	_, to := listener(t)
	b.SetRoute(keyA, Route{Direct: to})
	pe := b.Peer(keyA)
	bufs := [][]byte{wgPacket(1400, 1), wgPacket(1400, 2)}
	direct := &conn.StdNetEndpoint{AddrPort: to}
	plain := testing.AllocsPerRun(200, func() { b.inner.Send(bufs, direct) })
	routed := testing.AllocsPerRun(200, func() { b.Send(bufs, pe) })
	if routed > plain {
		t.Fatalf("routed Send allocates %.1f per call, StdNetBind %.1f", routed, plain)
	}
}

// BenchmarkSend compares sending batches of 128 packets to a peer through the bind with
// StdNetBind sending them to the same address, alternating in the same run.
func BenchmarkSend(b *testing.B) {
	wb := New(Config{})
	if _, _, err := wb.Open(0); err != nil {
		b.Fatal(err)
	}
	defer wb.Close()
	plain := conn.NewStdNetBind()
	if _, _, err := plain.Open(0); err != nil {
		b.Fatal(err)
	}
	defer plain.Close()
	sink, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	to := sink.LocalAddr().(*net.UDPAddr).AddrPort()
	wb.SetRoute(keyA, Route{Direct: to})
	pe := wb.Peer(keyA)
	direct := &conn.StdNetEndpoint{AddrPort: to}
	bufs := make([][]byte, conn.IdealBatchSize)
	for i := range bufs {
		// Room to coalesce into, as WireGuard's buffers have.
		bufs[i] = append(make([]byte, 0, 65536), wgPacket(1420, byte(i))...)
	}
	var weft, std time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := wb.Send(bufs, pe); err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		if err := plain.Send(bufs, direct); err != nil {
			b.Fatal(err)
		}
		weft += mid.Sub(start)
		std += time.Since(mid)
	}
	b.ReportMetric(float64(weft.Nanoseconds())/float64(b.N), "weft-ns/batch")
	b.ReportMetric(float64(std.Nanoseconds())/float64(b.N), "std-ns/batch")
	b.ReportMetric(float64(std)/float64(weft), "speed-ratio")
}

// handshakeMsg is a WireGuard handshake message of type typ.
func handshakeMsg(typ byte, n int) []byte {
	p := make([]byte, n)
	p[0] = typ
	return p
}

// TestCrossingHandshake: while its own initiation is outstanding, the side with the
// greater key drops the peer's initiation; the other side lets it through.
func TestCrossingHandshake(t *testing.T) {
	from := netip.MustParseAddrPort("203.0.113.1:1000")
	deliver := func(b *Bind, pkt []byte) int {
		bufs := [][]byte{append(make([]byte, 0, 2048), pkt...)[:2048]}
		sizes := []int{len(pkt)}
		eps := []conn.Endpoint{&conn.StdNetEndpoint{AddrPort: from}}
		b.demux(bufs, sizes, eps)
		return sizes[0]
	}
	for _, c := range []struct {
		self, peer wire.Key
		drops      bool
	}{{keyB, keyA, true}, {keyA, keyB, false}} {
		b := New(Config{Self: c.self})
		b.SetAddrs(map[netip.AddrPort]wire.Key{from: c.peer})
		rel := &fakeRelay{}
		b.SetRelay(rel)
		b.SetRoute(c.peer, Route{Relay: true})
		pe := b.Peer(c.peer)
		init := handshakeMsg(msgInitiation, 148)
		if deliver(b, init) == 0 {
			t.Fatal("an initiation was dropped with none of ours outstanding")
		}
		b.Send([][]byte{init}, pe)
		if got := deliver(b, init) == 0; got != c.drops {
			t.Fatalf("self %x, peer %x: dropped %v, want %v", c.self[0], c.peer[0], got, c.drops)
		}
		// Through the relay the same.
		sizes := []int{len(init)}
		b.demuxRelay([][]byte{init}, sizes, make([]conn.Endpoint, 1), []wire.Key{c.peer})
		if got := sizes[0] == 0; got != c.drops {
			t.Fatalf("relay: dropped %v, want %v", got, c.drops)
		}
		if c.drops {
			// A drop resends our initiation from another goroutine, which makes it
			// outstanding again: let that land before the steps below.
			waitSent(t, rel, 2)
		}
		// The peer's response ends our outstanding initiation.
		if deliver(b, handshakeMsg(msgResponse, 92)) == 0 {
			t.Fatal("response dropped")
		}
		if deliver(b, init) == 0 {
			t.Fatal("initiation dropped after our handshake completed")
		}
		// So does our own response, and time.
		b.Send([][]byte{init}, pe)
		b.Send([][]byte{handshakeMsg(msgResponse, 92)}, pe)
		if deliver(b, init) == 0 {
			t.Fatal("initiation dropped after we answered one")
		}
		b.Send([][]byte{init}, pe)
		pe.initSent.Store(time.Now().Add(-rekeyTimeout).UnixNano())
		if deliver(b, init) == 0 {
			t.Fatal("initiation dropped after ours timed out")
		}
	}
}

// TestHoldSupersedes: a held initiation is dropped when WireGuard sends a newer handshake
// message; data stays.
func TestHoldSupersedes(t *testing.T) {
	b, _, _ := openBind(t, Config{})
	l, a := listener(t)
	pe := b.Peer(keyA)
	i1, i2 := handshakeMsg(msgInitiation, 148), handshakeMsg(msgInitiation, 148)
	i1[4], i2[4] = 1, 2
	resp := handshakeMsg(msgResponse, 92)
	b.Send([][]byte{i1}, pe)
	b.Send([][]byte{i2}, pe)
	b.Send([][]byte{resp}, pe)
	b.SetRoute(keyA, Route{Direct: a})
	if got, _ := readOne(t, l); !bytes.Equal(got, resp) {
		t.Fatalf("first packet out: % x…, want the response", got[:5])
	}
	nothingArrives(t, l)

	b.SetRoute(keyA, Route{})
	b.Send([][]byte{i1}, pe)
	b.Send([][]byte{i2}, pe)
	b.SetRoute(keyA, Route{Direct: a})
	if got, _ := readOne(t, l); !bytes.Equal(got, i2) {
		t.Fatalf("got initiation %d, want only the newer one", got[4])
	}
	nothingArrives(t, l)
}

// TestCrossingResendsOurInitiation: when the tie-break drops the peer's initiation, our own
// initiation goes out again, byte for byte, so a peer that lost it can answer at once.
func TestCrossingResendsOurInitiation(t *testing.T) {
	b := New(Config{Self: keyB})
	rel := &fakeRelay{}
	b.SetRelay(rel)
	b.SetRoute(keyA, Route{Relay: true})
	pe := b.Peer(keyA)
	ours := handshakeMsg(msgInitiation, 148)
	ours[4] = 7
	if err := b.Send([][]byte{ours}, pe); err != nil {
		t.Fatal(err)
	}
	sent := func() [][]byte {
		rel.mu.Lock()
		defer rel.mu.Unlock()
		return append([][]byte(nil), rel.pkts...)
	}
	if n := len(sent()); n != 1 {
		t.Fatalf("relay got %d packets, want our initiation", n)
	}
	theirs := handshakeMsg(msgInitiation, 148)
	if b.admitHandshake(pe, theirs) {
		t.Fatal("the peer's initiation passed while ours is outstanding and our key is the greater")
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(sent()) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	got := sent()
	if len(got) != 2 || !bytes.Equal(got[1], ours) {
		t.Fatalf("after the drop the relay got %d packets, want our initiation resent", len(got))
	}
	// A second drop right away does not resend again (rate limit).
	b.admitHandshake(pe, theirs)
	time.Sleep(50 * time.Millisecond)
	if n := len(sent()); n != 2 {
		t.Fatalf("resent %d times within the rate limit", n-1)
	}
}
