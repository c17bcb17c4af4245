// Package bind is weft's conn.Bind: one UDP socket per device for WireGuard, disco and STUN,
// wrapping wireguard-go's StdNetBind (batches, UDP GSO/GRO, large buffers), with per-peer
// routing over a direct address or the relay (docs/NAT-TRAVERSAL.md).
package bind

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/mesh/disco"
	"github.com/weftmesh/weft/mesh/stun"
	"github.com/weftmesh/weft/wire"
	"golang.zx2c4.com/wireguard/conn"
)

// PeerPrefix starts the endpoint string that names a peer instead of an address:
// "peer:<64 hex digits of its public key>".
const PeerPrefix = "peer:"

// relayQueue bounds the aux-socket packets waiting for WireGuard's relay receive function
// to read them; beyond it they are dropped, as a full socket buffer would.
const relayQueue = 1024

// ErrNoPath is returned by Send for a peer that has no route (or a relay route and no
// relay), and no room left to hold its packets until it gets one.
var ErrNoPath = errors.New("bind: no path to peer")

// Relay carries packets to peers by public key.
type Relay interface {
	// Send sends pkt to peer dst through the relay. It does not keep pkt.
	Send(dst wire.Key, pkt []byte) error
}

// BatchRelay is a Relay that can send a batch in fewer system calls; the bind uses it
// when the relay has it.
type BatchRelay interface {
	SendBatch(dst wire.Key, pkts [][]byte) error
}

// RelayReceiver is a Relay that the bind reads delivered packets from, in WireGuard's
// relay receive goroutine (relay.go); a Relay without it delivers nothing.
type RelayReceiver interface {
	// RecvBatchUntil blocks until at least one packet arrives, then copies up to
	// len(bufs) of them: packet i into bufs[i], its length into sizes[i], its sender
	// into srcs[i]. It returns 0 and no error as soon as a receive from stop succeeds,
	// and an error once the relay is closed for good.
	RecvBatchUntil(stop <-chan struct{}, bufs [][]byte, sizes []int, srcs []wire.Key) (int, error)
}

// Source is where a disco packet came from.
type Source struct {
	Addr  netip.AddrPort // a direct packet's source address; invalid through the relay
	Aux   uint32         // the aux socket a direct packet came in on; 0: the WireGuard socket
	Relay wire.Key       // through the relay: the peer the relay says sent it
}

// Config sets up a Bind.
type Config struct {
	// Self is this device's public key: it breaks ties between crossing handshakes.
	Self wire.Key
	// Disco and STUN receive what is not WireGuard's. They run on the receiving
	// goroutine, so they must be quick, and pkt is valid only during the call.
	Disco func(src Source, pkt []byte)
	STUN  func(src netip.AddrPort, pkt []byte)
}

// Route is how packets to a peer go. The zero Route holds them: a few packets wait, for a
// short while, for the next route (see queue.go).
type Route struct {
	Direct netip.AddrPort // valid: straight there
	Aux    uint32         // from this aux socket (aux.go) instead of the WireGuard socket
	Relay  bool           // else, through the relay
}

// route is a Route with the endpoint StdNetBind sends to, built once.
type route struct {
	Route
	direct *conn.StdNetEndpoint
}

// Bind is the conn.Bind. Create it with New.
type Bind struct {
	inner *conn.StdNetBind
	h     Config

	relay atomic.Pointer[relayBox]
	// addrs maps source addresses of direct packets to the peer they belong to; it is
	// replaced whole, never changed in place.
	addrs atomic.Pointer[map[netip.AddrPort]*PeerEndpoint]
	// byKey is a snapshot of peers for the relay receive path, replaced whole.
	byKey atomic.Pointer[map[wire.Key]*PeerEndpoint]

	relayIn    chan *relayPacket // WireGuard packets from aux sockets (queueIn)
	relayPool  sync.Pool
	relayDrops atomic.Uint64
	// relayKick holds a token when the relay receive function must look again: packets
	// were queued, the relay changed or the bind closed. It has one reader.
	relayKick chan struct{}

	// aux holds the aux sockets by ID (aux.go), replaced whole under auxMu.
	aux        atomic.Pointer[map[uint32]*auxSock]
	auxMu      sync.Mutex
	auxScratch sync.Pool // *auxScratch

	mu    sync.Mutex // guards the fields below
	peers map[wire.Key]*PeerEndpoint
	done  chan struct{} // closed by Close; the relay receive function returns then
}

type relayBox struct{ r Relay }

type relayPacket struct {
	ep   *PeerEndpoint
	data []byte
}

var _ conn.Bind = (*Bind)(nil)

// New returns a Bind around a fresh StdNetBind.
func New(h Config) *Bind {
	inner, ok := conn.NewStdNetBind().(*conn.StdNetBind)
	if !ok {
		// NewStdNetBind returns a *StdNetBind on every platform; this is a build error.
		panic("bind: conn.NewStdNetBind is not a *conn.StdNetBind")
	}
	b := &Bind{
		inner:     inner,
		h:         h,
		relayIn:   make(chan *relayPacket, relayQueue),
		relayKick: make(chan struct{}, 1),
		peers:     map[wire.Key]*PeerEndpoint{},
	}
	b.relayPool.New = func() any { return &relayPacket{data: make([]byte, 0, 2048)} }
	b.addrs.Store(&map[netip.AddrPort]*PeerEndpoint{})
	b.byKey.Store(&map[wire.Key]*PeerEndpoint{})
	b.aux.Store(&map[uint32]*auxSock{})
	return b
}

// Open opens the socket and returns StdNetBind's receive functions, wrapped to take disco
// and STUN out of each batch, plus one that yields packets the relay delivered.
func (b *Bind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	fns, actual, err := b.inner.Open(port)
	if err != nil {
		return nil, 0, err
	}
	b.mu.Lock()
	b.done = make(chan struct{})
	done := b.done
	b.mu.Unlock()
	out := make([]conn.ReceiveFunc, 0, len(fns)+1)
	for _, fn := range fns {
		out = append(out, b.wrapReceive(fn))
	}
	return append(out, b.relayReceive(done)), actual, nil
}

// Close closes the socket and the aux sockets, and ends the relay receive function.
func (b *Bind) Close() error {
	err := b.inner.Close()
	b.closeAux()
	b.mu.Lock()
	if b.done != nil {
		close(b.done)
		b.done = nil
	}
	b.mu.Unlock()
	b.kickRelay()
	for {
		select {
		case p := <-b.relayIn:
			b.freeRelay(p)
		default:
			return err
		}
	}
}

func (b *Bind) SetMark(mark uint32) error { return b.inner.SetMark(mark) }
func (b *Bind) BatchSize() int            { return b.inner.BatchSize() }

// ParseEndpoint understands "peer:<hex key>" (the peer, routed by its path) and a plain
// "ip:port" (that address, as StdNetBind sends to it).
func (b *Bind) ParseEndpoint(s string) (conn.Endpoint, error) {
	h, ok := strings.CutPrefix(s, PeerPrefix)
	if !ok {
		return b.inner.ParseEndpoint(s)
	}
	raw, err := hex.DecodeString(h)
	if err != nil || len(raw) != len(wire.Key{}) {
		return nil, fmt.Errorf("bind: endpoint %q: want %s and 64 hex digits", s, PeerPrefix)
	}
	return b.Peer(wire.Key(raw)), nil
}

// PeerEndpointString is the endpoint string for key that ParseEndpoint turns into its
// PeerEndpoint.
func PeerEndpointString(key wire.Key) string { return PeerPrefix + key.Hex() }

// Peer returns key's endpoint, the same one every time until RemovePeer.
func (b *Bind) Peer(key wire.Key) *PeerEndpoint {
	b.mu.Lock()
	defer b.mu.Unlock()
	if pe, ok := b.peers[key]; ok {
		return pe
	}
	pe := newPeerEndpoint(key)
	b.peers[key] = pe
	b.publishPeersLocked()
	return pe
}

// RemovePeer forgets key: its endpoint has no route any more and packets from its
// addresses are no longer attributed to it.
func (b *Bind) RemovePeer(key wire.Key) {
	b.mu.Lock()
	defer b.mu.Unlock()
	pe, ok := b.peers[key]
	if !ok {
		return
	}
	pe.route.Store(nil)
	pe.takeHeld(time.Time{})
	delete(b.peers, key)
	b.publishPeersLocked()
	old := *b.addrs.Load()
	addrs := make(map[netip.AddrPort]*PeerEndpoint, len(old))
	for a, p := range old {
		if p != pe {
			addrs[a] = p
		}
	}
	b.addrs.Store(&addrs)
}

func (b *Bind) publishPeersLocked() {
	m := make(map[wire.Key]*PeerEndpoint, len(b.peers))
	for k, pe := range b.peers {
		m[k] = pe
	}
	b.byKey.Store(&m)
}

// SetRoute sets how packets to key go from now on; packets held for want of a route go
// out on it at once.
func (b *Bind) SetRoute(key wire.Key, r Route) {
	rt := &route{Route: Route{Direct: unmap(r.Direct), Relay: r.Relay && !r.Direct.IsValid()}}
	if rt.Direct.IsValid() {
		rt.Aux = r.Aux
	}
	if rt.Direct.IsValid() && rt.Aux == 0 {
		rt.direct = &conn.StdNetEndpoint{AddrPort: rt.Direct}
	}
	pe := b.Peer(key)
	pe.route.Store(rt)
	if rt.Direct.IsValid() || rt.Relay {
		if held := pe.takeHeld(time.Now()); len(held) > 0 {
			b.sendRoute(pe, rt, held)
		}
	}
}

// SetAddrs replaces the map of source addresses to peers: WireGuard packets from these
// addresses are reported with the peer's endpoint, so WireGuard never roams away from
// path selection to an address the path manager knows.
func (b *Bind) SetAddrs(addrs map[netip.AddrPort]wire.Key) {
	m := make(map[netip.AddrPort]*PeerEndpoint, len(addrs))
	for a, k := range addrs {
		m[unmap(a)] = b.Peer(k)
	}
	b.addrs.Store(&m)
}

// SetRelay sets the relay that Route.Relay packets and SendRelay go through; nil: none.
func (b *Bind) SetRelay(r Relay) {
	if r == nil {
		b.relay.Store(nil)
	} else {
		b.relay.Store(&relayBox{r})
	}
	b.kickRelay()
}

// Send sends bufs to ep: through the peer's route for a PeerEndpoint, else straight to
// the address as StdNetBind would.
func (b *Bind) Send(bufs [][]byte, ep conn.Endpoint) error {
	pe, ok := ep.(*PeerEndpoint)
	if !ok {
		return b.inner.Send(bufs, ep)
	}
	pe.noteSend(bufs)
	rt := pe.route.Load()
	if rt == nil || (!rt.Direct.IsValid() && !rt.Relay) {
		// No route yet: hold the packets for the first one (WireGuard would otherwise
		// wait its 5 s handshake retry after a lost initiation).
		if !pe.hold(bufs, time.Now()) {
			return ErrNoPath
		}
		return nil
	}
	return b.sendRoute(pe, rt, bufs)
}

func (b *Bind) sendRoute(pe *PeerEndpoint, rt *route, bufs [][]byte) error {
	if rt.direct != nil {
		return b.inner.Send(bufs, rt.direct)
	}
	if rt.Aux != 0 {
		return b.sendAux(rt.Aux, rt.Direct, bufs)
	}
	return b.sendRelay(pe.key, bufs)
}

func (b *Bind) sendRelay(dst wire.Key, bufs [][]byte) error {
	box := b.relay.Load()
	if box == nil {
		return ErrNoPath
	}
	if br, ok := box.r.(BatchRelay); ok && len(bufs) > 1 {
		if err := br.SendBatch(dst, bufs); err != nil {
			return fmt.Errorf("bind: send through the relay: %w", err)
		}
		return nil
	}
	for _, buf := range bufs {
		if err := box.r.Send(dst, buf); err != nil {
			return fmt.Errorf("bind: send through the relay: %w", err)
		}
	}
	return nil
}

// SendRelay sends one packet (disco) to peer dst through the relay.
func (b *Bind) SendRelay(dst wire.Key, pkt []byte) error {
	return b.sendRelay(dst, [][]byte{pkt})
}

// SendTo sends one packet (disco, STUN) from the WireGuard socket to addr. A ttl > 0 sets
// the IP TTL (hop limit) of this packet alone, where the platform can (Linux: an IP_TTL
// control message on the one sendmsg, so concurrent WireGuard sends are unaffected);
// elsewhere it returns errors.ErrUnsupported.
func (b *Bind) SendTo(addr netip.AddrPort, pkt []byte, ttl int) error {
	addr = unmap(addr)
	if ttl > 0 {
		if ttl > 255 {
			return fmt.Errorf("bind: TTL %d out of range", ttl)
		}
		return b.sendTTL(addr, pkt, ttl)
	}
	return b.inner.Send([][]byte{pkt}, &conn.StdNetEndpoint{AddrPort: addr})
}

// RelayDrops counts aux-socket packets dropped because WireGuard did not keep up.
func (b *Bind) RelayDrops() uint64 { return b.relayDrops.Load() }

// queueIn queues a WireGuard packet of peer pe that came in on an aux socket for the relay
// receive function, copied.
func (b *Bind) queueIn(pe *PeerEndpoint, pkt []byte) {
	if !b.admitHandshake(pe, pkt) {
		return
	}
	p := b.relayPool.Get().(*relayPacket)
	p.ep, p.data = pe, append(p.data[:0], pkt...)
	select {
	case b.relayIn <- p:
		b.kickRelay()
	default:
		b.relayDrops.Add(1)
		b.freeRelay(p)
	}
}

func (b *Bind) freeRelay(p *relayPacket) {
	p.ep = nil
	b.relayPool.Put(p)
}

// wrapReceive post-processes each batch StdNetBind reads, in place: WireGuard packets from
// a known address get their peer's endpoint; disco and STUN go to the handlers; those and
// anything else get size 0, which WireGuard skips. (The batch cannot be compacted:
// wireguard-go reads packet i from its own buffer array at index i.)
func (b *Bind) wrapReceive(fn conn.ReceiveFunc) conn.ReceiveFunc {
	return func(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		n, err := fn(bufs, sizes, eps)
		if n > 0 {
			b.demux(bufs[:n], sizes, eps)
		}
		return n, err
	}
}

func (b *Bind) demux(bufs [][]byte, sizes []int, eps []conn.Endpoint) {
	addrs := *b.addrs.Load()
	for i := range bufs {
		if sizes[i] == 0 {
			continue
		}
		pkt := bufs[i][:sizes[i]]
		se, _ := eps[i].(*conn.StdNetEndpoint)
		if isWireGuard(pkt) {
			if se != nil {
				if pe := addrs[se.AddrPort]; pe != nil {
					eps[i] = pe
					if !b.admitHandshake(pe, pkt) {
						sizes[i] = 0
					}
				}
			}
			continue
		}
		sizes[i] = 0
		if se == nil {
			continue
		}
		switch {
		case disco.Looks(pkt):
			if b.h.Disco != nil {
				b.h.Disco(Source{Addr: se.AddrPort}, pkt)
			}
		case stun.IsSTUN(pkt):
			if b.h.STUN != nil {
				b.h.STUN(se.AddrPort, pkt)
			}
		}
	}
}

// isWireGuard reports whether pkt starts with a WireGuard message type: 1–4 as a
// little-endian uint32.
func isWireGuard(pkt []byte) bool {
	return len(pkt) >= 4 && pkt[0] >= 1 && pkt[0] <= 4 && pkt[1] == 0 && pkt[2] == 0 && pkt[3] == 0
}

func unmap(a netip.AddrPort) netip.AddrPort {
	if !a.IsValid() {
		return a
	}
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}
