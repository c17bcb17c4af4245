package broker

import (
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/wire"
)

func peerIDs(ds []wire.Device) []string {
	var ids []string
	for _, d := range ds {
		ids = append(ids, d.ID)
	}
	return ids
}

func TestMapStreamFullThenDeltas(t *testing.T) {
	tb := startBroker(t, nil)
	tb.setupAccount(t, "acme")
	tb.setupAccount(t, "other")
	key := tb.authKey(t, "acme", true)
	a, b := tb.newDevice(t, "a"), tb.newDevice(t, "b")
	a.register(t, key)
	b.register(t, key)
	stranger := tb.newDevice(t, "s")
	stranger.register(t, tb.authKey(t, "other", false))

	ma := a.openMap(t)
	full := ma.next(t)
	if !full.Full || full.Self == nil || full.Self.ID != a.ID || !full.Self.Online {
		t.Fatalf("first message %+v, want full map with self online", full)
	}
	if len(full.Peers) != 1 || full.Peers[0].ID != b.ID || full.Peers[0].Online || full.Peers[0].FQDN != "b.acme.weft.internal" {
		t.Fatalf("full map peers %+v, want only b, offline", full.Peers)
	}

	// b connects: a hears it online; b's full map has a online.
	mb := b.openMap(t)
	if u := ma.next(t); !slices.Equal(peerIDs(u.Peers), []string{b.ID}) || !u.Peers[0].Online {
		t.Fatalf("a got %+v, want b online", u)
	}
	if u := mb.next(t); !u.Full || len(u.Peers) != 1 || !u.Peers[0].Online {
		t.Fatalf("b's first message %+v", u)
	}

	// A new registration reaches both at once.
	c := tb.newDevice(t, "c")
	c.register(t, key)
	for _, m := range []*mapStream{ma, mb} {
		if u := m.next(t); !slices.Equal(peerIDs(u.Peers), []string{c.ID}) || u.Peers[0].Address != c.Address {
			t.Fatalf("got %+v, want c added", u)
		}
	}

	// b changes endpoints: a gets b changed, b gets Self.
	body := mustJSON(t, wire.EndpointsRequest{ListenPort: 5000, Endpoints: []netip.AddrPort{netip.MustParseAddrPort("10.9.9.9:5000")}})
	if status, rb := b.authed(t, http.MethodPost, wire.PathEndpoints, body); status != http.StatusNoContent {
		t.Fatalf("endpoints: %d %s", status, rb)
	}
	wantEps := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:5000"), netip.MustParseAddrPort("10.9.9.9:5000")}
	if u := ma.next(t); len(u.Peers) != 1 || !slices.Equal(u.Peers[0].Endpoints, wantEps) {
		t.Fatalf("a got %+v, want b's endpoints %v", u, wantEps)
	}
	if u := mb.next(t); u.Self == nil || !slices.Equal(u.Self.Endpoints, wantEps) {
		t.Fatalf("b got %+v, want Self with new endpoints", u)
	}

	// Removing c (offline) takes it out of both maps.
	ac, err := NewAdminClient(tb.dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ac.RemoveDevice(t.Context(), "acme", "c"); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*mapStream{ma, mb} {
		if u := m.next(t); !slices.Equal(u.Removed, []string{c.ID}) {
			t.Fatalf("got %+v, want c removed", u)
		}
	}

	// Removing b while connected: b is told why and its stream ends; a drops b.
	if _, err := ac.RemoveDevice(t.Context(), "acme", "b"); err != nil {
		t.Fatal(err)
	}
	if u := mb.next(t); u.Revoked != "removed by administrator" {
		t.Fatalf("b got %+v, want revoked", u)
	}
	mb.closed(t)
	if u := ma.next(t); !slices.Equal(u.Removed, []string{b.ID}) {
		t.Fatalf("a got %+v, want b removed", u)
	}
	// b can no longer authenticate, and is told why.
	if _, status, rb := b.challenge(t); status != http.StatusUnauthorized || !strings.Contains(errorLine(t, rb), "removed by administrator") {
		t.Fatalf("challenge of removed device: %d %s", status, rb)
	}

	// a disconnects: nothing else is connected, but reconnecting shows the current map.
	ma.resp.Body.Close()
	ma2 := a.openMap(t)
	if u := ma2.next(t); !u.Full || len(u.Peers) != 0 {
		t.Fatalf("a's map after removals %+v, want no peers", u)
	}
}

func TestMapOfflineAndSecondStream(t *testing.T) {
	tb := startBroker(t, nil)
	tb.setupAccount(t, "acme")
	key := tb.authKey(t, "acme", true)
	a, b := tb.newDevice(t, "a"), tb.newDevice(t, "b")
	a.register(t, key)
	b.register(t, key)
	ma := a.openMap(t)
	ma.next(t)
	mb1 := b.openMap(t)
	mb1.next(t)
	ma.next(t) // b online

	// A second stream for b replaces the first without b going offline.
	mb2 := b.openMap(t)
	mb2.next(t)
	mb1.closed(t)
	// b going offline is the next thing a hears: no offline/online flap before it.
	mb2.resp.Body.Close()
	if u := ma.next(t); len(u.Peers) != 1 || u.Peers[0].ID != b.ID || u.Peers[0].Online {
		t.Fatalf("a got %+v, want b offline", u)
	}
}

func TestSameNameTakeoverOnlyWhenOffline(t *testing.T) {
	tb := startBroker(t, nil)
	tb.setupAccount(t, "acme")
	key := tb.authKey(t, "acme", true)
	a, peer := tb.newDevice(t, "laptop"), tb.newDevice(t, "peer")
	a.register(t, key)
	peer.register(t, key)
	mp := peer.openMap(t)
	mp.next(t)
	ma := a.openMap(t)
	ma.next(t)
	mp.next(t) // laptop online

	// A second machine called laptop while the first is online: a new device, laptop-2.
	twin := tb.newDevice(t, "laptop")
	twin.register(t, key)
	if twin.ID == a.ID || twin.Address == a.Address || twin.Name != "laptop-2" {
		t.Fatalf("same name while online gave %+v, want a new device laptop-2", twin.Device)
	}
	if u := ma.next(t); u.Revoked != "" || len(u.Peers) != 1 || u.Peers[0].Name != "laptop-2" {
		t.Fatalf("online laptop got %+v, want laptop-2 as a new peer", u)
	}
	mp.next(t) // laptop-2 added

	// The laptop goes away and is reinstalled: same name, new key, same device and address.
	ma.resp.Body.Close()
	if u := mp.next(t); len(u.Peers) != 1 || u.Peers[0].ID != a.ID || u.Peers[0].Online {
		t.Fatalf("peer got %+v, want laptop offline", u)
	}
	a2 := tb.newDevice(t, "laptop")
	a2.register(t, key)
	if a2.ID != a.ID || a2.Address != a.Address {
		t.Fatalf("re-registration gave %+v, want device %s at %s", a2.Device, a.ID, a.Address)
	}
	u := mp.next(t)
	if len(u.Peers) != 1 || u.Peers[0].PublicKey != a2.priv.Public() || u.Peers[0].Online {
		t.Fatalf("peer got %+v, want laptop with its new key, offline", u)
	}
	if _, status, rb := a.challenge(t); status != http.StatusUnauthorized || !strings.Contains(errorLine(t, rb), "replaced by a new registration") {
		t.Fatalf("old key challenge: %d %s", status, rb)
	}
	ma2 := a2.openMap(t)
	if u := ma2.next(t); u.Self == nil || u.Self.PublicKey != a2.priv.Public() {
		t.Fatalf("new key's map %+v", u)
	}
}

func TestLogout(t *testing.T) {
	tb := startBroker(t, nil)
	tb.setupAccount(t, "acme")
	key := tb.authKey(t, "acme", true)
	a, b := tb.newDevice(t, "a"), tb.newDevice(t, "b")
	a.register(t, key)
	b.register(t, key)
	ma := a.openMap(t)
	ma.next(t)
	mb := b.openMap(t)
	mb.next(t)
	ma.next(t)
	if status, body := b.authed(t, http.MethodPost, wire.PathLogout, mustJSON(t, struct{}{})); status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", status, body)
	}
	if u := mb.next(t); u.Revoked != "logged out" {
		t.Fatalf("b got %+v", u)
	}
	if u := ma.next(t); !slices.Equal(u.Removed, []string{b.ID}) {
		t.Fatalf("a got %+v, want b removed", u)
	}
	if tb.deviceCount(t, "acme") != 1 {
		t.Fatal("device not removed")
	}
	if status, body := a.authed(t, http.MethodPost, wire.PathLogout, []byte(`{"x":1}`)); status != http.StatusBadRequest {
		t.Fatalf("logout with unknown field: %d %s", status, body)
	}
}

func TestKeepalive(t *testing.T) {
	tb := startBroker(t, func(c *Config) { c.Keepalive = 20 * time.Millisecond })
	tb.setupAccount(t, "acme")
	a := tb.newDevice(t, "a")
	a.register(t, tb.authKey(t, "acme", false))
	ma := a.openMap(t)
	ma.next(t)
	select {
	case u, ok := <-ma.updates:
		if !ok || !isKeepalive(u) {
			t.Fatalf("got %+v (open %v), want a keepalive", u, ok)
		}
	case <-time.After(wait):
		t.Fatal("no keepalive")
	}
}

func TestMapRequiresAuth(t *testing.T) {
	tb := startBroker(t, nil)
	status, body := tb.do(t, http.MethodGet, wire.PathMap, nil, nil)
	if status != http.StatusUnauthorized {
		t.Fatalf("unauthenticated map: %d %s", status, body)
	}
	errorLine(t, body)
}
