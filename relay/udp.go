package relay

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/weftmesh/weft/internal/relayproto"
	"github.com/weftmesh/weft/internal/udpbatch"
)

// batchSize is how many datagrams (or GRO runs) one read takes.
const batchSize = 64

// udpListener is one UDP socket the relay serves.
type udpListener struct {
	conn *udpbatch.Conn
}

// ListenUDP opens a UDP socket for ServeUDP with large buffers and, on Linux, GRO.
func ListenUDP(ctx context.Context, address string) (*net.UDPConn, error) {
	return udpbatch.Listen(ctx, "udp", address)
}

// ServeUDP serves the UDP transport on c until ctx ends, then closes c.
func (s *Server) ServeUDP(ctx context.Context, c *net.UDPConn) error {
	l := &udpListener{conn: udpbatch.New(c)}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer s.dropListener(l)
	s.log.Info("relay: serving UDP", "addr", c.LocalAddr(), "gso", l.conn.GSO(), "gro", l.conn.GRO())
	r := newUDPReader(s, l)
	var failures int
	for {
		n, err := l.conn.ReadBatch(r.msgs)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Errors such as an ICMP error queued on the socket are transient;
			// a socket that only fails is not.
			if failures++; failures > 100 {
				return err
			}
			s.log.Debug("relay: UDP read", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		failures = 0
		r.handle(r.msgs[:n])
		r.tx.flush(s)
	}
}

// dropListener forgets the clients bound on a socket that closed.
func (s *Server) dropListener(l *udpListener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, c := range s.byAddr {
		if k.l == l {
			s.removeLocked(c)
		}
	}
}

// udpReader is the state of one socket's read loop.
type udpReader struct {
	s    *Server
	l    *udpListener
	msgs []udpbatch.Msg
	tx   *txBuf
	fw   forwarder
}

func newUDPReader(s *Server, l *udpListener) *udpReader {
	r := &udpReader{s: s, l: l, msgs: make([]udpbatch.Msg, batchSize), tx: newTxBuf()}
	slab := make([]byte, batchSize*udpbatch.MaxDatagram)
	for i := range r.msgs {
		// Capped, so a GSO run grown in one buffer never spills into the next.
		r.msgs[i].Buf = slab[i*udpbatch.MaxDatagram : (i+1)*udpbatch.MaxDatagram : (i+1)*udpbatch.MaxDatagram]
	}
	return r
}

// handle processes one batch read from the socket, queueing what to send in r.tx.
func (r *udpReader) handle(msgs []udpbatch.Msg) {
	now := r.s.now()
	r.fw.reset()
	for i := range msgs {
		m := &msgs[i]
		if m.N == 0 {
			continue
		}
		// All datagrams of a GRO run come from one address: look its session up once.
		var sender *client
		looked, seen := false, false
		m.Segments(func(p []byte) {
			switch p[0] {
			case relayproto.TypeData, relayproto.TypePing:
				if !looked {
					sender, looked = r.s.bound(r.l, m.Addr), true
				}
				if len(p) < 1+relayproto.TokenSize || sender == nil || !tokenOK(sender, p[1:1+relayproto.TokenSize]) {
					r.s.stats.droppedUnauth.Add(1)
					return
				}
				seen = true
				r.authenticated(sender, p, m.Addr, now)
			case relayproto.TypeHello:
				r.hello(p, m.Addr, now)
			case relayproto.TypeAuth:
				r.auth(p, m.Addr, now)
			default:
				r.s.stats.droppedInvalid.Add(1)
			}
		})
		if seen {
			sender.lastSeen.Store(now)
		}
	}
}

// bound returns the client bound to addr on l, or nil.
func (s *Server) bound(l *udpListener, addr netip.AddrPort) *client {
	s.mu.RLock()
	c := s.byAddr[bindKey{l, addr}]
	s.mu.RUnlock()
	return c
}

// authenticated handles a frame whose token matched the session bound to its source.
func (r *udpReader) authenticated(sender *client, p []byte, from netip.AddrPort, now int64) {
	switch p[0] {
	case relayproto.TypeData:
		if len(p) < relayproto.DataHeader {
			r.s.stats.droppedInvalid.Add(1)
			return
		}
		r.fw.forward(r.s, sender, p, now, r.tx)
	case relayproto.TypePing:
		_, echo, ok := relayproto.ParsePing(p)
		if !ok {
			r.s.stats.droppedInvalid.Add(1)
			return
		}
		start := len(r.tx.arena)
		r.tx.arena = relayproto.AppendPong(r.tx.arena, echo)
		r.replyArena(from, start)
	}
}

// replyArena queues the reply built in r.tx.arena[start:]. (If appending grew the arena
// into a new array, earlier replies keep the old one: still valid.)
func (r *udpReader) replyArena(to netip.AddrPort, start int) {
	b := r.tx.arena[start:len(r.tx.arena):len(r.tx.arena)]
	r.tx.reply(r.l, to, b)
}

// hello answers a well-formed hello with a challenge no larger than it, unless the
// source is over its handshake rate. Anything else gets no answer.
func (r *udpReader) hello(p []byte, from netip.AddrPort, now int64) {
	h, err := relayproto.ParseHello(p)
	if err != nil {
		r.s.stats.droppedInvalid.Add(1)
		return
	}
	if !r.s.hellos.allow(from.Addr(), now) {
		r.s.stats.helloLimited.Add(1)
		return
	}
	cookie, err := r.s.cookies.issue(from, h, time.Now())
	if err != nil {
		r.s.log.Warn("relay: challenge", "err", err)
		return
	}
	r.s.stats.challenges.Add(1)
	start := len(r.tx.arena)
	r.tx.arena = relayproto.AppendChallenge(r.tx.arena, relayproto.Challenge{ClientNonce: h.Nonce, Cookie: cookie})
	r.replyArena(from, start)
}

// auth admits a client whose answer carries a fresh, unspent cookie issued to its
// address and a valid proof. A failed answer gets no reply.
func (r *udpReader) auth(p []byte, from netip.AddrPort, now int64) {
	a, err := relayproto.ParseAuth(p)
	if err != nil {
		r.s.stats.droppedInvalid.Add(1)
		return
	}
	if !r.s.hellos.allow(from.Addr(), now) {
		r.s.stats.helloLimited.Add(1)
		return
	}
	wall := time.Now()
	if !r.s.cookies.valid(a.Cookie, from, a.Client, a.ClientNonce, wall) {
		r.s.stats.authFailed.Add(1)
		return
	}
	t := relayproto.Transcript{Transport: relayproto.TransportUDP, Relay: r.s.pub, Client: a.Client, Nonce: a.ClientNonce, Cookie: a.Cookie}
	shared, ok := r.s.verify(&a, &t)
	if !ok || !r.s.cookies.spend(a.Cookie, wall) {
		r.s.stats.authFailed.Add(1)
		return
	}
	reply, err := r.s.grant(shared, &a, &t, &client{udp: r.l, addr: from})
	if reply == nil {
		r.s.log.Warn("relay: admit", "err", err)
		return
	}
	if err == nil {
		r.s.log.Debug("relay: client admitted", "key", a.Client, "udp", from)
	}
	r.tx.reply(r.l, from, reply)
}
