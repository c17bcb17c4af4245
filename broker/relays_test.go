package broker

import (
	"crypto/tls"
	"encoding/json"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/relayproto"
	"github.com/weftmesh/weft/wire"
)

func relayNames(rs []wire.RelayInfo) []string {
	out := []string{}
	for _, r := range rs {
		n := r.Name
		if r.Private {
			n += "*"
		}
		out = append(out, n)
	}
	return out
}

func newKey(t *testing.T) wire.Key {
	t.Helper()
	k, err := wire.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

func TestRelaysInMap(t *testing.T) {
	tb := startBroker(t, nil)
	tb.setupAccount(t, "acme")
	tb.setupAccount(t, "other")
	ac, err := NewAdminClient(tb.dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	gkey := newKey(t)
	if _, err := ac.AddRelay(ctx, AdminRelayRequest{Global: true, Name: "eu", UDP: "192.0.2.10:3479",
		TLS: "relay.example.com:443", PublicKey: gkey}); err != nil {
		t.Fatal(err)
	}
	a := tb.newDevice(t, "a")
	a.register(t, tb.authKey(t, "acme", false))
	s := tb.newDevice(t, "s")
	s.register(t, tb.authKey(t, "other", false))
	ma, ms := a.openMap(t), s.openMap(t)
	full := ma.next(t)
	want := []wire.RelayInfo{{Name: "eu", UDP: "192.0.2.10:3479", TLS: "relay.example.com:443", PublicKey: gkey}}
	if !slices.Equal(full.Relays, want) {
		t.Fatalf("full map relays %+v, want %+v", full.Relays, want)
	}
	ms.next(t)

	// An account's own relay reaches that account only, first in the list.
	if _, err := ac.AddRelay(ctx, AdminRelayRequest{Account: "acme", Name: "home", UDP: "198.51.100.1:3479",
		PublicKey: newKey(t)}); err != nil {
		t.Fatal(err)
	}
	if u := ma.next(t); !slices.Equal(relayNames(u.Relays), []string{"home*", "eu"}) {
		t.Fatalf("a got %+v, want relays home*, eu", u)
	}
	// A global one reaches everyone.
	if _, err := ac.AddRelay(ctx, AdminRelayRequest{Global: true, Name: "us", UDP: "192.0.2.11:3479",
		PublicKey: newKey(t)}); err != nil {
		t.Fatal(err)
	}
	if u := ma.next(t); !slices.Equal(relayNames(u.Relays), []string{"home*", "eu", "us"}) {
		t.Fatalf("a got %+v", u)
	}
	if u := ms.next(t); !slices.Equal(relayNames(u.Relays), []string{"eu", "us"}) {
		t.Fatalf("stranger got %+v, want eu, us only (home is acme's)", u)
	}

	// Refused changes push nothing.
	for _, req := range []AdminRelayRequest{
		{Name: "x", UDP: "192.0.2.1:1", PublicKey: newKey(t)},                                // neither account nor global
		{Account: "acme", Global: true, Name: "x", UDP: "192.0.2.1:1", PublicKey: newKey(t)}, // both
		{Account: "acme", Name: "eu", UDP: "192.0.2.1:1", PublicKey: newKey(t)},              // global name taken
		{Account: "acme", Name: "x", UDP: "nohost", PublicKey: newKey(t)},
		{Account: "acme", Name: "x", UDP: "192.0.2.1:1"}, // no key
		{Account: "nope", Name: "x", UDP: "192.0.2.1:1", PublicKey: newKey(t)},
	} {
		if _, err := ac.AddRelay(ctx, req); err == nil {
			t.Errorf("add %+v: no error", req)
		}
	}

	list, err := ac.Relays(ctx, "")
	if err != nil || len(list) != 3 || list[0].Account != "acme" || list[0].Name != "home" {
		t.Fatalf("list all: %+v, %v", list, err)
	}
	list, err = ac.Relays(ctx, "other")
	if err != nil || len(list) != 2 {
		t.Fatalf("list other: %+v, %v", list, err)
	}

	// Removing the last private relay; then every relay: the list becomes empty, sent
	// as "relays":[].
	if _, err := ac.RemoveRelay(ctx, AdminRemoveRelayRequest{Account: "acme", Name: "eu"}); err == nil ||
		!strings.Contains(err.Error(), "not found") {
		t.Fatalf("remove a global relay as acme's: %v", err)
	}
	if _, err := ac.RemoveRelay(ctx, AdminRemoveRelayRequest{Account: "acme", Name: "home"}); err != nil {
		t.Fatal(err)
	}
	if u := ma.next(t); !slices.Equal(relayNames(u.Relays), []string{"eu", "us"}) {
		t.Fatalf("a got %+v after removing home", u)
	}
	for _, n := range []string{"eu", "us"} {
		if _, err := ac.RemoveRelay(ctx, AdminRemoveRelayRequest{Global: true, Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	ma.next(t)
	u := ma.next(t)
	if u.Relays == nil || len(u.Relays) != 0 {
		t.Fatalf("a got %+v, want an empty relay list", u)
	}
	if b, _ := json.Marshal(u); !strings.Contains(string(b), `"relays":[]`) {
		t.Fatalf("empty relay list encodes as %s", b)
	}
}

// TestEmbeddedRelay: serve --relay-udp runs a relay in the broker; every account's
// devices get it, after their own and global ones, and its name is taken.
func TestEmbeddedRelay(t *testing.T) {
	tb := startBroker(t, func(c *Config) {
		c.RelayUDP = "127.0.0.1:0"
		c.RelayTLS = "127.0.0.1:0"
	})
	tb.setupAccount(t, "acme")
	a := tb.newDevice(t, "a")
	a.register(t, tb.authKey(t, "acme", false))
	full := a.openMap(t).next(t)
	if len(full.Relays) != 1 {
		t.Fatalf("relays %+v, want the embedded one", full.Relays)
	}
	r := full.Relays[0]
	if r.Name != EmbeddedRelayName || r.Private || r.PublicKey.IsZero() || r.PublicKey == tb.PublicKey() {
		t.Fatalf("embedded relay %+v", r)
	}
	// Both transports answer where they are announced: UDP a hello with a challenge
	// for its nonce, TLS a handshake.
	uc, err := net.Dial("udp", r.UDP)
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	hello := relayproto.Hello{Client: newKey(t), Nonce: [relayproto.NonceSize]byte{1, 2, 3}}
	if _, err := uc.Write(relayproto.AppendHello(nil, hello)); err != nil {
		t.Fatal(err)
	}
	uc.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 1500)
	n, err := uc.Read(buf)
	if err != nil {
		t.Fatalf("embedded relay UDP at %s: %v", r.UDP, err)
	}
	if c, err := relayproto.ParseChallenge(buf[:n]); err != nil || c.ClientNonce != hello.Nonce {
		t.Fatalf("relay answered a hello with %x (%v), want a challenge for its nonce", buf[:n], err)
	}
	// Relay clients check the relay's X25519 key bound to the session, not its certificate.
	tc, err := tls.Dial("tcp", r.TLS, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatalf("embedded relay TLS at %s: %v", r.TLS, err)
	}
	tc.Close()

	ac, err := NewAdminClient(tb.dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ac.AddRelay(t.Context(), AdminRelayRequest{Global: true, Name: EmbeddedRelayName,
		UDP: "192.0.2.1:1", PublicKey: newKey(t)}); err == nil || !strings.Contains(err.Error(), "embedded") {
		t.Fatalf("add a relay named like the embedded one: %v", err)
	}
	list, err := ac.Relays(t.Context(), "")
	if err != nil || len(list) != 1 || !list[0].Embedded {
		t.Fatalf("list: %+v, %v", list, err)
	}
}
