package relayclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/weftmesh/weft/internal/relayproto"
	"github.com/weftmesh/weft/internal/udpbatch"
	"github.com/weftmesh/weft/wire"
)

const (
	udpBatch  = 16      // datagrams (or GRO runs) per read
	sendArena = 1 << 18 // bytes of frames one SendBatch call stages at a time
	// firstRetransmit is the first handshake retransmission interval; it doubles.
	firstRetransmit = 250 * time.Millisecond
)

// udpConn is the UDP transport: a socket connected to the relay, so the kernel drops
// datagrams from anyone else.
type udpConn struct {
	conn  *udpbatch.Conn
	token relayproto.Token
	sends sync.Pool // *udpSend
}

type udpSend struct {
	buf  []byte
	msgs []udpbatch.Msg
}

func (c *Conn) newBatch() *rxBatch {
	b := &rxBatch{}
	if c.transport == "udp" {
		b.raw = make([][]byte, udpBatch)
		for i := range b.raw {
			b.raw[i] = make([]byte, udpbatch.MaxDatagram)
		}
		b.pkts = make([]pkt, 0, udpBatch)
	} else {
		b.raw = [][]byte{make([]byte, tlsSlab)}
		b.pkts = make([]pkt, 0, 64)
	}
	return b
}

// dialUDP opens a fresh socket (so a new NAT mapping) and runs the handshake on it,
// retransmitting until ctx ends.
func (c *Conn) dialUDP(ctx context.Context) (*session, error) {
	uc, err := udpbatch.Dial(ctx, "udp", c.cfg.UDPAddr)
	if err != nil {
		return nil, fmt.Errorf("relay %s: %w", c.cfg.UDPAddr, err)
	}
	u := &udpConn{conn: udpbatch.New(uc)}
	buf := make([]byte, udpbatch.MaxDatagram)
	deadline, _ := ctx.Deadline()
	wait := firstRetransmit
	// One attempt sends each message once and waits up to wait for its reply. A lost
	// message means starting over: a cookie, once answered, is spent.
	roundTrip := func(ctx context.Context, msg []byte, want byte, nonce [relayproto.NonceSize]byte) ([]byte, error) {
		if _, err := uc.Write(msg); err != nil && !isRefused(err) {
			return nil, err
		}
		until := time.Now().Add(wait)
		if deadline.Before(until) {
			until = deadline
		}
		uc.SetReadDeadline(until)
		for {
			n, err := uc.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					return nil, errNoReply
				}
				if isRefused(err) {
					// Nobody listens (yet): wait out this attempt.
					time.Sleep(time.Until(until))
					return nil, errNoReply
				}
				return nil, err
			}
			if replyFor(buf[:n], want, nonce) {
				return buf[:n], nil
			}
		}
	}
	var w relayproto.Welcome
	for {
		w, err = c.handshake(ctx, relayproto.TransportUDP, nil, roundTrip)
		if !errors.Is(err, errNoReply) {
			break
		}
		if ctx.Err() != nil || !time.Now().Before(deadline) {
			err = fmt.Errorf("relay %s did not answer the handshake: %w", c.cfg.UDPAddr, context.DeadlineExceeded)
			break
		}
		wait = min(2*wait, 2*time.Second)
	}
	if err != nil {
		uc.Close()
		return nil, err
	}
	uc.SetReadDeadline(time.Time{})
	u.token = w.Token
	s := newSession(c, w)
	s.t = u
	return s, nil
}

var errNoReply = errors.New("no reply")

func isRefused(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && isConnRefused(oe.Err)
}

func (u *udpConn) closeConn() { u.conn.Close() }

func (u *udpConn) start(s *session) { go u.readLoop(s) }

// readLoop reads datagrams until the session dies, passing forwarded frames to the
// Conn and pongs to keepalive.
func (u *udpConn) readLoop(s *session) {
	c := s.c
	var spare *rxBatch // read into this when RecvBatch holds every batch
	msgs := make([]udpbatch.Msg, udpBatch)
	starved := false
	for {
		b := s.freeBatch(!starved)
		starved = b == nil
		if b == nil && spare == nil {
			spare = c.newBatch()
		}
		var raw [][]byte
		if b != nil {
			raw = b.raw
		} else {
			raw = spare.raw
		}
		for i := range msgs {
			msgs[i].Buf = raw[i]
		}
		n, err := u.conn.ReadBatch(msgs)
		if err != nil {
			if b != nil {
				c.free <- b
			}
			s.close(fmt.Errorf("read: %w", err))
			return
		}
		for i := range n {
			msgs[i].Segments(func(p []byte) {
				switch p[0] {
				case relayproto.TypeForward:
					if b == nil {
						return
					}
					if src, data, ok := relayproto.ParseForward(p); ok {
						b.pkts = append(b.pkts, pkt{src: src, data: data})
					}
				case relayproto.TypePong:
					if echo, ok := relayproto.ParsePong(p); ok {
						s.pong(echo)
					}
				}
			})
		}
		if b != nil {
			c.deliver(b)
		}
	}
}

func (u *udpConn) ping(s *session, echo uint64) error {
	_, err := u.conn.UDPConn().Write(relayproto.AppendPing(nil, u.token, echo))
	return err
}

// send stages frames in an arena and writes them in batches, coalescing runs of equal
// size into GSO messages when the socket can.
func (u *udpConn) send(s *session, dst wire.Key, payloads [][]byte) error {
	sc, _ := u.sends.Get().(*udpSend)
	if sc == nil {
		sc = &udpSend{buf: make([]byte, 0, sendArena)}
	}
	defer u.sends.Put(sc)
	gso, maxSeg := u.conn.GSO(), u.conn.GSOMaxSegment()
	buf, msgs := sc.buf[:0], sc.msgs[:0]
	open, count := false, 0
	var first error
	flush := func() {
		if err := u.conn.WriteBatch(msgs); err != nil && first == nil {
			first = err
		}
		buf, msgs, open = buf[:0], msgs[:0], false
	}
	for _, p := range payloads {
		fl := relayproto.DataHeader + len(p)
		if len(buf)+fl > cap(buf) {
			flush()
		}
		start := len(buf)
		buf = buf[:start+fl]
		relayproto.PutDataHeader(buf[start:], u.token, dst)
		copy(buf[start+relayproto.DataHeader:], p)
		if open {
			last := &msgs[len(msgs)-1]
			if fl <= last.Seg && count < udpbatch.MaxSegments && len(last.Buf)+fl <= udpbatch.MaxGSOBytes {
				// Frames are staged back to back, so the run extends in place.
				last.Buf = last.Buf[:len(last.Buf)+fl]
				count++
				open = fl == last.Seg
				continue
			}
		}
		msgs = append(msgs, udpbatch.Msg{Buf: buf[start : start+fl], Seg: fl})
		open, count = gso && fl <= maxSeg, 1
	}
	if len(msgs) > 0 {
		flush()
	}
	sc.buf, sc.msgs = buf, msgs[:0]
	if first != nil {
		return fmt.Errorf("relay send: %w", first)
	}
	return nil
}
