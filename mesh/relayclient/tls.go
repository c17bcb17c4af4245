package relayclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/weftmesh/weft/internal/relayproto"
	"github.com/weftmesh/weft/wire"
)

const (
	tlsSlab      = 2 * relayproto.MaxFrame // a receive batch's buffer
	writeTimeout = 10 * time.Second
)

// tlsConn is the TLS transport: frames with a 2-byte length prefix on an upgraded
// HTTPS connection.
type tlsConn struct {
	conn  net.Conn
	br    *bufio.Reader
	token relayproto.Token

	wmu sync.Mutex // guards bw and serialises writers
	bw  *bufio.Writer
}

// parseURL returns the host:port to dial and the request path.
func parseURL(s string) (hostport, path string, err error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", "", fmt.Errorf("relay URL %q: %w", s, err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return "", "", fmt.Errorf("relay URL %q: want https://host[:port][/path]", s)
	}
	hostport = u.Host
	if u.Port() == "" {
		hostport = net.JoinHostPort(u.Hostname(), "443")
	}
	path = u.EscapedPath()
	if path == "" || path == "/" {
		path = relayproto.Path
	}
	return hostport, path, nil
}

// dialTLS connects (through the proxy if one applies), upgrades the connection and
// runs the handshake, bound to the TLS session. The relay's certificate is not
// checked: the relay proves itself with its X25519 key over the TLS exporter, so only
// the holder of that key at the end of this very TLS session can complete it.
func (c *Conn) dialTLS(ctx context.Context) (*session, error) {
	hostport, path, _ := parseURL(c.cfg.URL)
	raw, err := c.dialTCP(ctx, hostport)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			raw.Close()
		}
	}()
	if dl, has := ctx.Deadline(); has {
		raw.SetDeadline(dl)
	}
	host, _, _ := net.SplitHostPort(hostport)
	tc := tls.Client(raw, &tls.Config{
		ServerName:         host,
		InsecureSkipVerify: true, // see above: the key proof authenticates the relay
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{"http/1.1"},
	})
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("relay %s: TLS: %w", hostport, err)
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + hostport + "\r\nUpgrade: " + relayproto.UpgradeToken +
		"\r\nConnection: Upgrade\r\nUser-Agent: weft\r\n\r\n"
	if _, err := io.WriteString(tc, req); err != nil {
		return nil, fmt.Errorf("relay %s: %w", hostport, err)
	}
	br := bufio.NewReaderSize(tc, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, fmt.Errorf("relay %s: upgrade: %w", hostport, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		resp.Body.Close()
		return nil, fmt.Errorf("relay %s: upgrade refused: %s", hostport, resp.Status)
	}
	cs := tc.ConnectionState()
	binding, err := cs.ExportKeyingMaterial(relayproto.BindingLabel, nil, relayproto.BindingSize)
	if err != nil {
		return nil, fmt.Errorf("relay %s: channel binding: %w", hostport, err)
	}
	t := &tlsConn{conn: tc, br: br, bw: bufio.NewWriterSize(tc, 64<<10)}
	buf := make([]byte, relayproto.MaxFrame)
	w, err := c.handshake(ctx, relayproto.TransportTLS, binding, func(ctx context.Context, msg []byte, want byte, nonce [relayproto.NonceSize]byte) ([]byte, error) {
		if err := relayproto.WriteFrame(tc, msg); err != nil {
			return nil, err
		}
		f, err := relayproto.ReadFrame(br, buf)
		if err != nil {
			return nil, fmt.Errorf("relay %s: handshake: %w", hostport, err)
		}
		if !replyFor(f, want, nonce) {
			return nil, fmt.Errorf("relay %s: unexpected handshake message", hostport)
		}
		return f, nil
	})
	if err != nil {
		return nil, err
	}
	raw.SetDeadline(time.Time{})
	t.token = w.Token
	s := newSession(c, w)
	s.t = t
	ok = true
	return s, nil
}

// dialTCP connects to hostport directly or through the configured HTTP proxy.
func (c *Conn) dialTCP(ctx context.Context, hostport string) (net.Conn, error) {
	var d net.Dialer
	var proxy *url.URL
	if c.cfg.Proxy != nil {
		req := &http.Request{URL: &url.URL{Scheme: "https", Host: hostport}, Header: http.Header{}}
		var err error
		if proxy, err = c.cfg.Proxy(req); err != nil {
			return nil, fmt.Errorf("relay %s: proxy: %w", hostport, err)
		}
	}
	if proxy == nil {
		conn, err := d.DialContext(ctx, "tcp", hostport)
		if err != nil {
			return nil, fmt.Errorf("relay %s: %w", hostport, err)
		}
		return conn, nil
	}
	if proxy.Scheme != "http" {
		return nil, fmt.Errorf("relay %s: proxy %s: only http:// proxies are supported", hostport, proxy.Redacted())
	}
	paddr := proxy.Host
	if proxy.Port() == "" {
		paddr = net.JoinHostPort(proxy.Hostname(), "80")
	}
	conn, err := d.DialContext(ctx, "tcp", paddr)
	if err != nil {
		return nil, fmt.Errorf("relay %s: proxy %s: %w", hostport, paddr, err)
	}
	if dl, has := ctx.Deadline(); has {
		conn.SetDeadline(dl)
	}
	req := "CONNECT " + hostport + " HTTP/1.1\r\nHost: " + hostport + "\r\n"
	if u := proxy.User; u != nil {
		pw, _ := u.Password()
		req += "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pw)) + "\r\n"
	}
	req += "\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		conn.Close()
		return nil, fmt.Errorf("relay %s: proxy: %w", hostport, err)
	}
	// Read the reply byte by byte up to its end, so no byte of the TLS stream that
	// follows is consumed.
	var head []byte
	one := make([]byte, 1)
	for !strings.HasSuffix(string(head), "\r\n\r\n") {
		if len(head) > 8<<10 {
			conn.Close()
			return nil, fmt.Errorf("relay %s: proxy reply too long", hostport)
		}
		if _, err := conn.Read(one); err != nil {
			conn.Close()
			return nil, fmt.Errorf("relay %s: proxy: %w", hostport, err)
		}
		head = append(head, one[0])
	}
	status, _, _ := strings.Cut(string(head), "\r\n")
	if f := strings.Fields(status); len(f) < 2 || f[1] != "200" {
		conn.Close()
		return nil, fmt.Errorf("relay %s: proxy refused CONNECT: %s", hostport, status)
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

func (t *tlsConn) closeConn() { t.conn.Close() }

func (t *tlsConn) start(s *session) { go t.readLoop(s) }

// readLoop reads frames until the session dies. Frames already buffered go to the Conn
// as one batch.
func (t *tlsConn) readLoop(s *session) {
	c := s.c
	var spare *rxBatch // read into this when RecvBatch holds every batch
	starved := false
	for {
		b := s.freeBatch(!starved)
		starved = b == nil
		if b == nil && spare == nil {
			spare = c.newBatch()
		}
		var slab []byte
		if b != nil {
			slab = b.raw[0]
		} else {
			slab = spare.raw[0]
		}
		off := 0
		for {
			f, err := relayproto.ReadFrame(t.br, slab[off:])
			if err != nil {
				if b != nil {
					c.deliver(b)
				}
				s.close(fmt.Errorf("read: %w", err))
				return
			}
			switch f[0] {
			case relayproto.TypeForward:
				if src, data, ok := relayproto.ParseForward(f); ok && b != nil {
					b.pkts = append(b.pkts, pkt{src: src, data: data})
				}
			case relayproto.TypePong:
				if echo, ok := relayproto.ParsePong(f); ok {
					s.pong(echo)
				}
			}
			off += len(f)
			if len(slab)-off < relayproto.MaxFrame || !relayproto.FrameBuffered(t.br) {
				break
			}
		}
		if b != nil {
			c.deliver(b)
		}
	}
}

func (t *tlsConn) ping(s *session, echo uint64) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	t.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	var b [2 + relayproto.PingSize]byte
	binary.BigEndian.PutUint16(b[:], relayproto.PingSize)
	relayproto.AppendPing(b[:2], t.token, echo)
	t.bw.Write(b[:])
	return t.flush(s)
}

func (t *tlsConn) send(s *session, dst wire.Key, payloads [][]byte) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	t.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	var h [2 + relayproto.DataHeader]byte
	for _, p := range payloads {
		binary.BigEndian.PutUint16(h[:], uint16(relayproto.DataHeader+len(p)))
		relayproto.PutDataHeader(h[2:], t.token, dst)
		t.bw.Write(h[:])
		t.bw.Write(p)
	}
	return t.flush(s)
}

// flush writes out what is buffered; a failed write ends the session.
func (t *tlsConn) flush(s *session) error {
	if err := t.bw.Flush(); err != nil {
		s.close(fmt.Errorf("write: %w", err))
		return fmt.Errorf("relay send: %w", err)
	}
	return nil
}
