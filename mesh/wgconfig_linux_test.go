package mesh

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/weftmesh/weft/wire"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// TestPeerConfigs runs TestPeerDiff's cases through the kernel conversion.
func TestPeerConfigs(t *testing.T) {
	a := Peer{PublicKey: key(1), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("100.64.0.1/32")},
		Endpoint: netip.MustParseAddrPort("192.0.2.1:51820"), PersistentKeepalive: 25 * time.Second}
	b := Peer{PublicKey: key(2), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("100.64.0.2/32")}}

	got := peerConfigs(nil, map[wire.Key]Peer{a.PublicKey: a, b.PublicKey: b})
	if len(got) != 2 {
		t.Fatalf("adding two peers gave %d configs: %+v", len(got), got)
	}
	pa, pb := got[0], got[1]
	if pa.PublicKey != wgtypes.Key(a.PublicKey) || pb.PublicKey != wgtypes.Key(b.PublicKey) {
		t.Fatalf("configs not in key order or wrong keys: %v, %v", pa.PublicKey, pb.PublicKey)
	}
	if pa.Remove || pb.Remove || !pa.ReplaceAllowedIPs || !pb.ReplaceAllowedIPs {
		t.Errorf("added peers: Remove %v/%v, ReplaceAllowedIPs %v/%v", pa.Remove, pb.Remove, pa.ReplaceAllowedIPs, pb.ReplaceAllowedIPs)
	}
	if pa.Endpoint == nil || pa.Endpoint.String() != "192.0.2.1:51820" {
		t.Errorf("a's endpoint = %v, want 192.0.2.1:51820", pa.Endpoint)
	}
	if pb.Endpoint != nil {
		t.Errorf("b has no known endpoint but got %v", pb.Endpoint)
	}
	if pa.PersistentKeepaliveInterval == nil || *pa.PersistentKeepaliveInterval != 25*time.Second {
		t.Errorf("a's keepalive = %v, want 25s", pa.PersistentKeepaliveInterval)
	}
	if pb.PersistentKeepaliveInterval == nil || *pb.PersistentKeepaliveInterval != 0 {
		t.Errorf("b's keepalive = %v, want an explicit 0", pb.PersistentKeepaliveInterval)
	}
	if want := []string{"100.64.0.1/32"}; !sameNets(pa.AllowedIPs, want) {
		t.Errorf("a's allowed IPs = %v, want %v", pa.AllowedIPs, want)
	}

	have := map[wire.Key]Peer{a.PublicKey: a, b.PublicKey: b}
	if got := peerConfigs(have, have); len(got) != 0 {
		t.Errorf("unchanged set produced configs: %+v", got)
	}

	// b removed, a's allowed IPs changed but not its endpoint: the endpoint must not be
	// resent, or a roamed endpoint would be reset.
	a2 := a
	a2.AllowedIPs = append([]netip.Prefix{}, a.AllowedIPs...)
	a2.AllowedIPs = append(a2.AllowedIPs, netip.MustParsePrefix("10.0.0.0/24"))
	got = peerConfigs(have, map[wire.Key]Peer{a.PublicKey: a2})
	if len(got) != 2 {
		t.Fatalf("got %d configs, want a removal and a change: %+v", len(got), got)
	}
	if got[0].PublicKey != wgtypes.Key(b.PublicKey) || !got[0].Remove {
		t.Errorf("removal of b missing: %+v", got[0])
	}
	if got[1].PublicKey != wgtypes.Key(a.PublicKey) || got[1].Remove {
		t.Errorf("change of a missing: %+v", got[1])
	}
	if got[1].Endpoint != nil {
		t.Errorf("unchanged endpoint resent: %v", got[1].Endpoint)
	}
	if want := []string{"100.64.0.1/32", "10.0.0.0/24"}; !got[1].ReplaceAllowedIPs || !sameNets(got[1].AllowedIPs, want) {
		t.Errorf("a's allowed IPs = %v (replace %v), want %v replacing", got[1].AllowedIPs, got[1].ReplaceAllowedIPs, want)
	}

	// A moved endpoint is sent; an endpoint the broker no longer knows leaves the
	// current one alone.
	a3 := a
	a3.Endpoint = netip.MustParseAddrPort("[2001:db8::1]:4242")
	got = peerConfigs(map[wire.Key]Peer{a.PublicKey: a}, map[wire.Key]Peer{a.PublicKey: a3})
	if len(got) != 1 || got[0].Endpoint == nil || got[0].Endpoint.String() != "[2001:db8::1]:4242" {
		t.Errorf("moved endpoint: %+v", got)
	}
	a4 := a
	a4.Endpoint = netip.AddrPort{}
	got = peerConfigs(map[wire.Key]Peer{a.PublicKey: a}, map[wire.Key]Peer{a.PublicKey: a4})
	if len(got) != 1 || got[0].Endpoint != nil {
		t.Errorf("forgotten endpoint: %+v", got)
	}
}

func sameNets(got []net.IPNet, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i].String() != want[i] {
			return false
		}
	}
	return true
}

func TestPeerStats(t *testing.T) {
	hs := time.Unix(1700000000, 5)
	dev := &wgtypes.Device{Peers: []wgtypes.Peer{
		{PublicKey: wgtypes.Key(key(7)), Endpoint: net.UDPAddrFromAddrPort(netip.MustParseAddrPort("[::ffff:203.0.113.5]:4242")),
			LastHandshakeTime: hs, ReceiveBytes: 200, TransmitBytes: 100},
		{PublicKey: wgtypes.Key(key(8))},
	}}
	st := peerStats(dev)
	if len(st) != 2 {
		t.Fatalf("got %d peers, want 2", len(st))
	}
	p := st[key(7)]
	if p.Endpoint != netip.MustParseAddrPort("203.0.113.5:4242") || p.RxBytes != 200 || p.TxBytes != 100 || !p.LastHandshake.Equal(hs) {
		t.Errorf("peer stats wrong: %+v", p)
	}
	if q := st[key(8)]; q.Endpoint.IsValid() || !q.LastHandshake.IsZero() {
		t.Errorf("silent peer has an endpoint or handshake: %+v", q)
	}
}
