package relay

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/internal/relayproto"
)

const (
	handshakeTimeout = 10 * time.Second
	// writeTimeout: a TLS client that takes no data for this long is dropped.
	writeTimeout = 10 * time.Second
	// maxPendingTLS bounds TLS connections that upgraded but have not authenticated.
	maxPendingTLS = 1024
	// tcpSlab is a TLS reader's buffer for frames waiting to go out on UDP in one batch.
	tcpSlab = 2 * relayproto.MaxFrame
	// tcpBuffer is the size of a TLS client's read and write buffers.
	tcpBuffer = 32 << 10
)

// ServeTLS serves the TLS transport on ln with cert until ctx ends, then closes ln and
// every connection it accepted.
func (s *Server) ServeTLS(ctx context.Context, ln net.Listener, cert tls.Certificate) error {
	srv := &http.Server{
		Handler: s,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			MinVersion:   tls.VersionTLS13, // the channel binding needs TLS 1.3's exporter
			NextProtos:   []string{"http/1.1"},
		},
		// Upgrade does not exist in HTTP/2: serve HTTP/1.1 only.
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ReadHeaderTimeout: handshakeTimeout,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	s.log.Info("relay: serving TLS", "addr", ln.Addr())
	err := srv.ServeTLS(ln, "", "")
	if errors.Is(err, http.ErrServerClosed) || ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("relay: serve TLS: %w", err)
}

// ServeHTTP is the TLS transport's endpoint (relayproto.Path), so an HTTPS server of
// its own (the broker's, say) can host the relay. Other paths are not found.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != relayproto.Path {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet || !headerHas(r.Header, "Connection", "upgrade") ||
		!headerHas(r.Header, "Upgrade", relayproto.UpgradeToken) {
		w.Header().Set("Upgrade", relayproto.UpgradeToken)
		w.Header().Set("Connection", "Upgrade")
		http.Error(w, "weft relay: upgrade to "+relayproto.UpgradeToken+" required", http.StatusUpgradeRequired)
		return
	}
	if r.TLS == nil {
		http.Error(w, "weft relay: TLS required", http.StatusBadRequest)
		return
	}
	binding, err := r.TLS.ExportKeyingMaterial(relayproto.BindingLabel, nil, relayproto.BindingSize)
	if err != nil {
		http.Error(w, "weft relay: TLS 1.3 required", http.StatusBadRequest)
		return
	}
	remote, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		http.Error(w, "weft relay: bad remote address", http.StatusInternalServerError)
		return
	}
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	select {
	case s.pending <- struct{}{}:
	default:
		http.Error(w, "weft relay: busy", http.StatusServiceUnavailable)
		return
	}
	var once sync.Once
	release := func() { once.Do(func() { <-s.pending }) }
	defer release()
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.log.Debug("relay: hijack", "err", err)
		return
	}
	defer conn.Close()
	stop := context.AfterFunc(r.Context(), func() { conn.Close() })
	defer stop()
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	if _, err := io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: "+relayproto.UpgradeToken+"\r\nConnection: Upgrade\r\n\r\n"); err != nil {
		return
	}
	s.serveTCP(conn, rw.Reader, binding, remote, release)
}

// headerHas reports whether the comma-separated header name lists token.
func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// serveTCP runs the handshake and then the client's frames on an upgraded connection.
// Until the client proves its key it gets nothing but the challenge.
func (s *Server) serveTCP(conn net.Conn, br *bufio.Reader, binding []byte, remote netip.AddrPort, handshook func()) {
	// Handshake messages are small; the big buffers wait for a proven client.
	hs := make([]byte, relayproto.AuthSize)
	f, err := relayproto.ReadFrame(br, hs)
	if err != nil {
		return
	}
	h, err := relayproto.ParseHello(f)
	if err != nil {
		s.stats.droppedInvalid.Add(1)
		return
	}
	if !s.hellos.allow(remote.Addr(), s.now()) {
		s.stats.helloLimited.Add(1)
		return
	}
	var cookie [relayproto.CookieSize]byte
	if _, err := rand.Read(cookie[:]); err != nil {
		return
	}
	s.stats.challenges.Add(1)
	if err := relayproto.WriteFrame(conn, relayproto.AppendChallenge(nil, relayproto.Challenge{ClientNonce: h.Nonce, Cookie: cookie})); err != nil {
		return
	}
	if f, err = relayproto.ReadFrame(br, hs); err != nil {
		return
	}
	a, err := relayproto.ParseAuth(f)
	if err != nil {
		s.stats.droppedInvalid.Add(1)
		return
	}
	if a.Client != h.Client || a.ClientNonce != h.Nonce || subtle.ConstantTimeCompare(a.Cookie[:], cookie[:]) != 1 {
		s.stats.authFailed.Add(1)
		return
	}
	t := relayproto.Transcript{Transport: relayproto.TransportTLS, Binding: binding, Relay: s.pub, Client: a.Client, Nonce: a.ClientNonce, Cookie: cookie}
	shared, ok := s.verify(&a, &t)
	if !ok {
		s.stats.authFailed.Add(1)
		return
	}
	tc := newTCPClient(conn, s.cfg.QueueLen, s.cfg.QueueBytes)
	c := &client{tcp: tc, addr: remote}
	reply, err := s.grant(shared, &a, &t, c)
	if reply == nil {
		s.log.Warn("relay: admit", "err", err)
		return
	}
	// The welcome goes out before the writer starts, so it precedes every frame queued
	// for the client.
	werr := relayproto.WriteFrame(conn, reply)
	if err != nil || werr != nil {
		s.remove(c)
		return
	}
	handshook()
	conn.SetDeadline(time.Time{})
	s.log.Debug("relay: client admitted", "key", c.key, "tls", remote)
	go tc.writeLoop()
	defer func() {
		s.remove(c)
		tc.close()
	}()
	s.tcpReadLoop(c, br, make([]byte, tcpSlab))
}

// tcpReadLoop forwards a TLS client's frames until it fails, goes quiet for a lease or
// breaks the protocol. Frames already buffered are forwarded to UDP as one batch.
func (s *Server) tcpReadLoop(c *client, br *bufio.Reader, slab []byte) {
	br = bufio.NewReaderSize(br, tcpBuffer)
	tx := newTxBuf()
	defer tx.flush(s)
	var fw forwarder
	off := 0
	for {
		if off == 0 {
			c.tcp.conn.SetReadDeadline(time.Now().Add(s.cfg.Lease))
		}
		f, err := relayproto.ReadFrame(br, slab[off:])
		if err != nil {
			return
		}
		now := s.now()
		switch f[0] {
		case relayproto.TypeData:
			if len(f) < relayproto.DataHeader || !tokenOK(c, f[1:1+relayproto.TokenSize]) {
				s.stats.droppedInvalid.Add(1)
				return
			}
			fw.forward(s, c, f, now, tx)
		case relayproto.TypePing:
			tok, echo, ok := relayproto.ParsePing(f)
			if !ok || !tokenOK(c, tok) {
				s.stats.droppedInvalid.Add(1)
				return
			}
			var b [relayproto.PongSize]byte
			c.tcp.enqueue(relayproto.AppendPong(b[:0], echo))
		default:
			s.stats.droppedInvalid.Add(1)
			return
		}
		c.lastSeen.Store(now)
		off += len(f)
		if len(tx.msgs) >= batchSize || len(slab)-off < relayproto.MaxFrame || !relayproto.FrameBuffered(br) {
			tx.flush(s)
			fw.reset()
			off = 0
		}
	}
}

// tcpClient is the sending side of a TLS client: a bounded queue drained by its own
// goroutine, so a slow reader only ever loses its own frames.
type tcpClient struct {
	conn     net.Conn
	queue    chan *[]byte // length-prefixed frames
	queued   atomic.Int64 // bytes in queue
	maxBytes int64
	done     chan struct{}
	once     sync.Once
}

func newTCPClient(conn net.Conn, queueLen, queueBytes int) *tcpClient {
	return &tcpClient{conn: conn, queue: make(chan *[]byte, queueLen), maxBytes: int64(queueBytes), done: make(chan struct{})}
}

// close stops the writer and closes the connection, which ends the reader.
func (t *tcpClient) close() {
	t.once.Do(func() {
		close(t.done)
		t.conn.Close()
	})
}

// frameBufs recycles queue buffers big enough for a full-size WireGuard packet.
var frameBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// enqueue copies frame f into the queue; false if the queue is full or closed.
func (t *tcpClient) enqueue(f []byte) bool {
	n := int64(2 + len(f))
	if t.queued.Add(n) > t.maxBytes {
		t.queued.Add(-n)
		return false
	}
	var bp *[]byte
	if n <= 2048 {
		bp = frameBufs.Get().(*[]byte)
	} else {
		b := make([]byte, 0, n)
		bp = &b
	}
	b := binary.BigEndian.AppendUint16((*bp)[:0], uint16(len(f)))
	*bp = append(b, f...)
	select {
	case <-t.done:
	default:
		select {
		case t.queue <- bp:
			return true
		default:
		}
	}
	t.queued.Add(-n)
	putFrameBuf(bp)
	return false
}

func putFrameBuf(bp *[]byte) {
	if cap(*bp) == 2048 {
		frameBufs.Put(bp)
	}
}

// writeLoop sends queued frames, flushing when the queue runs dry.
func (t *tcpClient) writeLoop() {
	bw := bufio.NewWriterSize(t.conn, tcpBuffer)
	defer t.close()
	for {
		var bp *[]byte
		select {
		case <-t.done:
			return
		case bp = <-t.queue:
		}
		t.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		for bp != nil {
			_, err := bw.Write(*bp)
			t.queued.Add(-int64(len(*bp)))
			putFrameBuf(bp)
			if err != nil {
				return
			}
			select {
			case bp = <-t.queue:
			default:
				bp = nil
			}
		}
		if err := bw.Flush(); err != nil {
			return
		}
	}
}
