package bind

import (
	"net"

	"github.com/weftmesh/weft/mesh/disco"
	"github.com/weftmesh/weft/wire"
	"golang.zx2c4.com/wireguard/conn"
)

// The relay receive path. WireGuard's third receive goroutine reads straight from the
// relay connection (a RelayReceiver) into its own buffers, and the batch is sorted in
// place as demux does for the socket: one copy per packet, no goroutine or queue between.
// (Through a reader goroutine and a queue, each packet cost two more copies and a channel
// operation, and each batch a goroutine switch; relayed TCP was CPU-bound on them.) The
// same goroutine also yields what aux sockets queue (queueIn). A blocked relay read is
// ended by a token on relayKick, which SetRelay, Close and queueIn put there.

// kickRelay makes the relay receive function look again, if it waits.
func (b *Bind) kickRelay() {
	select {
	case b.relayKick <- struct{}{}:
	default: // a token is already there
	}
}

// relayReceive yields WireGuard packets from the relay and the aux sockets until done is
// closed.
func (b *Bind) relayReceive(done <-chan struct{}) conn.ReceiveFunc {
	var srcs []wire.Key // only this function's goroutine calls it
	return func(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		if len(srcs) < len(bufs) {
			srcs = make([]wire.Key, len(bufs))
		}
		for {
			select {
			case <-done:
				return 0, net.ErrClosed
			default:
			}
			if n := b.takeQueued(bufs, sizes, eps); n > 0 {
				return n, nil
			}
			var rx RelayReceiver
			if box := b.relay.Load(); box != nil {
				rx, _ = box.r.(RelayReceiver)
			}
			if rx != nil {
				n, err := rx.RecvBatchUntil(b.relayKick, bufs, sizes, srcs[:len(bufs)])
				if n > 0 {
					b.demuxRelay(bufs[:n], sizes, eps, srcs)
					return n, nil
				}
				if err == nil {
					continue // kicked
				}
				// That relay is closed for good: wait for the next.
			}
			select {
			case <-b.relayKick:
			case <-done:
				return 0, net.ErrClosed
			}
		}
	}
}

// takeQueued copies the packets waiting in relayIn into bufs, up to a batch.
func (b *Bind) takeQueued(bufs [][]byte, sizes []int, eps []conn.Endpoint) int {
	n := 0
	for n < len(bufs) {
		select {
		case p := <-b.relayIn:
			sizes[n] = copy(bufs[n], p.data)
			eps[n] = p.ep
			b.freeRelay(p)
			n++
		default:
			return n
		}
	}
	return n
}

// demuxRelay sorts a batch read from the relay in place: WireGuard packets of a known
// peer get its endpoint (after the handshake tie-break); disco goes to the handler; those
// and anything else get size 0, which WireGuard skips.
func (b *Bind) demuxRelay(bufs [][]byte, sizes []int, eps []conn.Endpoint, srcs []wire.Key) {
	byKey := *b.byKey.Load()
	for i := range bufs {
		pkt := bufs[i][:sizes[i]]
		eps[i] = nil
		switch {
		case isWireGuard(pkt):
			if pe := byKey[srcs[i]]; pe != nil && b.admitHandshake(pe, pkt) {
				eps[i] = pe
				continue
			}
		case disco.Looks(pkt):
			if b.h.Disco != nil {
				b.h.Disco(Source{Relay: srcs[i]}, pkt)
			}
		}
		sizes[i] = 0
	}
}
