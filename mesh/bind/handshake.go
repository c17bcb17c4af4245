package bind

import (
	"bytes"
	"time"
)

// WireGuard message types (the first byte; the next three are zero).
const (
	msgInitiation = 1
	msgResponse   = 2
)

// rekeyTimeout is WireGuard's REKEY_TIMEOUT: an initiation unanswered this long is retried.
const rekeyTimeout = 5 * time.Second

// Crossing handshakes. When two peers send each other an initiation at the same time, each
// consumes the other's, which throws away its own handshake state, so both responses are
// rejected and wireguard-go waits REKEY_TIMEOUT (5 s) to try again. That happens whenever
// both sides are configured within one trip time of each other — which relay-first and
// the broker's simultaneous punch make the rule, not the exception. The bind breaks the
// tie: while its own initiation to a peer is outstanding, the side with the greater public
// key drops the peer's initiation; the other side answers the greater key's initiation.

// noteHandshake records the handshake messages WireGuard sends to the peer.
func (e *PeerEndpoint) noteHandshake(pkt []byte, now time.Time) {
	switch pkt[0] {
	case msgInitiation:
		e.initSent.Store(now.UnixNano())
	case msgResponse:
		// Answering the peer's initiation replaced our own handshake state: our
		// initiation is no longer outstanding.
		e.initSent.Store(0)
	}
}

// admitHandshake says whether a received WireGuard packet from the peer goes to WireGuard:
// everything does except the peer's initiation while ours is outstanding and our key is
// the greater. A response from the peer ends our outstanding initiation.
func (b *Bind) admitHandshake(pe *PeerEndpoint, pkt []byte) bool {
	switch pkt[0] {
	case msgResponse:
		pe.initSent.Store(0)
	case msgInitiation:
		sent := pe.initSent.Load()
		if sent != 0 && time.Since(time.Unix(0, sent)) < rekeyTimeout && bytes.Compare(b.h.Self[:], pe.key[:]) > 0 {
			return false
		}
	}
	return true
}
