package relay

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/relayproto"
	"github.com/weftmesh/weft/mesh/relayclient"
	"github.com/weftmesh/weft/wire"
)

// The byte rate is enforced: what gets through is at most the burst plus the rate times
// the time taken, whatever the machine's speed.
func TestRateLimit(t *testing.T) {
	const rate, burst, size, sent = 1000, 4000, 1000, 100
	r := startRelay(t, Config{Rate: rate, Burst: burst})
	for _, tr := range []string{"udp", "tls"} {
		t.Run(tr, func(t *testing.T) {
			before := r.Stats()
			a, _ := r.dial(t, tr)
			b, bKey := r.dial(t, "udp")
			start := time.Now()
			for i := range sent {
				if err := a.Send(bKey, payload(i, size)); err != nil {
					t.Fatal(err)
				}
			}
			var st Stats
			eventually(t, "every frame to be forwarded or dropped", func() bool {
				st = r.Stats()
				return st.ForwardedPackets-before.ForwardedPackets+st.DroppedRate-before.DroppedRate == sent
			})
			elapsed := time.Since(start)
			fwd := st.ForwardedPackets - before.ForwardedPackets
			passed := float64(fwd * (size + relayproto.DataHeader))
			if limit := burst + rate*elapsed.Seconds(); passed > limit {
				t.Errorf("%v bytes passed in %v, limit %.0f", passed, elapsed, limit)
			}
			if fwd == 0 || st.DroppedRate == before.DroppedRate {
				t.Errorf("forwarded %d, dropped %d: want some of each", fwd, st.DroppedRate-before.DroppedRate)
			}
			for range fwd {
				recv(t, b)
			}
		})
	}
}

// A TLS client that stops reading loses its own frames once its queue is full; the
// relay keeps forwarding for everyone else.
func TestStalledTLSReceiverDoesNotStallOthers(t *testing.T) {
	r := startRelay(t, Config{QueueLen: 64, QueueBytes: 64 << 10})
	stalled := rawTLSLogin(t, r, newKey(t)) // never reads again
	a, _ := r.dial(t, "udp")
	b, bKey := r.dial(t, "udp")
	c, cKey := r.dial(t, "udp")

	// Far more than the queue, the relay's socket buffer and the receiver's together.
	batch := make([][]byte, 64)
	for i := range batch {
		batch[i] = payload(i, 1400)
	}
	for {
		for range 16 {
			if err := a.SendBatch(stalled.pub, batch); err != nil {
				t.Fatal(err)
			}
		}
		if r.Stats().DroppedQueue >= 1000 {
			break
		}
	}
	if c := r.lookup(stalled.pub); c == nil || c.tcp.queued.Load() > 64<<10 || len(c.tcp.queue) > 64 {
		t.Fatal("the stalled client's queue is gone or over its bounds")
	}
	for i := range 10 {
		if err := b.Send(cKey, payload(i, 500)); err != nil {
			t.Fatal(err)
		}
		if _, got := recv(t, c); binary.BigEndian.Uint32(got) != uint32(i) {
			t.Fatalf("c got payload %d, want %d", binary.BigEndian.Uint32(got), i)
		}
		if err := c.Send(bKey, payload(i, 500)); err != nil {
			t.Fatal(err)
		}
		recv(t, b)
	}
}

// rawTLS is a hand-driven TLS client.
type rawTLS struct {
	conn  *tls.Conn
	br    *bufio.Reader
	pub   wire.Key
	token relayproto.Token
}

func rawTLSLogin(t testing.TB, r *testRelay, priv wire.Key) *rawTLS {
	t.Helper()
	conn, err := tls.Dial("tcp", r.url[len("https://"):], &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	io.WriteString(conn, "GET /relay HTTP/1.1\r\nHost: relay\r\nUpgrade: weft-relay\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	cs := conn.ConnectionState()
	binding, err := cs.ExportKeyingMaterial(relayproto.BindingLabel, nil, relayproto.BindingSize)
	if err != nil {
		t.Fatal(err)
	}
	h := relayproto.Hello{Client: priv.Public()}
	rand.Read(h.Nonce[:])
	relayproto.WriteFrame(conn, relayproto.AppendHello(nil, h))
	buf := make([]byte, relayproto.MaxFrame)
	f, err := relayproto.ReadFrame(br, buf)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := relayproto.ParseChallenge(f)
	if err != nil {
		t.Fatal(err)
	}
	shared, _ := relayproto.SharedKey(priv, r.PublicKey())
	tr := relayproto.Transcript{Transport: relayproto.TransportTLS, Binding: binding, Relay: r.PublicKey(), Client: h.Client, Nonce: h.Nonce, Cookie: ch.Cookie}
	relayproto.WriteFrame(conn, relayproto.AppendAuth(nil, relayproto.Auth{Client: h.Client, ClientNonce: h.Nonce, Cookie: ch.Cookie, MAC: relayproto.ClientMAC(shared, &tr)}))
	if f, err = relayproto.ReadFrame(br, buf); err != nil {
		t.Fatal(err)
	}
	w, err := relayproto.ParseWelcome(f)
	if err != nil {
		t.Fatal(err)
	}
	return &rawTLS{conn: conn, br: br, pub: h.Client, token: w.Token}
}

// The HTTPS side looks like a web server to anyone who does not ask for the upgrade.
func TestHTTPEndpoint(t *testing.T) {
	r := startRelay(t, Config{})
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for path, want := range map[string]int{"/": http.StatusNotFound, "/relay": http.StatusUpgradeRequired} {
		resp, err := hc.Get(r.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

// The TLS transport works through an HTTP CONNECT proxy.
func TestTLSThroughProxy(t *testing.T) {
	r := startRelay(t, Config{})
	proxy := startConnectProxy(t)
	a, aKey := r.dial(t, "udp")
	cfg := r.config("tls", newKey(t))
	cfg.Proxy = func(*http.Request) (*url.URL, error) { return &url.URL{Scheme: "http", Host: proxy}, nil }
	b, err := relayclient.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Send(aKey, []byte("via proxy")); err != nil {
		t.Fatal(err)
	}
	if _, got := recv(t, a); string(got) != "via proxy" {
		t.Fatalf("got %q", got)
	}
}

func startConnectProxy(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil || req.Method != http.MethodConnect {
					return
				}
				back, err := net.Dial("tcp", req.Host)
				if err != nil {
					io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
					return
				}
				defer back.Close()
				io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
				go io.Copy(back, br)
				io.Copy(c, back)
			}()
		}
	}()
	return ln.Addr().String()
}
