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
// But ours may have been lost — typically it reached the peer (or the relay) before the
// peer knew us, and the peer's initiation is the sign that it knows us now. So when the
// tie-break drops the peer's initiation, the bind sends ours again, byte for byte: a peer
// that never got it answers it at once instead of after REKEY_TIMEOUT, and a peer that did
// get it rejects the copy as a replay (WireGuard's timestamp), which is harmless.

// resendEvery bounds how often our initiation is resent to one peer.
const resendEvery = 200 * time.Millisecond

// noteHandshake records the handshake messages WireGuard sends to the peer.
func (e *PeerEndpoint) noteHandshake(pkt []byte, now time.Time) {
	switch pkt[0] {
	case msgInitiation:
		e.initSent.Store(now.UnixNano())
		cp := append([]byte(nil), pkt...)
		e.lastInit.Store(&cp)
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
			b.resendInitiation(pe)
			return false
		}
	}
	return true
}

// resendInitiation sends our outstanding initiation to the peer again, off the receive path.
func (b *Bind) resendInitiation(pe *PeerEndpoint) {
	init := pe.lastInit.Load()
	now := time.Now().UnixNano()
	last := pe.lastResend.Load()
	if init == nil || now-last < int64(resendEvery) || !pe.lastResend.CompareAndSwap(last, now) {
		return
	}
	pkt := append([]byte(nil), (*init)...)
	// Best effort: if it fails, WireGuard's own retry still comes.
	go func() { _ = b.Send([][]byte{pkt}, pe) }()
}
