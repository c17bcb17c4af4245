package bind

import (
	"slices"
	"time"
)

// Packets sent to a peer without a route wait for one, within these bounds. The first
// packet to a new peer is WireGuard's handshake initiation; lost, it is retried only after
// 5 s, while a route (the relay connecting, disco confirming a path) comes within
// milliseconds.
const (
	maxHeld = 16
	holdFor = 2 * time.Second
)

// held is what waits for a route, guarded by PeerEndpoint.hmu.
type held struct {
	pkts  [][]byte
	since time.Time // when the oldest waiting packet came
}

// hold copies bufs into the peer's waiting packets, dropping the oldest beyond maxHeld.
// A handshake initiation or response makes a waiting initiation obsolete (WireGuard has
// replaced the state it belongs to), so that one is dropped: sent late, it would make the
// peer throw away a handshake that can still complete. It reports false if nothing could
// be kept.
func (e *PeerEndpoint) hold(bufs [][]byte, now time.Time) bool {
	e.hmu.Lock()
	defer e.hmu.Unlock()
	if len(e.held.pkts) > 0 && now.Sub(e.held.since) > holdFor {
		e.held.pkts = e.held.pkts[:0]
	}
	if len(e.held.pkts) == 0 {
		e.held.since = now
	}
	for _, b := range bufs {
		if len(b) > 0 && (b[0] == msgInitiation || b[0] == msgResponse) {
			e.held.pkts = slices.DeleteFunc(e.held.pkts, func(p []byte) bool { return p[0] == msgInitiation })
		}
		e.held.pkts = append(e.held.pkts, slices.Clone(b))
	}
	if n := len(e.held.pkts); n > maxHeld {
		e.held.pkts = slices.Delete(e.held.pkts, 0, n-maxHeld)
	}
	return len(e.held.pkts) > 0
}

// takeHeld returns the waiting packets that are still fresh at now and forgets them all.
func (e *PeerEndpoint) takeHeld(now time.Time) [][]byte {
	e.hmu.Lock()
	defer e.hmu.Unlock()
	pkts := e.held.pkts
	e.held.pkts = nil
	if now.IsZero() || now.Sub(e.held.since) > holdFor {
		return nil
	}
	return pkts
}
