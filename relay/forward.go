package relay

import (
	"crypto/subtle"
	"net/netip"

	"github.com/weftmesh/weft/internal/relayproto"
	"github.com/weftmesh/weft/internal/udpbatch"
	"github.com/weftmesh/weft/wire"
)

// txBuf collects what one reader goroutine sends on UDP for one batch it read, so the
// batch goes out in as few system calls as possible. It is owned by that goroutine.
type txBuf struct {
	ls   []*udpListener // ls[i] sends msgs[i]
	msgs []udpbatch.Msg
	// open: the last message is a GSO run that may take more datagrams of its size.
	open  bool
	count int // datagrams in that run
	// arena holds this batch's control replies.
	arena []byte

	// Per-batch totals, added to the server's counters once by flush.
	fwdPackets, fwdBytes, unknown, rate, queue uint64
}

func newTxBuf() *txBuf {
	return &txBuf{arena: make([]byte, 0, 64*relayproto.WelcomeSize)}
}

// emitData queues forward frame f for UDP client d. A run of same-sized frames to one
// destination is coalesced into one GSO message when f's buffer has room after the run:
// read buffers are consumed in order and each frame shrinks as it is rewritten, so the
// bytes a run grows over were already forwarded, copied or dropped.
func (t *txBuf) emitData(d *client, f []byte) {
	if t.open {
		o := &t.msgs[len(t.msgs)-1]
		if t.ls[len(t.ls)-1] == d.udp && o.Addr == d.addr && len(f) <= o.Seg &&
			t.count < udpbatch.MaxSegments && len(o.Buf)+len(f) <= min(cap(o.Buf), udpbatch.MaxGSOBytes) {
			o.Buf = append(o.Buf, f...)
			t.count++
			t.open = len(f) == o.Seg // a shorter datagram must end a run
			return
		}
	}
	t.ls = append(t.ls, d.udp)
	t.msgs = append(t.msgs, udpbatch.Msg{Buf: f, Seg: len(f), Addr: d.addr})
	t.open = d.udp.conn.GSO() && len(f) <= d.udp.conn.GSOMaxSegment()
	t.count = 1
}

// reply queues a control message to addr on l.
func (t *txBuf) reply(l *udpListener, addr netip.AddrPort, b []byte) {
	t.ls = append(t.ls, l)
	t.msgs = append(t.msgs, udpbatch.Msg{Buf: b, Addr: addr})
	t.open = false
}

// flush sends everything queued and adds the batch's totals to the counters.
func (t *txBuf) flush(s *Server) {
	for i := 0; i < len(t.msgs); {
		j := i + 1
		for j < len(t.msgs) && t.ls[j] == t.ls[i] {
			j++
		}
		if err := t.ls[i].conn.WriteBatch(t.msgs[i:j]); err != nil {
			s.stats.droppedSend.Add(1)
			s.log.Debug("relay: UDP send failed", "err", err)
		}
		i = j
	}
	for i := range t.msgs {
		t.msgs[i] = udpbatch.Msg{}
		t.ls[i] = nil
	}
	t.msgs, t.ls, t.open, t.arena = t.msgs[:0], t.ls[:0], false, t.arena[:0]
	c := &s.stats
	if t.fwdPackets > 0 {
		c.forwardedPackets.Add(t.fwdPackets)
		c.forwardedBytes.Add(t.fwdBytes)
	}
	if t.unknown > 0 {
		c.droppedUnknown.Add(t.unknown)
	}
	if t.rate > 0 {
		c.droppedRate.Add(t.rate)
	}
	if t.queue > 0 {
		c.droppedQueue.Add(t.queue)
	}
	t.fwdPackets, t.fwdBytes, t.unknown, t.rate, t.queue = 0, 0, 0, 0, 0
}

// tokenOK compares a frame's token with the session's in constant time.
func tokenOK(c *client, tok []byte) bool {
	return subtle.ConstantTimeCompare(tok, c.token[:]) == 1
}

// forwarder looks destinations up for one reader, remembering the last one: a batch
// usually carries many frames to the same peer.
type forwarder struct {
	lastKey wire.Key
	last    *client
}

// forward sends on Data frame p (whose token the caller checked) from sender, rewriting
// it in place. It reports nothing: drops are counted in t.
func (f *forwarder) forward(s *Server, sender *client, p []byte, now int64, t *txBuf) {
	if !sender.bucket.take(len(p), now) {
		t.rate++
		return
	}
	dstKey := wire.Key(p[1+relayproto.TokenSize : relayproto.DataHeader])
	d := f.last
	if d == nil || dstKey != f.lastKey {
		d = s.lookup(dstKey)
		f.last, f.lastKey = d, dstKey
	}
	if d == nil || d == sender {
		t.unknown++
		return
	}
	fw := relayproto.DataToForward(p, sender.key)
	if d.udp != nil {
		t.emitData(d, fw)
	} else if !d.tcp.enqueue(fw) {
		t.queue++
		return
	}
	t.fwdPackets++
	t.fwdBytes += uint64(len(fw))
}

// reset forgets the cached destination; call it once per batch so a client replaced
// meanwhile is looked up afresh.
func (f *forwarder) reset() { f.last = nil }
