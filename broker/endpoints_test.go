package broker

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/weftmesh/weft/wire"
)

// TestReflexiveEndpointsAndNAT: a device's STUN-learned mappings and NAT type reach its
// peers, candidates ordered observed, reflexive, LAN; a report that changes nothing
// sends nothing.
func TestReflexiveEndpointsAndNAT(t *testing.T) {
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
	ma.next(t) // b online

	ap := netip.MustParseAddrPort
	req := wire.EndpointsRequest{ListenPort: 41641,
		Endpoints: []netip.AddrPort{ap("192.168.1.20:41641"), ap("203.0.113.9:50000")},
		// Duplicates, an unusable one and one that is also a LAN candidate.
		Reflexive: []netip.AddrPort{ap("203.0.113.9:50000"), ap("[::ffff:198.51.100.4]:61000"),
			ap("203.0.113.9:50000"), ap("0.0.0.0:1"), ap("127.0.0.1:41641")},
		NAT: wire.NATEasy}
	body := mustJSON(t, req)
	if status, rb := b.authed(t, http.MethodPost, wire.PathEndpoints, body); status != http.StatusNoContent {
		t.Fatalf("endpoints: %d %s", status, rb)
	}
	want := []netip.AddrPort{ap("127.0.0.1:41641"), ap("203.0.113.9:50000"), ap("198.51.100.4:61000"), ap("192.168.1.20:41641")}
	u := ma.next(t)
	if len(u.Peers) != 1 || !slices.Equal(u.Peers[0].Endpoints, want) || u.Peers[0].NAT != wire.NATEasy {
		t.Fatalf("a got %+v, want b with endpoints %v and NAT easy", u, want)
	}
	if u := mb.next(t); u.Self == nil || u.Self.NAT != wire.NATEasy || !slices.Equal(u.Self.Endpoints, want) {
		t.Fatalf("b got %+v, want itself with the report", u)
	}
	d, err := tb.store.DeviceByID(t.Context(), b.ID)
	if err != nil || !slices.Equal(d.Reflexive, []netip.AddrPort{ap("203.0.113.9:50000"), ap("198.51.100.4:61000"), ap("127.0.0.1:41641")}) {
		t.Fatalf("stored reflexive %v, %v", d.Reflexive, err)
	}

	// The same report again: no update. Then a new NAT verdict: one update.
	if status, rb := b.authed(t, http.MethodPost, wire.PathEndpoints, body); status != http.StatusNoContent {
		t.Fatalf("endpoints again: %d %s", status, rb)
	}
	req.NAT = wire.NATSymmetric
	if status, rb := b.authed(t, http.MethodPost, wire.PathEndpoints, mustJSON(t, req)); status != http.StatusNoContent {
		t.Fatalf("endpoints with new NAT: %d %s", status, rb)
	}
	if u := ma.next(t); len(u.Peers) != 1 || u.Peers[0].NAT != wire.NATSymmetric {
		t.Fatalf("a got %+v, want b's NAT symmetric (and nothing for the repeated report)", u)
	}

	// Bad reports change nothing.
	for _, bad := range []wire.EndpointsRequest{
		{ListenPort: 41641, NAT: "cone"},
		{ListenPort: 41641, Reflexive: make([]netip.AddrPort, maxEndpoints+1)},
	} {
		status, rb := b.authed(t, http.MethodPost, wire.PathEndpoints, mustJSON(t, bad))
		if status != http.StatusBadRequest {
			t.Fatalf("report %+v: %d %s, want 400", bad, status, rb)
		}
		errorLine(t, rb)
	}
	if d, _ := tb.store.DeviceByID(t.Context(), b.ID); d.NAT != wire.NATSymmetric || len(d.Endpoints) != 4 {
		t.Fatalf("refused report changed the device: %+v", d)
	}
}

// TestProtocolV1Client: a client of protocol version 1 registers, reports endpoints the
// old way and gets its map; a newer client than the broker is refused.
func TestProtocolV1Client(t *testing.T) {
	tb := startBroker(t, nil)
	tb.setupAccount(t, "acme")
	key := tb.authKey(t, "acme", true)
	old := tb.newDevice(t, "old")
	req := old.request(key)
	req.Version = 1
	status, body := tb.do(t, http.MethodPost, wire.PathRegister, mustJSON(t, req), nil)
	if status != http.StatusOK {
		t.Fatalf("v1 register: %d %s", status, body)
	}
	var resp wire.RegisterResponse
	if err := json.Unmarshal(body, &resp); err != nil || resp.Device.Name != "old" {
		t.Fatalf("v1 register response %s: %v", body, err)
	}
	// A version 1 endpoints request has only listen_port and endpoints.
	if status, rb := old.authed(t, http.MethodPost, wire.PathEndpoints,
		[]byte(`{"listen_port":41641,"endpoints":["10.0.0.5:41641"]}`)); status != http.StatusNoContent {
		t.Fatalf("v1 endpoints: %d %s", status, rb)
	}
	if u := old.openMap(t).next(t); !u.Full || u.Self == nil || u.Self.NAT != "" || len(u.Self.Endpoints) != 2 {
		t.Fatalf("v1 map %+v", u)
	}

	newer := tb.newDevice(t, "newer")
	req = newer.request(key)
	req.Version = wire.ProtocolVersion + 1
	status, body = tb.do(t, http.MethodPost, wire.PathRegister, mustJSON(t, req), nil)
	if status != http.StatusBadRequest || !strings.Contains(errorLine(t, body), "newer than this broker") {
		t.Fatalf("newer client: %d %s", status, body)
	}
}
