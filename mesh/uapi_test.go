package mesh

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/wire"
)

func key(b byte) wire.Key { var k wire.Key; k[0] = b; return k }

func TestPeerDiff(t *testing.T) {
	a := Peer{PublicKey: key(1), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("100.64.0.1/32")},
		Endpoint: netip.MustParseAddrPort("192.0.2.1:51820"), PersistentKeepalive: 25 * time.Second}
	b := Peer{PublicKey: key(2), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("100.64.0.2/32")}}

	// New peers' endpoint is the peer itself, which weft's bind routes by path.
	got := peerDiff(nil, map[wire.Key]Peer{a.PublicKey: a, b.PublicKey: b})
	for _, want := range []string{
		"public_key=" + a.PublicKey.Hex() + "\nendpoint=peer:" + a.PublicKey.Hex() + "\npersistent_keepalive_interval=25\nreplace_allowed_ips=true\nallowed_ip=100.64.0.1/32\n",
		"public_key=" + b.PublicKey.Hex() + "\nendpoint=peer:" + b.PublicKey.Hex() + "\npersistent_keepalive_interval=0\nreplace_allowed_ips=true\nallowed_ip=100.64.0.2/32\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("adding peers: missing\n%s\nin\n%s", want, got)
		}
	}

	have := map[wire.Key]Peer{a.PublicKey: a, b.PublicKey: b}
	if got := peerDiff(have, have); got != "" {
		t.Errorf("unchanged set produced commands:\n%s", got)
	}

	// b removed, a's allowed IPs changed: the endpoint line must not be resent, or an
	// endpoint WireGuard roamed to would be reset.
	a2 := a
	a2.AllowedIPs = append([]netip.Prefix{}, a.AllowedIPs...)
	a2.AllowedIPs = append(a2.AllowedIPs, netip.MustParsePrefix("10.0.0.0/24"))
	got = peerDiff(have, map[wire.Key]Peer{a.PublicKey: a2})
	if !strings.Contains(got, "public_key="+b.PublicKey.Hex()+"\nremove=true\n") {
		t.Errorf("removal missing:\n%s", got)
	}
	if strings.Contains(got, "endpoint=") {
		t.Errorf("unchanged endpoint resent:\n%s", got)
	}
	if !strings.Contains(got, "allowed_ip=10.0.0.0/24\n") {
		t.Errorf("new allowed IP missing:\n%s", got)
	}
}

func TestParseState(t *testing.T) {
	k := key(7)
	s := "private_key=00\nlisten_port=51820\npublic_key=" + k.Hex() +
		"\nendpoint=203.0.113.5:4242\nlast_handshake_time_sec=1700000000\nlast_handshake_time_nsec=5\n" +
		"tx_bytes=100\nrx_bytes=200\npersistent_keepalive_interval=25\nallowed_ip=100.64.0.9/32\n" +
		"public_key=" + key(8).Hex() + "\nlast_handshake_time_sec=0\nlast_handshake_time_nsec=0\nrx_bytes=0\ntx_bytes=0\nerrno=0\n"
	st, err := parseState(s)
	if err != nil {
		t.Fatal(err)
	}
	if st.listenPort != 51820 || len(st.peers) != 2 {
		t.Fatalf("got port %d, %d peers", st.listenPort, len(st.peers))
	}
	p := st.peers[k]
	if p.Endpoint != netip.MustParseAddrPort("203.0.113.5:4242") || p.RxBytes != 200 || p.TxBytes != 100 ||
		!p.LastHandshake.Equal(time.Unix(1700000000, 5)) {
		t.Errorf("peer stats wrong: %+v", p)
	}
	if !st.peers[key(8)].LastHandshake.IsZero() {
		t.Errorf("never-handshaken peer has a handshake time")
	}
	// weft's bind endpoint is not an address: no endpoint, no error.
	st, err = parseState("public_key=" + k.Hex() + "\nendpoint=peer:" + k.Hex() + "\nrx_bytes=1\n")
	if err != nil || st.peers[k].Endpoint.IsValid() || st.peers[k].RxBytes != 1 {
		t.Errorf("peer endpoint: %+v, %v", st.peers[k], err)
	}
	for _, bad := range []string{"listen_port=x\n", "garbage\n", "public_key=abcd\n", "public_key=" + k.Hex() + "\nendpoint=nonsense\n"} {
		if _, err := parseState(bad); err == nil {
			t.Errorf("parseState(%q) accepted", bad)
		}
	}
}
