package mesh

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/mesh/relayclient"
	"github.com/weftmesh/weft/mesh/stun/stuntest"
	"github.com/weftmesh/weft/wire"
)

// memHub is an in-memory relay: connections by key, packets forwarded by destination key.
type memHub struct {
	mu    sync.Mutex
	conns map[wire.Key]*memRelay
	// down makes Send fail and Status report disconnected, as a relay that went away.
	down bool
}

type memPacket struct {
	src  wire.Key
	data []byte
}

type memRelay struct {
	hub    *memHub
	self   wire.Key
	in     chan memPacket
	closed chan struct{}
	once   sync.Once
}

func (h *memHub) dial(_ context.Context, _ wire.RelayInfo, priv wire.Key) (RelayConn, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := &memRelay{hub: h, self: priv.Public(), in: make(chan memPacket, 1024), closed: make(chan struct{})}
	if h.conns == nil {
		h.conns = map[wire.Key]*memRelay{}
	}
	h.conns[r.self] = r
	return r, nil
}

func (r *memRelay) Send(dst wire.Key, pkt []byte) error {
	r.hub.mu.Lock()
	to, down := r.hub.conns[dst], r.hub.down
	r.hub.mu.Unlock()
	if down {
		return relayclient.ErrNotConnected
	}
	if to != nil {
		select {
		case to.in <- memPacket{src: r.self, data: bytes.Clone(pkt)}:
		default:
		}
	}
	return nil
}

func (r *memRelay) RecvBatchUntil(stop <-chan struct{}, bufs [][]byte, sizes []int, srcs []wire.Key) (int, error) {
	select {
	case p := <-r.in:
		sizes[0], srcs[0] = copy(bufs[0], p.data), p.src
		return 1, nil
	case <-r.closed:
		return 0, net.ErrClosed
	case <-stop:
		return 0, nil
	}
}

func (r *memRelay) Status() relayclient.Status {
	r.hub.mu.Lock()
	defer r.hub.mu.Unlock()
	return relayclient.Status{Connected: !r.hub.down}
}

func (r *memRelay) Reconnect() {}

func (r *memRelay) Close() error {
	r.once.Do(func() { close(r.closed) })
	return nil
}

// testEngine starts an engine named name with mesh address addr.
func testEngine(t *testing.T, name, addr string, dial RelayDialer) (*Engine, wire.Key) {
	t.Helper()
	k, err := wire.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{TUNName: name, PrivateKey: k, Address: netip.MustParsePrefix(addr), DialRelay: dial})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, k.Public()
}

func loopbackUp(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v: %s", err, out)
	}
}

func local(port int) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
}

// waitPath waits until e reports the peer with key on a path named path with a handshake.
func waitPath(t *testing.T, e *Engine, key wire.Key, path string) PeerStats {
	t.Helper()
	var last PeerStats
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		st, err := e.Stats()
		if err != nil {
			t.Fatal(err)
		}
		last = st[key]
		if last.Path == path && !last.LastHandshake.IsZero() {
			return last
		}
	}
	t.Fatalf("%s: peer stats %+v; want path %q and a handshake", e.InterfaceName(), last, path)
	return last
}

// TestEnginesDirect: two engines that know each other's address find the direct path
// with disco and complete a WireGuard handshake over it.
func TestEnginesDirect(t *testing.T) {
	if !inFreshNetns(t) {
		return
	}
	loopbackUp(t)
	a, ka := testEngine(t, "weft-ea", "100.64.0.1/10", nil)
	b, kb := testEngine(t, "weft-eb", "100.64.0.2/10", nil)
	peer := func(k wire.Key, port int, ip string) Peer {
		return Peer{PublicKey: k, AllowedIPs: []netip.Prefix{netip.MustParsePrefix(ip)}, PersistentKeepalive: time.Second,
			Candidates: []Candidate{{Addr: local(port), Kind: CandidateLAN}}}
	}
	if err := a.SetPeers([]Peer{peer(kb, b.ListenPort(), "100.64.0.2/32")}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetPeers([]Peer{peer(ka, a.ListenPort(), "100.64.0.1/32")}); err != nil {
		t.Fatal(err)
	}
	st := waitPath(t, a, kb, "direct lan")
	if st.PathAddr != local(b.ListenPort()) || st.Endpoint != st.PathAddr || st.RTT <= 0 || st.Reason != "" {
		t.Fatalf("a's view of b: %+v", st)
	}
	waitPath(t, b, ka, "direct lan")
	// Peers saw each other's pings come from 127.0.0.1:port.
	if r := a.Reflexive(); len(r) != 1 || r[0] != local(a.ListenPort()) {
		t.Fatalf("a's reflexive addresses %v", r)
	}

	// b goes away; a, told its network changed, finds the path dead and says so.
	b.Close()
	a.Rebind()
	select {
	case <-a.PathLost():
	case <-time.After(10 * time.Second):
		t.Fatal("no path-lost signal")
	}
	if st, _ := a.Stats(); st[kb].Path != "none" || st[kb].Reason == "" {
		t.Fatalf("after losing b: %+v", st[kb])
	}
}

// TestEnginesRelayFirst: with a relay and no direct path, the handshake goes through the
// relay at once; when a direct candidate appears the peers move to it.
func TestEnginesRelayFirst(t *testing.T) {
	if !inFreshNetns(t) {
		return
	}
	loopbackUp(t)
	hub := &memHub{}
	a, ka := testEngine(t, "weft-ea", "100.64.0.1/10", hub.dial)
	b, kb := testEngine(t, "weft-eb", "100.64.0.2/10", hub.dial)
	relays := []wire.RelayInfo{{Name: "mem", UDP: "192.0.2.1:3478", PublicKey: wire.Key{1}}}
	peer := func(k wire.Key, ip string, cands ...Candidate) Peer {
		return Peer{PublicKey: k, AllowedIPs: []netip.Prefix{netip.MustParsePrefix(ip)}, PersistentKeepalive: time.Second, Candidates: cands}
	}
	// Peers first, as a map arrives: WireGuard's first handshake has no path yet and
	// waits in the bind for the relay.
	if err := a.SetPeers([]Peer{peer(kb, "100.64.0.2/32")}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetPeers([]Peer{peer(ka, "100.64.0.1/32")}); err != nil {
		t.Fatal(err)
	}
	if st, _ := a.Stats(); st[kb].Path != "none" || st[kb].Reason != "still probing" {
		t.Fatalf("before the relay: %+v", st[kb])
	}
	a.SetRelays(relays)
	b.SetRelays(relays)
	a.SetRelays(relays) // the same list again is a no-op
	st := waitPath(t, a, kb, "relay mem")
	if st.PathAddr.IsValid() || st.Reason == "" {
		t.Fatalf("relayed peer: %+v", st)
	}
	// The relay's round trip is measured with disco pings through it.
	for deadline := time.Now().Add(5 * time.Second); st.RTT == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no relay RTT: %+v", st)
		}
		s, _ := a.Stats()
		st = s[kb]
	}

	// A direct candidate appears on one side only: call-me-maybe through the relay and
	// pings teach the other side.
	if err := a.SetPeers([]Peer{peer(kb, "100.64.0.2/32", Candidate{Addr: local(b.ListenPort()), Kind: CandidatePublic})}); err != nil {
		t.Fatal(err)
	}
	waitPath(t, a, kb, "direct")
	waitPath(t, b, ka, "direct")

	select {
	case <-a.PathLost():
		t.Fatal("path lost signalled before any direct path was lost")
	default:
	}

	// The relay going away leaves the direct path alone.
	hub.mu.Lock()
	hub.down = true
	hub.mu.Unlock()
	time.Sleep(1500 * time.Millisecond)
	waitPath(t, a, kb, "direct")

	a.SetRelays(nil)
	if up, _ := a.relayStatus(); up {
		t.Fatal("relay still in use after SetRelays(nil)")
	}
}

func TestEngineSTUN(t *testing.T) {
	if !inFreshNetns(t) {
		return
	}
	loopbackUp(t)
	e, _ := testEngine(t, "weft-ea", "100.64.0.1/10", nil)
	s1, s2 := stuntest.Server(t), stuntest.Server(t)
	silent := local(9) // discard: nobody answers

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	mapped, err := e.STUN(ctx, []netip.AddrPort{s1, silent, s2})
	if err != nil {
		t.Fatal(err)
	}
	self := local(e.ListenPort()) // the WireGuard socket's own port: the requests left from it
	if mapped[0] != self || mapped[1].IsValid() || mapped[2] != self {
		t.Fatalf("mapped %v, want %v, nothing, %v", mapped, self, self)
	}
	if nat := e.NAT(); nat != wire.NATEasy {
		t.Fatalf("NAT %q after two equal answers", nat)
	}
	if r := e.Reflexive(); len(r) != 1 || r[0] != self {
		t.Fatalf("reflexive %v", r)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	_, err = e.STUN(ctx, []netip.AddrPort{silent})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("no answer: %v", err)
	}
	if nat := e.NAT(); nat != wire.NATUDPBlocked {
		t.Fatalf("NAT %q after no answer", nat)
	}
	if _, err := e.STUN(context.Background(), nil); err == nil {
		t.Fatal("STUN with no servers succeeded")
	}
}

// TestEngineFloodBeforeHandshake: packets sent to a peer before its first handshake
// completes are staged by WireGuard, each holding a pooled buffer. A flood of them must
// not take the buffers the receive routines need to take in the handshake that releases
// them: with the pool bounded too tightly, the relay receive routine blocked forever on
// the peer's first transport packet and the tunnel never carried anything.
func TestEngineFloodBeforeHandshake(t *testing.T) {
	if !inFreshNetns(t) {
		return
	}
	loopbackUp(t)
	hub := &memHub{}
	a, ka := testEngine(t, "weft-fa", "100.64.0.1/10", hub.dial)
	b, kb := testEngine(t, "weft-fb", "100.64.0.2/10", hub.dial)
	if bytes.Compare(ka[:], kb[:]) > 0 {
		// a must answer b's initiation (the bind's tie-break favours the greater key), so
		// that a is the responder waiting for b's first transport packet.
		a, b, ka, kb = b, a, kb, ka
	}
	relays := []wire.RelayInfo{{Name: "mem", UDP: "192.0.2.1:3478", PublicKey: wire.Key{1}}}
	// Traffic for 10.99.0.0/24 goes through a's interface to b (no local address there,
	// so the kernel routes it into the tunnel).
	if err := a.SetPeers([]Peer{{PublicKey: kb, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.99.0.0/24")}}}); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ip", "route", "add", "10.99.0.0/24", "dev", a.InterfaceName()).CombinedOutput(); err != nil {
		t.Fatalf("ip route add: %v: %s", err, out)
	}
	// a's first initiation goes to the relay while b is not on it, and is lost.
	a.SetRelays(relays)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if up, _ := a.relayStatus(); up {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a: relay not connected")
		}
	}
	conn, err := net.Dial("udp", "10.99.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	payload := make([]byte, 100)
	for range 400 {
		if _, err := conn.Write(payload); err != nil {
			t.Fatalf("flood: %v", err)
		}
	}
	// b comes up and initiates; a answers and needs b's first transport packet (its
	// keepalive) to confirm the session and send what it staged.
	if err := b.SetPeers([]Peer{{PublicKey: ka, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("100.64.0.1/32")}, PersistentKeepalive: time.Second}}); err != nil {
		t.Fatal(err)
	}
	b.SetRelays(relays)
	var last PeerStats
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st, err := b.Stats()
		if err != nil {
			t.Fatal(err)
		}
		// The staged packets arrive: far more than the handshake and keepalives.
		if last = st[ka]; last.RxBytes > 10*uint64(len(payload)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b: staged traffic from a never arrived: %+v", last)
		}
	}
	if _, err := conn.Write(payload); err != nil {
		t.Fatalf("after the handshake: %v", err)
	}
}
