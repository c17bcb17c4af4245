package relay

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/mesh/relayclient"
	"github.com/weftmesh/weft/wire"
)

// testRelay is a relay serving UDP and TLS on loopback.
type testRelay struct {
	*Server
	udp string // host:port
	url string // https://host:port
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("RELAY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startRelay starts a relay. Tests dial many clients from one address, so the
// per-source handshake limit is lifted unless an option sets it again.
func startRelay(t testing.TB, cfg Config, opts ...func(*Server)) *testRelay {
	t.Helper()
	if cfg.PrivateKey.IsZero() {
		cfg.PrivateKey = newKey(t)
	}
	cfg.Logger = testLogger(t)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.hellos = newIPLimiter(1e9, 1e9)
	for _, o := range opts {
		o(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	uc, err := ListenUDP(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := LoadOrCreateCert(t.TempDir(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, run := range []func() error{
		func() error { return s.Run(ctx) },
		func() error { return s.ServeUDP(ctx, uc) },
		func() error { return s.ServeTLS(ctx, ln, cert) },
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(); err != nil {
				t.Errorf("relay: %v", err)
			}
		}()
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return &testRelay{Server: s, udp: uc.LocalAddr().String(), url: "https://" + ln.Addr().String()}
}

func newKey(t testing.TB) wire.Key {
	t.Helper()
	k, err := wire.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// dial connects a new device to r over transport ("udp" or "tls").
func (r *testRelay) dial(t testing.TB, transport string) (*relayclient.Conn, wire.Key) {
	t.Helper()
	priv := newKey(t)
	c, err := relayclient.Dial(context.Background(), r.config(transport, priv))
	if err != nil {
		t.Fatalf("dial %s: %v", transport, err)
	}
	t.Cleanup(func() { c.Close() })
	return c, priv.Public()
}

func (r *testRelay) config(transport string, priv wire.Key) relayclient.Config {
	cfg := relayclient.Config{RelayKey: r.PublicKey(), PrivateKey: priv, Logger: testLogger(nil)}
	if transport == "udp" {
		cfg.UDPAddr = r.udp
	} else {
		cfg.URL = r.url
	}
	return cfg
}

// recv receives one payload or fails the test after a generous timeout.
func recv(t testing.TB, c *relayclient.Conn) (wire.Key, []byte) {
	t.Helper()
	type result struct {
		src wire.Key
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		buf := make([]byte, 1<<16)
		src, n, err := c.Recv(buf)
		ch <- result{src, buf[:n], err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("recv: %v", r.err)
		}
		return r.src, r.b
	case <-time.After(10 * time.Second):
		t.Fatal("recv: nothing arrived within 10s")
	}
	return wire.Key{}, nil
}

// eventually polls cond until it holds, failing the test after a generous timeout.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startTLSMITM listens on loopback and, for each connection, terminates TLS with its own
// certificate and opens its own TLS connection to target, copying plaintext both ways:
// what a TLS-intercepting proxy does.
func startTLSMITM(t testing.TB, target string) string {
	t.Helper()
	cert, err := LoadOrCreateCert(t.TempDir(), "", "")
	if err != nil {
		t.Fatal(err)
	}
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
				front := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
				back, err := tls.Dial("tcp", target, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
				if err != nil {
					return
				}
				defer back.Close()
				go io.Copy(back, front)
				io.Copy(front, back)
			}()
		}
	}()
	return ln.Addr().String()
}
