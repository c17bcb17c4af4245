package platform

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/weftmesh/weft/wire"
)

func TestCheckGateway(t *testing.T) {
	a := netip.MustParseAddr
	ok := GatewayConfig{
		TunnelIface: "weft0",
		MeshPrefix:  netip.MustParsePrefix("100.64.0.0/10"),
		Self:        a("100.64.0.2"),
		Routes:      prefixes("10.1.2.3/16", "::/0", "0.0.0.0/0", "10.1.0.0/16"),
		Virtual: []VirtualDevice{
			{SecureIP: a("100.64.0.99"), LANIP: a("192.168.1.50")},
			{SecureIP: a("100.64.0.98"), LANIP: a("192.168.1.51"), Filter: wire.PacketFilter{DefaultAllow: true}},
		},
	}
	got, err := checkGateway(ok)
	if err != nil {
		t.Fatal(err)
	}
	// IPv6 routes left out, masked, sorted, without duplicates; devices by SecureIP.
	if want := prefixes("0.0.0.0/0", "10.1.0.0/16"); !reflect.DeepEqual(got.Routes, want) {
		t.Errorf("routes %v, want %v", got.Routes, want)
	}
	if got.Virtual[0].SecureIP != a("100.64.0.98") || got.Virtual[1].SecureIP != a("100.64.0.99") {
		t.Errorf("virtual devices not sorted: %+v", got.Virtual)
	}
	if ok.Routes[0] != netip.MustParsePrefix("10.1.2.3/16") {
		t.Error("checkGateway changed its argument")
	}

	for _, tt := range []struct {
		name   string
		change func(*GatewayConfig)
	}{
		{"no interface", func(c *GatewayConfig) { c.TunnelIface = "" }},
		{"hostile interface", func(c *GatewayConfig) { c.TunnelIface = "weft0 }" }},
		{"no mesh", func(c *GatewayConfig) { c.MeshPrefix = netip.Prefix{} }},
		{"IPv6 mesh", func(c *GatewayConfig) { c.MeshPrefix = netip.MustParsePrefix("fd7a::/48") }},
		{"self outside the mesh", func(c *GatewayConfig) { c.Self = a("10.0.0.1") }},
		{"invalid route", func(c *GatewayConfig) { c.Routes = append(c.Routes, netip.Prefix{}) }},
		{"SecureIP outside the mesh", func(c *GatewayConfig) { c.Virtual[0].SecureIP = a("192.168.9.9") }},
		{"SecureIP is self", func(c *GatewayConfig) { c.Virtual[0].SecureIP = c.Self }},
		{"SecureIP twice", func(c *GatewayConfig) { c.Virtual[1].SecureIP = c.Virtual[0].SecureIP }},
		{"LAN IP twice", func(c *GatewayConfig) { c.Virtual[1].LANIP = c.Virtual[0].LANIP }},
		{"LAN IP in the mesh", func(c *GatewayConfig) { c.Virtual[0].LANIP = a("100.64.5.5") }},
		{"LAN IP missing", func(c *GatewayConfig) { c.Virtual[0].LANIP = netip.Addr{} }},
		{"LAN IP IPv6", func(c *GatewayConfig) { c.Virtual[0].LANIP = a("fd00::50") }},
		{"LAN IP broadcast", func(c *GatewayConfig) { c.Virtual[0].LANIP = a("255.255.255.255") }},
		{"LAN IP loopback", func(c *GatewayConfig) { c.Virtual[0].LANIP = a("127.0.0.1") }},
		{"bad filter", func(c *GatewayConfig) {
			c.Virtual[0].Filter = wire.PacketFilter{Rules: []wire.FilterRule{{Sources: prefixes("100.64.0.1/32"), Proto: "gre"}}}
		}},
	} {
		c := ok
		c.Routes = append([]netip.Prefix(nil), ok.Routes...)
		c.Virtual = append([]VirtualDevice(nil), ok.Virtual...)
		tt.change(&c)
		if _, err := checkGateway(c); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
}
