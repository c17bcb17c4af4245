package bind

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/wire"
	"golang.zx2c4.com/wireguard/conn"
)

// PeerEndpoint is a peer as WireGuard's endpoint: packets sent to it take the peer's
// current route. There is one per peer (Bind.Peer), so WireGuard sees the same endpoint
// whichever path a packet arrived on.
type PeerEndpoint struct {
	key   wire.Key
	str   string     // "peer:<hex>"
	dstIP netip.Addr // stands in for an address where WireGuard wants one (rate limiting)

	route atomic.Pointer[route]
	// lastSend is when WireGuard last sent more than a keepalive (Unix nanoseconds).
	lastSend atomic.Int64
	// initSent is when WireGuard last sent the peer a handshake initiation that is still
	// outstanding (Unix nanoseconds; 0: none). See handshake.go.
	initSent atomic.Int64
	// lastInit is a copy of that initiation, resent when the tie-break drops the peer's
	// own initiation (handshake.go); lastResend rate-limits that (Unix nanoseconds).
	lastInit   atomic.Pointer[[]byte]
	lastResend atomic.Int64

	hmu  sync.Mutex // guards held
	held held       // packets waiting for a route
}

var _ conn.Endpoint = (*PeerEndpoint)(nil)

func newPeerEndpoint(key wire.Key) *PeerEndpoint {
	// A unique-local IPv6 address made from the key: WireGuard's handshake rate limiter
	// buckets by address (by /64 for IPv6), so each peer gets a bucket of its own.
	var a [16]byte
	a[0] = 0xfd
	copy(a[1:], key[:15])
	return &PeerEndpoint{key: key, str: PeerEndpointString(key), dstIP: netip.AddrFrom16(a)}
}

// Key is the peer's public key.
func (e *PeerEndpoint) Key() wire.Key { return e.key }

// Route is the peer's current route.
func (e *PeerEndpoint) Route() Route {
	if rt := e.route.Load(); rt != nil {
		return rt.Route
	}
	return Route{}
}

// LastSend is when WireGuard last sent the peer more than a keepalive; zero if never.
func (e *PeerEndpoint) LastSend() time.Time {
	if ns := e.lastSend.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// keepaliveLen is the size of a WireGuard keepalive (an empty transport message).
const keepaliveLen = 32

// noteSend records data and handshakes going out. Data is recorded at most every few
// milliseconds, so a busy peer's sends do not all write the same cache line.
func (e *PeerEndpoint) noteSend(bufs [][]byte) {
	data := false
	var now time.Time
	for _, b := range bufs {
		if len(b) > keepaliveLen {
			data = true
		}
		if len(b) > 0 && (b[0] == msgInitiation || b[0] == msgResponse) {
			if now.IsZero() {
				now = time.Now()
			}
			e.noteHandshake(b, now)
		}
	}
	if !data {
		return
	}
	if now.IsZero() {
		now = time.Now()
	}
	if ns := now.UnixNano(); ns-e.lastSend.Load() > int64(10*time.Millisecond) {
		e.lastSend.Store(ns)
	}
}

func (e *PeerEndpoint) ClearSrc()           {}
func (e *PeerEndpoint) SrcToString() string { return "" }
func (e *PeerEndpoint) DstToString() string { return e.str }
func (e *PeerEndpoint) DstToBytes() []byte  { return e.key[:] }
func (e *PeerEndpoint) DstIP() netip.Addr   { return e.dstIP }
func (e *PeerEndpoint) SrcIP() netip.Addr   { return netip.Addr{} }
