package service

import (
	"net/netip"
	"testing"

	"github.com/weftmesh/weft/wire"
)

func key(t *testing.T) wire.Key {
	t.Helper()
	k, err := wire.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

func dev(t *testing.T, id, name, addr string, eps ...string) wire.Device {
	d := wire.Device{ID: id, Name: name, PublicKey: key(t), Address: netip.MustParseAddr(addr)}
	for _, e := range eps {
		d.Endpoints = append(d.Endpoints, netip.MustParseAddrPort(e))
	}
	return d
}

func TestPeerMapFullAndDeltas(t *testing.T) {
	a := dev(t, "a", "alpha", "100.64.0.2", "198.51.100.2:51820")
	b := dev(t, "b", "bravo", "100.64.0.3", "198.51.100.3:51820")
	c := dev(t, "c", "charlie", "100.64.0.4")
	var m PeerMap

	if m.Apply(wire.MapUpdate{}) || m.Complete {
		t.Fatal("a keepalive changed an empty map")
	}
	if !m.Apply(wire.MapUpdate{Full: true, Peers: []wire.Device{b, a}}) || !m.Complete || m.Len() != 2 {
		t.Fatalf("full map: complete=%v len=%d", m.Complete, m.Len())
	}
	if l := m.List(); l[0].Name != "alpha" || l[1].Name != "bravo" {
		t.Fatalf("list not sorted by name: %v", l)
	}
	if m.Apply(wire.MapUpdate{Full: true, Peers: []wire.Device{a, b}}) {
		t.Fatal("an identical full map reported a change")
	}

	// Delta: add c, change a's endpoint.
	a2 := a
	a2.Endpoints = []netip.AddrPort{netip.MustParseAddrPort("198.51.100.9:4000")}
	if !m.Apply(wire.MapUpdate{Peers: []wire.Device{c, a2}}) || m.Len() != 3 {
		t.Fatalf("delta add/change: len=%d", m.Len())
	}
	if got, _ := m.Find("alpha"); got.Endpoints[0] != a2.Endpoints[0] {
		t.Fatalf("a's endpoint not changed: %v", got.Endpoints)
	}
	if m.Apply(wire.MapUpdate{Peers: []wire.Device{c}}) {
		t.Fatal("re-sending an unchanged peer reported a change")
	}

	// Key change: b re-registered under the same ID with a new key; the old key must go.
	b2 := b
	b2.PublicKey = key(t)
	if !m.Apply(wire.MapUpdate{Peers: []wire.Device{b2}}) {
		t.Fatal("key change not reported")
	}
	keys := map[wire.Key]bool{}
	for _, p := range m.WGPeers(nil, nil) {
		keys[p.PublicKey] = true
	}
	if keys[b.PublicKey] || !keys[b2.PublicKey] || len(keys) != 3 {
		t.Fatalf("after key change WireGuard peers have old=%v new=%v (n=%d)", keys[b.PublicKey], keys[b2.PublicKey], len(keys))
	}

	// Removal, including an unknown ID.
	if !m.Apply(wire.MapUpdate{Removed: []string{"c", "zzz"}}) || m.Len() != 2 {
		t.Fatalf("removal: len=%d", m.Len())
	}
	if m.Apply(wire.MapUpdate{Removed: []string{"c"}}) {
		t.Fatal("removing an absent peer reported a change")
	}
	// Self updates leave peers alone.
	self := dev(t, "s", "self", "100.64.0.9")
	if m.Apply(wire.MapUpdate{Self: &self}) {
		t.Fatal("a self update changed the peers")
	}

	// A full map replaces everything.
	if !m.Apply(wire.MapUpdate{Full: true, Peers: []wire.Device{c}}) || m.Len() != 1 {
		t.Fatalf("full replace: len=%d", m.Len())
	}
	if _, ok := m.Find("alpha"); ok {
		t.Fatal("a peer missing from a full map survived")
	}

	// Saved form round-trips.
	back := LoadPeerMap(m.Saved())
	if !back.Complete || back.Len() != 1 {
		t.Fatalf("saved map: %+v", back.Saved())
	}
}

func TestWGPeers(t *testing.T) {
	a := dev(t, "a", "alpha", "100.64.0.2", "203.0.113.2:51820", "192.168.1.20:51820")
	nokey := dev(t, "n", "nokey", "100.64.0.3")
	nokey.PublicKey = wire.Key{}
	dup := dev(t, "z", "zulu", "100.64.0.4")
	dup.PublicKey = a.PublicKey
	var m PeerMap
	m.Apply(wire.MapUpdate{Full: true, Peers: []wire.Device{a, nokey, dup}})
	local := []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")}
	peers := m.WGPeers(local, nil)
	if len(peers) != 1 {
		t.Fatalf("got %d WireGuard peers, want 1 (no key and a duplicate key left out)", len(peers))
	}
	p := peers[0]
	if p.PublicKey != a.PublicKey || len(p.AllowedIPs) != 1 || p.AllowedIPs[0] != netip.MustParsePrefix("100.64.0.2/32") {
		t.Fatalf("peer %+v", p)
	}
	if p.Endpoint != netip.MustParseAddrPort("192.168.1.20:51820") || p.PersistentKeepalive != persistentKeepalive {
		t.Fatalf("peer endpoint %v keepalive %v", p.Endpoint, p.PersistentKeepalive)
	}
}

func TestChooseEndpoint(t *testing.T) {
	pub := netip.MustParseAddrPort("203.0.113.7:41641")
	lan := netip.MustParseAddrPort("192.168.1.20:51820")
	other := netip.MustParseAddrPort("10.1.0.5:51820")
	local := []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("172.16.0.0/16")}
	cases := []struct {
		name  string
		cands []netip.AddrPort
		local []netip.Prefix
		want  netip.AddrPort
	}{
		{"same LAN wins", []netip.AddrPort{pub, other, lan}, local, lan},
		{"no shared subnet: the first", []netip.AddrPort{pub, other}, local, pub},
		{"no local subnets", []netip.AddrPort{pub, lan}, nil, pub},
		{"invalid candidates skipped", []netip.AddrPort{{}, other}, nil, other},
		{"none", nil, local, netip.AddrPort{}},
	}
	for _, c := range cases {
		if got := ChooseEndpoint(c.cands, c.local); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func TestFind(t *testing.T) {
	a := dev(t, "a", "alpha", "100.64.0.2")
	a.FQDN = "alpha.acme.weft.test"
	var m PeerMap
	m.Apply(wire.MapUpdate{Full: true, Peers: []wire.Device{a}})
	for _, q := range []string{"alpha", "ALPHA", "alpha.acme.weft.test.", "100.64.0.2", " alpha "} {
		if p, ok := m.Find(q); !ok || p.ID != "a" {
			t.Errorf("Find(%q) = %v, %v", q, p.ID, ok)
		}
	}
	for _, q := range []string{"", "alp", "100.64.0.3", "alpha.other.test"} {
		if _, ok := m.Find(q); ok {
			t.Errorf("Find(%q) found a peer", q)
		}
	}
}
