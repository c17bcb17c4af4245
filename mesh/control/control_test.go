package control

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/mesh/control/controltest"
	"github.com/weftmesh/weft/wire"
)

func newClient(t *testing.T, b *controltest.Broker, streamTimeout time.Duration) *Client {
	key, err := wire.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{BrokerURL: b.URL, CAPEM: b.CAPEM, PrivateKey: key, StreamTimeout: streamTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func peer(id string) wire.Device {
	return wire.Device{ID: id, Name: "peer-" + id}
}

func TestRegisterEndpointsLogout(t *testing.T) {
	b := controltest.NewBroker(t)
	c := newClient(t, b, 0)
	ctx := context.Background()

	_, err := c.Register(ctx, wire.RegisterRequest{Name: "laptop", AuthKey: "bad"})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 401 || apiErr.Message != "auth key is not valid" {
		t.Fatalf("register with a bad key: %v", err)
	}
	dev, err := c.Register(ctx, wire.RegisterRequest{Name: "laptop", AuthKey: controltest.GoodAuthKey})
	if err != nil {
		t.Fatal(err)
	}
	if dev.Name != "laptop" || dev.PublicKey != c.pub || !dev.Address.IsValid() {
		t.Fatalf("registered %+v", dev)
	}

	eps := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.7:51820")}
	if err := c.UpdateEndpoints(ctx, wire.EndpointsRequest{ListenPort: 51820, Endpoints: eps}); err != nil {
		t.Fatalf("update endpoints: %v", err)
	}
	got := b.Endpoints()
	if len(got) != 1 || got[0].ListenPort != 51820 || len(got[0].Endpoints) != 1 || got[0].Endpoints[0] != eps[0] {
		t.Fatalf("broker got endpoints %+v", got)
	}
	if err := c.Logout(ctx); err != nil {
		t.Fatalf("logout: %v", err)
	}
	if out := b.LoggedOut(); len(out) != 1 || out[0] != c.pub {
		t.Fatalf("broker saw logouts %v", out)
	}
}

func TestUntrustedBrokerRefused(t *testing.T) {
	b := controltest.NewBroker(t)
	key, _ := wire.NewPrivateKey()
	for name, ca := range map[string]string{"another CA": selfSignedPEM(t), "system roots": ""} {
		c, err := New(Config{BrokerURL: b.URL, CAPEM: ca, PrivateKey: key})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Info(context.Background()); err == nil {
			t.Errorf("%s: a broker with an untrusted certificate was accepted", name)
		}
	}
	if _, err := New(Config{BrokerURL: b.URL, CAPEM: "not a pem", PrivateKey: key}); err == nil {
		t.Error("a CA without a certificate was accepted")
	}
	for _, u := range []string{"http://broker:443", "https://", "https://broker/v1", "broker", "https://u:p@broker"} {
		if _, err := New(Config{BrokerURL: u, PrivateKey: key}); err == nil {
			t.Errorf("broker URL %q was accepted", u)
		}
	}
}

func TestRunReconnectsAfterDrop(t *testing.T) {
	b := controltest.NewBroker(t)
	b.OnStream(func(n int, s *controltest.Stream) {
		if n == 1 {
			s.Send(wire.MapUpdate{Full: true, Peers: []wire.Device{peer("a")}})
			return // drop the stream
		}
		s.Send(wire.MapUpdate{Full: true, Peers: []wire.Device{peer("a"), peer("b")}})
		<-s.Done()
	})
	c := newClient(t, b, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var mu sync.Mutex
	var updates []wire.MapUpdate
	var states []State
	runErr := make(chan error, 1)
	go func() {
		runErr <- c.Run(ctx, func(u wire.MapUpdate) error {
			mu.Lock()
			defer mu.Unlock()
			updates = append(updates, u)
			if len(updates) == 2 {
				cancel()
			}
			return nil
		}, func(s State) {
			mu.Lock()
			states = append(states, s)
			mu.Unlock()
		})
	}()
	select {
	case err := <-runErr:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v, want context.Canceled", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no second map after the broker dropped the stream")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(updates) != 2 || len(updates[1].Peers) != 2 || !updates[1].Full {
		t.Fatalf("updates %+v", updates)
	}
	// connected, lost, connected again
	if len(states) != 3 || !states[0].Connected || states[1].Connected || states[1].Err == nil || !states[2].Connected {
		t.Fatalf("states %+v", states)
	}
}

func TestRunEndsOnRevokedMessage(t *testing.T) {
	b := controltest.NewBroker(t)
	b.OnStream(func(n int, s *controltest.Stream) {
		s.Send(wire.MapUpdate{Full: true, Peers: []wire.Device{peer("a")}})
		s.Send(wire.MapUpdate{Revoked: "removed by an administrator"})
	})
	c := newClient(t, b, 0)
	var last State
	var nUpdates int
	err := c.Run(context.Background(), func(wire.MapUpdate) error { nUpdates++; return nil }, func(s State) { last = s })
	var rev *RevokedError
	if !errors.As(err, &rev) || rev.Reason != "removed by an administrator" {
		t.Fatalf("Run returned %v, want a RevokedError with the broker's reason", err)
	}
	if last.Revoked != "removed by an administrator" || last.Connected {
		t.Fatalf("last state %+v", last)
	}
	if nUpdates != 1 {
		t.Fatalf("onUpdate called %d times, want 1 (the revocation is not an update)", nUpdates)
	}
}

func TestRunEndsWhenKeyUnknown(t *testing.T) {
	b := controltest.NewBroker(t)
	b.Remove("device removed")
	b.OnStream(func(int, *controltest.Stream) { t.Error("stream opened for a removed device") })
	c := newClient(t, b, 0)
	var last State
	err := c.Run(context.Background(), func(wire.MapUpdate) error { return nil }, func(s State) { last = s })
	var rev *RevokedError
	if !errors.As(err, &rev) || rev.Reason != "device removed" || last.Revoked != "device removed" {
		t.Fatalf("Run returned %v with last state %+v", err, last)
	}
	if err := c.Logout(context.Background()); !errors.As(err, &rev) {
		t.Fatalf("logout of a removed device: %v, want a RevokedError", err)
	}
}

func TestRunRetriesUnreachableBroker(t *testing.T) {
	b := controltest.NewBroker(t)
	c := newClient(t, b, 0)
	b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var errs []error
	err := c.Run(ctx, func(wire.MapUpdate) error { return nil }, func(s State) {
		errs = append(errs, s.Err)
		if len(errs) == 2 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || len(errs) != 2 || errs[0] == nil || errs[1] == nil {
		t.Fatalf("Run returned %v after states %v, want two failed attempts then cancellation", err, errs)
	}
}

func TestStreamDropsSilentStream(t *testing.T) {
	b := controltest.NewBroker(t)
	b.OnStream(func(n int, s *controltest.Stream) {
		s.Send(wire.MapUpdate{Full: true})
		<-s.Done() // then nothing, not even keepalives
	})
	c := newClient(t, b, 300*time.Millisecond)
	got := 0
	err := c.Stream(context.Background(), func(wire.MapUpdate) error { got++; return nil })
	if err == nil || !strings.Contains(err.Error(), "silent") || got != 1 {
		t.Fatalf("Stream returned %v after %d messages, want a silence error after 1", err, got)
	}
}

func TestStreamStopsOnCallbackError(t *testing.T) {
	b := controltest.NewBroker(t)
	c := newClient(t, b, 0)
	boom := errors.New("apply failed")
	err := c.Stream(context.Background(), func(wire.MapUpdate) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("Stream returned %v, want the callback's error", err)
	}
}

// selfSignedPEM returns a CA certificate unrelated to httptest's.
func selfSignedPEM(t *testing.T) string {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "other CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// TestReconnectDialsAgainAtOnce: Reconnect ends a live (not silent, not dropped) stream and
// the next one opens without waiting for a backoff.
func TestReconnectDialsAgainAtOnce(t *testing.T) {
	b := controltest.NewBroker(t)
	b.OnStream(func(n int, s *controltest.Stream) {
		s.Send(wire.MapUpdate{Full: true, Peers: []wire.Device{peer("a")}})
		<-s.Done()
	})
	c := newClient(t, b, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fulls := make(chan struct{}, 4)
	go c.Run(ctx, func(u wire.MapUpdate) error {
		if u.Full {
			fulls <- struct{}{}
		}
		return nil
	}, func(State) {})
	<-fulls
	c.Reconnect()
	select {
	case <-fulls:
	case <-time.After(20 * time.Second):
		t.Fatal("no new stream after Reconnect")
	}
	if n := b.Streams(); n < 2 {
		t.Fatalf("broker saw %d streams, want a second one", n)
	}
}
