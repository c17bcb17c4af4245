package bind

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/weftmesh/weft/internal/udpbatch"
	"github.com/weftmesh/weft/mesh/disco"
	"github.com/weftmesh/weft/wire"
	"golang.org/x/net/ipv4"
)

// Aux sockets serve birthday probing (docs/NAT-TRAVERSAL.md, "One symmetric NAT"): behind
// a NAT that maps every destination to a new random port, each extra socket opens one
// more mapping towards a peer, and the one the peer's spray finds carries that peer's
// traffic from then on. An aux socket belongs to one peer: WireGuard packets arriving on
// it are that peer's. While it only probes it reads one small datagram at a time; once
// WireGuard's packets arrive on it, it carries a tunnel, and reads in batches with GRO
// like the WireGuard socket. Sends go out in batches with GSO.

// auxReadSize bounds a datagram on a probing aux socket: WireGuard's packets at weft's MTU
// and disco fit; keeping it small keeps an attempt's 256 readers at 512 KiB in all.
const auxReadSize = 2048

// auxBatch is how many messages a tunnel-carrying aux socket reads per system call.
const auxBatch = 8

// ErrNoAux is returned for a send from an aux socket that is not open.
var ErrNoAux = errors.New("bind: no such aux socket")

type auxSock struct {
	id   uint32
	conn *net.UDPConn
	wr   *udpbatch.Conn // batched sends with GSO
	pe   *PeerEndpoint
}

// SetAux makes the open aux sockets exactly want (ID → the peer each is for): it opens
// the missing ones on fresh ports and closes the others. It reports the sockets it could
// not open; the others are set up anyway.
func (b *Bind) SetAux(want map[uint32]wire.Key) error {
	b.auxMu.Lock()
	defer b.auxMu.Unlock()
	cur := *b.aux.Load()
	same := len(cur) == len(want)
	for id, k := range want {
		if s, ok := cur[id]; !ok || s.pe.key != k {
			same = false
			break
		}
	}
	if same {
		return nil
	}
	next := make(map[uint32]*auxSock, len(want))
	var errs []error
	for id, k := range want {
		if s, ok := cur[id]; ok && s.pe.key == k {
			next[id] = s
			continue
		}
		c, err := net.ListenUDP("udp4", &net.UDPAddr{})
		if err != nil {
			errs = append(errs, fmt.Errorf("bind: open aux socket %d: %w", id, err))
			continue
		}
		s := &auxSock{id: id, conn: c, wr: udpbatch.New(c), pe: b.Peer(k)}
		next[id] = s
		go b.readAux(s)
	}
	for id, s := range cur {
		if next[id] != s {
			s.conn.Close()
		}
	}
	b.aux.Store(&next)
	return errors.Join(errs...)
}

// closeAux closes every aux socket.
func (b *Bind) closeAux() {
	b.auxMu.Lock()
	defer b.auxMu.Unlock()
	for _, s := range *b.aux.Load() {
		s.conn.Close()
	}
	b.aux.Store(&map[uint32]*auxSock{})
}

// AuxPort is the local port of aux socket id (0 when it is not open).
func (b *Bind) AuxPort(id uint32) uint16 {
	if s := (*b.aux.Load())[id]; s != nil {
		return s.conn.LocalAddr().(*net.UDPAddr).AddrPort().Port()
	}
	return 0
}

// SendAux sends one packet (disco) from aux socket id to addr; a ttl > 0 limits this
// packet's TTL where the platform can (else errors.ErrUnsupported, as SendTo).
func (b *Bind) SendAux(id uint32, addr netip.AddrPort, pkt []byte, ttl int) error {
	s := (*b.aux.Load())[id]
	if s == nil {
		return ErrNoAux
	}
	addr = unmap(addr)
	if !addr.Addr().Is4() {
		return fmt.Errorf("bind: aux socket %d: %s is not IPv4", id, addr)
	}
	if ttl > 0 {
		if ttl > 255 {
			return fmt.Errorf("bind: TTL %d out of range", ttl)
		}
		err := writeTTL(s.conn, addr, pkt, ttl)
		if !errors.Is(err, errors.ErrUnsupported) {
			return err
		}
		// No per-packet TTL here; the socket is ours alone and carries no traffic
		// yet while it probes, so its own TTL can change around the one send.
		return sendSocketTTL(s.conn, addr, pkt, ttl)
	}
	if _, err := s.conn.WriteToUDPAddrPort(pkt, addr); err != nil {
		return fmt.Errorf("bind: send from aux socket %d to %s: %w", id, addr, err)
	}
	return nil
}

func sendSocketTTL(c *net.UDPConn, addr netip.AddrPort, pkt []byte, ttl int) error {
	pc := ipv4.NewConn(c)
	old, err := pc.TTL()
	if err != nil {
		return fmt.Errorf("bind: read the TTL of an aux socket: %w", err)
	}
	if err := pc.SetTTL(ttl); err != nil {
		return fmt.Errorf("bind: set the TTL of an aux socket: %w", err)
	}
	defer pc.SetTTL(old)
	if _, err := c.WriteToUDPAddrPort(pkt, addr); err != nil {
		return fmt.Errorf("bind: send to %s with TTL %d: %w", addr, ttl, err)
	}
	return nil
}

// auxScratch is sendAux's per-call memory: messages and the buffer GSO runs are copied to.
type auxScratch struct {
	msgs []udpbatch.Msg
	buf  []byte
}

// sendAux sends WireGuard's packets from aux socket id: runs of equal-sized packets are
// copied into one buffer and leave as one GSO message, as StdNetBind does.
func (b *Bind) sendAux(id uint32, addr netip.AddrPort, bufs [][]byte) error {
	s := (*b.aux.Load())[id]
	if s == nil {
		return ErrNoAux
	}
	sc, _ := b.auxScratch.Get().(*auxScratch)
	if sc == nil {
		sc = &auxScratch{}
	}
	defer b.auxScratch.Put(sc)
	sc.msgs, sc.buf = coalesce(sc.msgs[:0], sc.buf[:0], bufs, addr, s.wr.GSO())
	if err := s.wr.WriteBatch(sc.msgs); err != nil {
		return fmt.Errorf("bind: send from aux socket %d to %s: %w", id, addr, err)
	}
	return nil
}

// coalesce appends bufs to msgs as messages to addr. With gso, consecutive packets of one
// size (and a shorter last one) share one message whose Buf is their concatenation in
// scratch; scratch is grown once up front, so every message's Buf stays valid.
func coalesce(msgs []udpbatch.Msg, scratch []byte, bufs [][]byte, addr netip.AddrPort, gso bool) ([]udpbatch.Msg, []byte) {
	if !gso || len(bufs) < 2 {
		for _, p := range bufs {
			msgs = append(msgs, udpbatch.Msg{Buf: p, Addr: addr})
		}
		return msgs, scratch
	}
	total := 0
	for _, p := range bufs {
		total += len(p)
	}
	if cap(scratch) < total {
		scratch = make([]byte, 0, total)
	}
	for i := 0; i < len(bufs); {
		seg, start := len(bufs[i]), len(scratch)
		scratch = append(scratch, bufs[i]...)
		i++
		for i < len(bufs) && len(bufs[i]) <= seg && len(bufs[i]) > 0 {
			scratch = append(scratch, bufs[i]...)
			i++
			if len(bufs[i-1]) < seg {
				break // a shorter packet ends the run
			}
		}
		m := udpbatch.Msg{Buf: scratch[start:], Addr: addr}
		if len(m.Buf) > seg {
			m.Seg = seg
		}
		msgs = append(msgs, m)
	}
	return msgs, scratch
}

// readAux reads aux socket s until it is closed: WireGuard packets go to WireGuard as
// the socket's peer's, disco to the disco handler; the rest is dropped. The first
// WireGuard packet turns it into a tunnel's socket, read in batches with GRO.
func (b *Bind) readAux(s *auxSock) {
	buf := make([]byte, auxReadSize)
	for {
		n, src, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // an ICMP error reported on the socket, say: keep reading
		}
		if b.handleAux(s, buf[:n], src) {
			break
		}
	}
	enableGRO(s.conn)
	s.conn.SetReadBuffer(udpbatch.SocketBuffer)
	s.conn.SetWriteBuffer(udpbatch.SocketBuffer)
	rd := udpbatch.New(s.conn)
	size := auxReadSize
	if rd.GRO() {
		size = udpbatch.MaxDatagram
	}
	msgs := make([]udpbatch.Msg, auxBatch)
	for i := range msgs {
		msgs[i].Buf = make([]byte, size)
	}
	for {
		n, err := rd.ReadBatch(msgs)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		for i := range msgs[:n] {
			src := msgs[i].Addr
			msgs[i].Segments(func(p []byte) { b.handleAux(s, p, src) })
		}
	}
}

// handleAux passes on one datagram that came in on s; it reports whether it was WireGuard's.
func (b *Bind) handleAux(s *auxSock, pkt []byte, src netip.AddrPort) bool {
	switch {
	case isWireGuard(pkt):
		b.queueIn(s.pe, pkt)
		return true
	case disco.Looks(pkt):
		if b.h.Disco != nil {
			b.h.Disco(Source{Addr: unmap(src), Aux: s.id}, pkt)
		}
	}
	return false
}
