package service

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/weftmesh/weft/platform"
	"github.com/weftmesh/weft/wire"
)

func pfx(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func vdev(id, name, addr, gateway string) wire.Device {
	return wire.Device{ID: id, Name: name, Address: netip.MustParseAddr(addr), Kind: wire.KindVirtual, Gateway: gateway}
}

// gatewayMap is a map with a gateway offering an exit and a subnet (and advertising one
// more, unapproved), a plain peer, and virtual devices behind the gateway and behind self.
func gatewayMap(t *testing.T) (m *PeerMap, self wire.Device, gw, plain wire.Device) {
	self = wire.Device{ID: "me", Name: "laptop", Address: netip.MustParseAddr("100.64.0.1"), Routes: pfx("192.168.9.0/24", "fd00::/64")}
	gw = dev(t, "g", "gw", "100.64.0.2", "198.51.100.2:51820", "192.168.5.2:51820")
	gw.Advertised, gw.Routes = pfx("0.0.0.0/0", "10.1.0.0/16", "10.2.0.0/16", "::/0"), pfx("0.0.0.0/0", "10.1.0.0/16", "::/0")
	plain = dev(t, "p", "plain", "100.64.0.3", "198.51.100.3:51820")
	cam := vdev("c", "cam", "100.64.0.20", "g")
	printer := vdev("v", "printer", "100.64.0.21", "me")
	printer.LANIP = netip.MustParseAddr("192.168.9.7")
	printer.VirtualFilter = &wire.PacketFilter{DefaultAllow: true}
	linkLocal := vdev("l", "old", "100.64.0.22", "me")
	linkLocal.LANIP = netip.MustParseAddr("169.254.1.2")
	orphan := vdev("o", "orphan", "100.64.0.23", "gone")
	m = &PeerMap{}
	m.Apply(wire.MapUpdate{Full: true, Peers: []wire.Device{gw, plain, cam, printer, linkLocal, orphan}})
	return m, self, gw, plain
}

func TestApplyUse(t *testing.T) {
	m, self, gw, _ := gatewayMap(t)
	start := []gatewayChoice{{Route: netip.MustParsePrefix("10.1.0.0/16"), Gateway: "p"}}

	for _, tt := range []struct {
		req  wire.GatewayUseRequest
		code int
		msg  string
	}{
		{wire.GatewayUseRequest{}, http.StatusBadRequest, "which gateway?"},
		{wire.GatewayUseRequest{Gateway: "nosuch"}, http.StatusNotFound, `no device "nosuch"`},
		{wire.GatewayUseRequest{Gateway: "laptop"}, http.StatusBadRequest, "is this device"},
		{wire.GatewayUseRequest{Gateway: "cam"}, http.StatusBadRequest, "cam is a virtual device"},
		{wire.GatewayUseRequest{Gateway: "plain"}, http.StatusConflict, "plain has no approved routes: it advertises none"},
		{wire.GatewayUseRequest{Gateway: "gw", Route: netip.MustParsePrefix("10.2.0.0/16")}, http.StatusConflict, "route 10.2.0.0/16 of gw is not approved"},
		{wire.GatewayUseRequest{Gateway: "gw", Route: netip.MustParsePrefix("10.1.2.3/16")}, http.StatusBadRequest, "not a network address: use 10.1.0.0/16"},
	} {
		got, err := applyUse(slices.Clone(start), &self, m, tt.req)
		var e *Error
		if !errors.As(err, &e) || e.Code != tt.code || !strings.Contains(err.Error(), tt.msg) || got != nil {
			t.Errorf("%+v: %v (%v); want %d %q", tt.req, got, err, tt.code, tt.msg)
		}
	}

	// One route: it replaces the choice of another gateway for the same route.
	got, err := applyUse(slices.Clone(start), &self, m, wire.GatewayUseRequest{Gateway: "100.64.0.2", Route: netip.MustParsePrefix("10.1.0.0/16")})
	if err != nil || !reflect.DeepEqual(got, []gatewayChoice{{Route: netip.MustParsePrefix("10.1.0.0/16"), Gateway: gw.ID}}) {
		t.Errorf("use one route: %v %v", got, err)
	}
	// All approved routes, by name.
	got, err = applyUse(slices.Clone(start), &self, m, wire.GatewayUseRequest{Gateway: "GW"})
	want := []gatewayChoice{{pfx("0.0.0.0/0")[0], "g"}, {pfx("10.1.0.0/16")[0], "g"}, {pfx("::/0")[0], "g"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("use all: %v %v; want %v", got, err, want)
	}
}

func TestApplyClear(t *testing.T) {
	m, _, _, _ := gatewayMap(t)
	all := []gatewayChoice{{pfx("0.0.0.0/0")[0], "g"}, {pfx("10.1.0.0/16")[0], "g"}, {pfx("10.9.0.0/16")[0], "gone"}}
	for _, tt := range []struct {
		req  wire.GatewayClearRequest
		want []gatewayChoice
		err  string
	}{
		{wire.GatewayClearRequest{}, nil, ""},
		{wire.GatewayClearRequest{Gateway: "gw"}, all[2:], ""},
		{wire.GatewayClearRequest{Gateway: "gone"}, all[:2], ""}, // a vanished gateway, by ID
		{wire.GatewayClearRequest{Route: pfx("10.1.0.0/16")[0]}, []gatewayChoice{all[0], all[2]}, ""},
		{wire.GatewayClearRequest{Gateway: "gw", Route: pfx("10.1.0.0/16")[0]}, []gatewayChoice{all[0], all[2]}, ""},
		{wire.GatewayClearRequest{Gateway: "plain"}, nil, "no route goes through plain"},
		{wire.GatewayClearRequest{Route: pfx("10.7.0.0/16")[0]}, nil, "no gateway is chosen for 10.7.0.0/16"},
		{wire.GatewayClearRequest{Gateway: "gw", Route: pfx("10.9.0.0/16")[0]}, nil, "route 10.9.0.0/16 does not go through gw"},
	} {
		got, err := applyClear(slices.Clone(all), m, tt.req)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%+v: %v, want error %q", tt.req, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%+v: %v %v, want %v", tt.req, got, err, tt.want)
		}
	}
}

func TestResolveChoices(t *testing.T) {
	m, _, _, _ := gatewayMap(t)
	choices := []gatewayChoice{
		{pfx("10.2.0.0/16")[0], "g"}, {pfx("0.0.0.0/0")[0], "g"}, {pfx("::/0")[0], "g"},
		{pfx("10.9.0.0/16")[0], "gone"}, {pfx("10.8.0.0/16")[0], "c"},
	}
	got := resolveChoices(choices, m)
	want := []struct {
		route  string
		active bool
		reason string
	}{
		{"0.0.0.0/0", true, ""},
		{"10.2.0.0/16", false, "not approved"},
		{"10.8.0.0/16", false, "cannot route"},
		{"10.9.0.0/16", false, "not in this device's map"},
		{"::/0", false, "IPv4 only"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i, w := range want {
		g := got[i]
		if g.Route.String() != w.route || g.Active != w.active || !strings.Contains(g.Reason, w.reason) {
			t.Errorf("choice %d: %+v, want %+v", i, g, w)
		}
	}
	if got[0].GatewayName != "gw" {
		t.Errorf("gateway name %q", got[0].GatewayName)
	}
	if r := activeRoutes(choices, m); !slices.Equal(r, pfx("0.0.0.0/0")) {
		t.Errorf("active routes %v", r)
	}
}

func TestGatewayAllowedIPs(t *testing.T) {
	m, self, gw, plain := gatewayMap(t)
	choices := []gatewayChoice{{pfx("10.1.0.0/16")[0], "g"}, {pfx("10.2.0.0/16")[0], "g"}, {pfx("0.0.0.0/0")[0], "g"}}
	got := gatewayAllowedIPs(self.ID, choices, m)
	// The gateway carries its virtual device and the approved chosen routes; nobody
	// carries this device's own virtual devices or those of a gateway not in the map.
	want := map[wire.Key][]netip.Prefix{gw.PublicKey: pfx("0.0.0.0/0", "10.1.0.0/16", "100.64.0.20/32")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	peers := m.WGPeers(nil, got)
	for _, p := range peers {
		switch p.PublicKey {
		case gw.PublicKey:
			if !slices.Equal(p.AllowedIPs, pfx("100.64.0.2/32", "0.0.0.0/0", "10.1.0.0/16", "100.64.0.20/32")) {
				t.Errorf("gw allowed IPs %v", p.AllowedIPs)
			}
		case plain.PublicKey:
			if !slices.Equal(p.AllowedIPs, pfx("100.64.0.3/32")) {
				t.Errorf("plain allowed IPs %v", p.AllowedIPs)
			}
		}
	}
	if len(peers) != 2 {
		t.Errorf("virtual devices got WireGuard peers: %+v", peers)
	}
}

func TestGatewayRole(t *testing.T) {
	m, self, _, _ := gatewayMap(t)
	routes, virtual, skipped := gatewayRole(&self, m)
	if !slices.Equal(routes, pfx("192.168.9.0/24")) {
		t.Errorf("routes %v", routes)
	}
	want := []platform.VirtualDevice{{SecureIP: netip.MustParseAddr("100.64.0.21"), LANIP: netip.MustParseAddr("192.168.9.7"),
		Filter: wire.PacketFilter{DefaultAllow: true}}}
	if !reflect.DeepEqual(virtual, want) {
		t.Errorf("virtual %+v", virtual)
	}
	if len(skipped) != 1 || !strings.Contains(skipped[0], "virtual device old") {
		t.Errorf("skipped %v", skipped)
	}
	if r, v, _ := gatewayRole(nil, m); r != nil || v != nil {
		t.Errorf("no self: %v %v", r, v)
	}
}

func TestBypassAddrs(t *testing.T) {
	m, _, _, _ := gatewayMap(t)
	got := bypassAddrs([]netip.Addr{netip.MustParseAddr("203.0.113.1"), {}},
		m.List(), []netip.AddrPort{netip.MustParseAddrPort("198.51.100.9:4000"), {}, netip.MustParseAddrPort("[::ffff:198.51.100.2]:1")})
	want := []netip.Addr{netip.MustParseAddr("192.168.5.2"), netip.MustParseAddr("198.51.100.2"),
		netip.MustParseAddr("198.51.100.3"), netip.MustParseAddr("198.51.100.9"), netip.MustParseAddr("203.0.113.1")}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestHostCache(t *testing.T) {
	answers := map[string][]netip.Addr{"broker.test": {netip.MustParseAddr("::ffff:192.0.2.7")}}
	c := &hostCache{lookup: func(_ context.Context, host string) ([]netip.Addr, error) {
		if a, ok := answers[host]; ok {
			return a, nil
		}
		return nil, errors.New("no such host")
	}}
	got := c.resolve(t.Context(), []string{"203.0.113.5:443", "198.51.100.1", "", "[2001:db8::1]:3478", "broker.test:8443", "nosuch.test:1"})
	want := []netip.Addr{netip.MustParseAddr("203.0.113.5"), netip.MustParseAddr("198.51.100.1"),
		netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("192.0.2.7")}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// A name that resolved once is kept when a later lookup fails.
	delete(answers, "broker.test")
	if got := c.resolve(t.Context(), []string{"broker.test:8443"}); !slices.Equal(got, []netip.Addr{netip.MustParseAddr("192.0.2.7")}) {
		t.Errorf("after a failed lookup: %v", got)
	}
	if h := brokerHost("https://broker.example:8443"); h != "broker.example:8443" {
		t.Errorf("brokerHost %q", h)
	}
}
