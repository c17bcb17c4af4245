// Package relayclient connects a device to a weft relay over UDP or TLS, proves the
// device's key, checks the relay's, and sends and receives frames by peer key.
package relayclient

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/internal/relayproto"
	"github.com/weftmesh/weft/wire"
)

// Defaults for Config's zero values.
const (
	DefaultKeepalive        = 10 * time.Second
	DefaultHandshakeTimeout = 5 * time.Second
	// A ping is given up after four round trips, within these bounds; pingTries lost
	// in a row end the session.
	minPingTimeout = 300 * time.Millisecond
	maxPingTimeout = 3 * time.Second
	pingTries      = 3
	maxBackoff     = 15 * time.Second
)

var (
	// ErrNotConnected: the connection to the relay is being re-established; the frame
	// was not sent.
	ErrNotConnected = errors.New("relay: not connected")
	// ErrRelayFull: the relay proved its key but has no room for another client.
	ErrRelayFull = errors.New("relay: full")
	// ErrRelayKey: whatever answered could not prove it holds the relay's key.
	ErrRelayKey = errors.New("relay: failed to prove its key")
	// ErrTooLarge: a payload exceeds relayproto.MaxUDPPayload (UDP) or MaxPayload (TLS).
	ErrTooLarge = errors.New("relay: payload too large")
)

// Config describes one connection to one relay.
type Config struct {
	// Exactly one transport: UDPAddr ("host:port") or URL ("https://host[:port][/relay]",
	// port 443 by default).
	UDPAddr string
	URL     string

	RelayKey   wire.Key // the relay's public key, from the broker
	PrivateKey wire.Key // this device's WireGuard private key

	// Proxy chooses an HTTP proxy (reached with CONNECT) for the TLS transport;
	// http.ProxyFromEnvironment fits. Nil: connect directly.
	Proxy func(*http.Request) (*url.URL, error)
	// Keepalive is how often the client checks that the relay still has its session
	// (and refreshes a UDP binding); 0 means DefaultKeepalive, and it is shortened to a
	// third of the relay's lease. While frames are being sent the session is checked
	// much sooner: a relay that answers nothing for about a second and a half is given
	// up (see liveness).
	Keepalive time.Duration
	// HandshakeTimeout bounds each connection attempt when ctx sets no deadline; 0 means
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	Logger           *slog.Logger
	// OnLost, if set, is called each time a session dies without Reconnect or Close
	// asking (the relay stopped answering, the connection broke), before reconnecting: a
	// hint that this device's network may have changed. It is called from the Conn's
	// own goroutine and must not block.
	OnLost func()
}

// Status describes the connection now.
type Status struct {
	Connected  bool
	Transport  string         // "udp" or "tls"
	Observed   netip.AddrPort // this device's address as the relay sees it
	RTT        time.Duration  // last keepalive round trip
	Reconnects int
}

// Conn is a connection to a relay that re-establishes itself when it fails. Its
// methods may be called from any goroutine.
type Conn struct {
	cfg       Config
	pub       wire.Key
	transport string
	log       *slog.Logger
	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{} // closed when the maintainer returns
	retry     chan struct{} // cuts short a wait between reconnection attempts

	sess atomic.Pointer[session] // nil while reconnecting

	// heardAt is when anything last came from the relay, in nanoseconds since epoch:
	// the readers stamp it, the session's liveness monitor reads it.
	epoch   time.Time
	heardAt atomic.Int64

	// Received frames travel in batches: readers fill a free batch and pass it on
	// full; RecvBatch copies frames out and returns it. full never blocks: it can hold
	// every batch.
	free chan *rxBatch
	full chan *rxBatch

	rmu sync.Mutex // guards cur and idx: the batch RecvBatch is reading
	cur *rxBatch
	idx int

	smu    sync.Mutex // guards status
	status Status
}

// numBatches is how many receive batches a Conn cycles through.
const numBatches = 3

// Dial connects to the relay, proves this device's key and checks the relay's. It
// fails if the first attempt does; after that the Conn reconnects by itself until Close.
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	if cfg.PrivateKey.IsZero() || cfg.RelayKey.IsZero() {
		return nil, errors.New("relay: need the device's private key and the relay's public key")
	}
	c := &Conn{cfg: cfg, pub: cfg.PrivateKey.Public(), log: cfg.Logger, epoch: time.Now(), retry: make(chan struct{}, 1)}
	switch {
	case cfg.UDPAddr != "" && cfg.URL == "":
		c.transport = "udp"
	case cfg.URL != "" && cfg.UDPAddr == "":
		c.transport = "tls"
		if _, _, err := parseURL(cfg.URL); err != nil {
			return nil, err
		}
	default:
		return nil, errors.New("relay: give exactly one of a UDP address and a URL")
	}
	if c.cfg.Keepalive <= 0 {
		c.cfg.Keepalive = DefaultKeepalive
	}
	if c.cfg.HandshakeTimeout <= 0 {
		c.cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.free = make(chan *rxBatch, numBatches)
	c.full = make(chan *rxBatch, numBatches)
	for range numBatches {
		c.free <- c.newBatch()
	}
	s, err := c.connect(ctx)
	if err != nil {
		return nil, err
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.done = make(chan struct{})
	c.install(s)
	go c.maintain(s)
	return c, nil
}

// connect makes one attempt.
func (c *Conn) connect(ctx context.Context) (*session, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.HandshakeTimeout)
		defer cancel()
	}
	if c.transport == "udp" {
		return c.dialUDP(ctx)
	}
	return c.dialTLS(ctx)
}

func (c *Conn) install(s *session) {
	c.sess.Store(s)
	c.smu.Lock()
	c.status.Connected = true
	c.status.Transport = c.transport
	c.status.Observed = s.welcome.Observed
	c.smu.Unlock()
	s.t.start(s)
	go s.monitor(newLiveness(s.made, c.keepaliveInterval(s), c.transport == "tls"))
}

func (c *Conn) keepaliveInterval(s *session) time.Duration {
	k := c.cfg.Keepalive
	if lease := time.Duration(s.welcome.LeaseSecs) * time.Second; lease > 0 && k > lease/3 {
		k = max(lease/3, time.Second)
	}
	return k
}

// stableAfter: a session that lived this long proves the relay works, and the next
// reconnection after it fails starts at once; one that died sooner (the relay takes
// handshakes but then stops answering) makes the next start after a growing wait.
const stableAfter = 10 * time.Second

// maintain replaces a failed session until Close, one attempt at a time.
func (c *Conn) maintain(s *session) {
	defer close(c.done)
	quick := 0 // sessions in a row that died unasked within stableAfter
	for {
		select {
		case <-c.ctx.Done():
			s.close(nil)
			return
		case <-s.dead:
		}
		c.sess.CompareAndSwap(s, nil)
		c.smu.Lock()
		c.status.Connected = false
		c.smu.Unlock()
		c.log.Info("relay: connection lost; reconnecting", "relay", c.addr(), "err", s.err)
		asked := errors.Is(s.err, errReconnect)
		if !asked && c.cfg.OnLost != nil {
			c.cfg.OnLost()
		}
		switch {
		case asked || time.Since(s.made) >= stableAfter:
			quick = 0
		default:
			quick++
		}
		backoff := 250 * time.Millisecond
		if quick > 1 {
			backoff = min(backoff<<min(quick-2, 6), maxBackoff)
			if !c.wait(jitter(backoff)) {
				return
			}
		}
		for {
			ns, err := c.connect(c.ctx)
			if err == nil {
				s = ns
				break
			}
			if c.ctx.Err() != nil {
				return
			}
			c.log.Debug("relay: reconnect failed", "relay", c.addr(), "err", err)
			if !c.wait(jitter(backoff)) {
				return
			}
			backoff = min(2*backoff, maxBackoff)
		}
		c.smu.Lock()
		c.status.Reconnects++
		c.smu.Unlock()
		select { // a Reconnect during the attempt is answered by it
		case <-c.retry:
		default:
		}
		c.install(s)
		c.log.Info("relay: reconnected", "relay", c.addr())
	}
}

// wait sleeps for d, less if Reconnect asks meanwhile; false if the Conn was closed.
func (c *Conn) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.ctx.Done():
		return false
	case <-c.retry:
	case <-t.C:
	}
	return true
}

func (c *Conn) addr() string { return c.cfg.UDPAddr + c.cfg.URL }

// jitter spreads d over [d/2, d) so clients of a restarted relay do not return at once.
func jitter(d time.Duration) time.Duration {
	var b [8]byte
	rand.Read(b[:])
	return d/2 + time.Duration(binary.LittleEndian.Uint64(b[:])%uint64(d/2+1))
}

// Close ends the connection; blocked and later calls fail with net.ErrClosed.
func (c *Conn) Close() error {
	c.cancel()
	<-c.done
	return nil
}

// Reconnect drops the current session and makes a new one (from a new UDP socket, so
// through a new NAT mapping): for when the device's network changed. While reconnecting
// already, it makes the next attempt start at once.
func (c *Conn) Reconnect() {
	if s := c.sess.Load(); s != nil {
		s.close(errReconnect)
		return
	}
	select {
	case c.retry <- struct{}{}:
	default:
	}
}

var errReconnect = errors.New("reconnect requested")

// Status reports the connection's state.
func (c *Conn) Status() Status {
	c.smu.Lock()
	defer c.smu.Unlock()
	return c.status
}

func (c *Conn) setRTT(d time.Duration) {
	c.smu.Lock()
	c.status.RTT = d
	c.smu.Unlock()
}

// Send sends payload to the device with public key dst through the relay.
func (c *Conn) Send(dst wire.Key, payload []byte) error {
	one := [1][]byte{payload}
	return c.SendBatch(dst, one[:])
}

// SendBatch sends payloads, in order, to dst: in as few system calls as the transport
// allows. The relay drops frames for a key it does not know without telling anyone.
func (c *Conn) SendBatch(dst wire.Key, payloads [][]byte) error {
	if c.ctx.Err() != nil {
		return net.ErrClosed
	}
	s := c.sess.Load()
	if s == nil {
		return ErrNotConnected
	}
	limit := relayproto.MaxPayload
	if c.transport == "udp" {
		limit = relayproto.MaxUDPPayload
	}
	for _, p := range payloads {
		if len(p) > limit {
			return fmt.Errorf("%w: %d bytes", ErrTooLarge, len(p))
		}
	}
	err := s.t.send(s, dst, payloads)
	s.noteSend()
	return err
}

// Recv copies the next received payload into buf and says who sent it.
func (c *Conn) Recv(buf []byte) (src wire.Key, n int, err error) {
	var bufs = [1][]byte{buf}
	var sizes [1]int
	var srcs [1]wire.Key
	if _, err := c.RecvBatch(bufs[:], sizes[:], srcs[:]); err != nil {
		return src, 0, err
	}
	return srcs[0], sizes[0], nil
}

// RecvBatch blocks until at least one payload arrives, then copies up to len(bufs) of
// them: payload i into bufs[i], its length into sizes[i] and its sender into srcs[i].
// A payload larger than its buffer is dropped.
func (c *Conn) RecvBatch(bufs [][]byte, sizes []int, srcs []wire.Key) (int, error) {
	return c.RecvBatchUntil(nil, bufs, sizes, srcs)
}

// RecvBatchUntil is RecvBatch that also gives up when stop is closed before a payload
// arrives: it then returns 0 and no error. It lets a reader that does not own the Conn
// (WireGuard's receive goroutine in the bind) read from it directly and still be ended.
func (c *Conn) RecvBatchUntil(stop <-chan struct{}, bufs [][]byte, sizes []int, srcs []wire.Key) (int, error) {
	if len(bufs) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	n := 0
	for n == 0 {
		if c.cur == nil {
			select {
			case c.cur = <-c.full:
				c.idx = 0
			case <-c.ctx.Done():
				return 0, net.ErrClosed
			case <-stop:
				return 0, nil
			}
		}
		for n < len(bufs) && c.cur != nil {
			p := &c.cur.pkts[c.idx]
			if len(p.data) <= len(bufs[n]) {
				sizes[n] = copy(bufs[n], p.data)
				srcs[n] = p.src
				n++
			}
			if c.idx++; c.idx == len(c.cur.pkts) {
				c.free <- c.cur
				c.cur = nil
				select {
				case c.cur = <-c.full:
					c.idx = 0
				default:
				}
			}
		}
	}
	return n, nil
}

// session is one authenticated connection to the relay.
type session struct {
	c       *Conn
	t       transport
	welcome relayproto.Welcome
	made    time.Time
	pongs   chan uint64 // echoes of pongs received, for the monitor's RTT

	// Senders tell the monitor that something was sent: sent is set on every send;
	// while armed (the monitor has no send outstanding) the send that sets it also kicks
	// the monitor, so it learns when sending began without any clock read per send.
	sent    atomic.Bool
	armed   atomic.Bool
	kick    chan struct{}
	pinging atomic.Bool // a ping is being written

	dead chan struct{} // closed by close
	once sync.Once
	err  error // why it died; written once before dead closes
}

// transport is what a session needs from UDP or TLS.
type transport interface {
	send(s *session, dst wire.Key, payloads [][]byte) error
	ping(s *session, echo uint64) error
	start(s *session) // starts the reader
	closeConn()
}

func newSession(c *Conn, w relayproto.Welcome) *session {
	return &session{c: c, welcome: w, made: time.Now(), pongs: make(chan uint64, 1),
		kick: make(chan struct{}, 1), dead: make(chan struct{})}
}

// close ends the session once, recording why.
func (s *session) close(err error) {
	s.once.Do(func() {
		s.err = err
		close(s.dead)
		s.t.closeConn()
	})
}

// pong hands a pong's echo to the monitor without ever blocking the reader.
func (s *session) pong(echo uint64) {
	s.c.noteHeard()
	select {
	case s.pongs <- echo:
	default:
	}
}

// noteHeard records that something came from the relay.
func (c *Conn) noteHeard() { c.heardAt.Store(int64(time.Since(c.epoch))) }

// noteSend records that something was sent: one atomic load in the common case.
func (s *session) noteSend() {
	if s.sent.Load() {
		return
	}
	s.sent.Store(true)
	if s.armed.Load() && s.armed.CompareAndSwap(true, false) {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// monitor pings the relay as l says and ends the session when l gives it up.
func (s *session) monitor(l *liveness) {
	c := s.c
	t := time.NewTimer(0)
	defer t.Stop()
	var seq uint64
	var pinged [4]time.Time // when pings seq-3..seq went out, by seq%4, for the RTT
	swapped := s.made       // when sent was last cleared
	for {
		kicked := false
		select {
		case <-s.dead:
			return
		case <-t.C:
		case <-s.kick:
			kicked = true
		case echo := <-s.pongs:
			if echo > 0 && echo <= seq && seq-echo < uint64(len(pinged)) {
				rtt := time.Since(pinged[echo%uint64(len(pinged))])
				c.setRTT(rtt)
				l.setRTT(rtt)
			}
		}
		now := time.Now()
		heard := c.epoch.Add(time.Duration(c.heardAt.Load()))
		sends := func() time.Time {
			// Armed before clearing, so no send falls between the two unnoticed.
			s.armed.Store(true)
			since := swapped
			swapped = now
			if !s.sent.Swap(false) {
				return time.Time{}
			}
			s.armed.Store(false)
			if kicked {
				return now
			}
			// Some time since the last clearing; step counts from the last answer if later.
			return since
		}
		ping, dead, next := l.step(now, heard, sends)
		if dead {
			s.close(errors.New("relay stopped answering"))
			return
		}
		if ping {
			seq++
			pinged[seq%uint64(len(pinged))] = now
			s.ping(seq)
		}
		t.Reset(max(time.Until(next), 0))
	}
}

// ping sends a ping without blocking the monitor (a TLS write can wait behind a stalled
// stream: the monitor must still be able to end the session). One at a time.
func (s *session) ping(seq uint64) {
	if !s.pinging.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.pinging.Store(false)
		if err := s.t.ping(s, seq); err != nil {
			s.close(fmt.Errorf("ping: %w", err))
		}
	}()
}

// rxBatch is a batch of received frames: the transport's raw buffers and the
// payloads found in them.
type rxBatch struct {
	raw  [][]byte // UDP: one read buffer per datagram or GRO run; TLS: raw[0] is a slab
	pkts []pkt
}

type pkt struct {
	src  wire.Key
	data []byte
}

// deliver passes b to RecvBatch if it holds anything, else makes it free again.
func (c *Conn) deliver(b *rxBatch) {
	if len(b.pkts) > 0 {
		c.noteHeard()
		c.full <- b
	} else {
		c.free <- b
	}
}

// starveWait is how long a reader waits for RecvBatch to free a batch before it reads
// on regardless, dropping the frames, so that keepalives are still answered. Once
// starved it does not wait again until it gets a batch.
const starveWait = time.Second

// freeBatch returns a free batch, waiting up to starveWait for one if wait is set, or nil.
func (s *session) freeBatch(wait bool) *rxBatch {
	var b *rxBatch
	select {
	case b = <-s.c.free:
	default:
		if !wait {
			return nil
		}
		t := time.NewTimer(starveWait)
		select {
		case b = <-s.c.free:
		case <-s.dead:
		case <-t.C:
		}
		t.Stop()
	}
	if b != nil {
		b.pkts = b.pkts[:0]
	}
	return b
}

// handshake runs the client side of the handshake over send and recv and returns the
// relay's verified welcome. binding is the TLS channel binding (nil for UDP).
func (c *Conn) handshake(ctx context.Context, tr byte, binding []byte, roundTrip func(ctx context.Context, msg []byte, want byte, nonce [relayproto.NonceSize]byte) ([]byte, error)) (relayproto.Welcome, error) {
	var w relayproto.Welcome
	shared, err := relayproto.SharedKey(c.cfg.PrivateKey, c.cfg.RelayKey)
	if err != nil {
		return w, fmt.Errorf("relay key: %w", err)
	}
	h := relayproto.Hello{Client: c.pub}
	if _, err := rand.Read(h.Nonce[:]); err != nil {
		return w, fmt.Errorf("generate nonce: %w", err)
	}
	b, err := roundTrip(ctx, relayproto.AppendHello(nil, h), relayproto.TypeChallenge, h.Nonce)
	if err != nil {
		return w, err
	}
	ch, err := relayproto.ParseChallenge(b)
	if err != nil {
		return w, fmt.Errorf("relay challenge: %w", err)
	}
	t := relayproto.Transcript{Transport: tr, Binding: binding, Relay: c.cfg.RelayKey, Client: c.pub, Nonce: h.Nonce, Cookie: ch.Cookie}
	a := relayproto.Auth{Client: c.pub, ClientNonce: h.Nonce, Cookie: ch.Cookie, MAC: relayproto.ClientMAC(shared, &t)}
	b, err = roundTrip(ctx, relayproto.AppendAuth(nil, a), relayproto.TypeWelcome, h.Nonce)
	if err != nil {
		return w, err
	}
	if b[0] == relayproto.TypeRefused {
		r, err := relayproto.ParseRefused(b)
		if err != nil || !relayproto.Equal(r.MAC, relayproto.RefusedMAC(shared, &t, r.Reason)) {
			return w, ErrRelayKey
		}
		return w, ErrRelayFull
	}
	if w, err = relayproto.ParseWelcome(b); err != nil {
		return w, fmt.Errorf("relay welcome: %w", err)
	}
	if !relayproto.Equal(w.MAC, relayproto.WelcomeMAC(shared, &t, &w)) {
		return w, ErrRelayKey
	}
	return w, nil
}

// replyFor reports whether b is the reply of type want (or a Refused in place of a
// Welcome) to the handshake with this nonce.
func replyFor(b []byte, want byte, nonce [relayproto.NonceSize]byte) bool {
	if len(b) < 2+relayproto.NonceSize || b[1] != relayproto.Version {
		return false
	}
	if b[0] != want && !(want == relayproto.TypeWelcome && b[0] == relayproto.TypeRefused) {
		return false
	}
	return [relayproto.NonceSize]byte(b[2:]) == nonce
}
