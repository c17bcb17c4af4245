package platform

import (
	"net/netip"
	"testing"

	"github.com/weftmesh/weft/wire"
)

func TestPFGatewayRules(t *testing.T) {
	a := netip.MustParseAddr
	base := GatewayConfig{TunnelIface: "utun4", MeshPrefix: netip.MustParsePrefix("100.64.0.0/10"), Self: a("100.64.0.2")}
	cam := VirtualDevice{SecureIP: a("100.64.0.99"), LANIP: a("192.168.1.50"), Filter: wire.PacketFilter{Rules: []wire.FilterRule{
		{Sources: prefixes("100.64.0.1/32"), Proto: wire.ProtoTCP, Ports: []wire.PortRange{{First: 554, Last: 554}}},
		{Sources: prefixes("100.64.0.7/32", "100.64.0.1/32", "fd7a::1/128"), Proto: wire.ProtoICMP},
		{Sources: prefixes("fd7a::1/128"), Proto: wire.ProtoUDP}, // another family: left out
	}}}
	printer := VirtualDevice{SecureIP: a("100.64.0.98"), LANIP: a("192.168.1.51"), Filter: wire.PacketFilter{DefaultAllow: true}}
	tests := []struct {
		name    string
		routes  []netip.Prefix
		virtual []VirtualDevice
		want    string
	}{{
		name:   "exit node",
		routes: prefixes("0.0.0.0/0", "::/0"),
		want: `# weft gateway on utun4: generated, replaced on every change
table <weft_gw_routes> const { 0.0.0.0/0, !100.64.0.0/10 }
nat on en0 inet from 100.64.0.0/10 to <weft_gw_routes> -> (en0)
nat on en1 inet from 100.64.0.0/10 to <weft_gw_routes> -> (en1)
pass in quick on utun4 inet from 100.64.0.0/10 to <weft_gw_routes> keep state
block drop in quick on utun4 inet from any to ! 100.64.0.2
block drop out quick on utun4 inet from ! 100.64.0.2 to any
`,
	}, {
		name:    "routes and virtual devices",
		routes:  prefixes("198.51.100.0/24", "10.0.0.0/8"),
		virtual: []VirtualDevice{cam, printer},
		want: `# weft gateway on utun4: generated, replaced on every change
table <weft_gw_routes> const { 10.0.0.0/8, 198.51.100.0/24, !100.64.0.0/10 }
table <weft_gw_lan> const { 192.168.1.50, 192.168.1.51 }
table <weft_gw_0> const { 100.64.0.1 }
table <weft_gw_1> const { 100.64.0.1, 100.64.0.7 }
nat on utun4 inet from 192.168.1.51 to 100.64.0.0/10 tag weft_gw_lan -> 100.64.0.98
nat on utun4 inet from 192.168.1.50 to 100.64.0.0/10 tag weft_gw_lan -> 100.64.0.99
nat on en0 inet from 100.64.0.0/10 to <weft_gw_lan> tagged weft_gw_vdev -> (en0)
nat on en0 inet from 100.64.0.0/10 to <weft_gw_routes> -> (en0)
nat on en1 inet from 100.64.0.0/10 to <weft_gw_lan> tagged weft_gw_vdev -> (en1)
nat on en1 inet from 100.64.0.0/10 to <weft_gw_routes> -> (en1)
rdr on utun4 inet from any to 100.64.0.98 tag weft_gw_vdev -> 192.168.1.51
rdr on utun4 inet from any to 100.64.0.99 tag weft_gw_vdev -> 192.168.1.50
pass in quick on utun4 inet from any to 192.168.1.51 tagged weft_gw_vdev keep state
pass in quick on utun4 inet proto tcp from <weft_gw_0> to 192.168.1.50 port { 554 } tagged weft_gw_vdev keep state
pass in quick on utun4 inet proto icmp from <weft_gw_1> to 192.168.1.50 icmp-type echoreq tagged weft_gw_vdev keep state
block drop in quick on utun4 inet from any to 192.168.1.50 tagged weft_gw_vdev
pass in quick on utun4 inet from 100.64.0.0/10 to <weft_gw_routes> keep state
block drop in quick on utun4 inet from any to ! 100.64.0.2
pass out quick on utun4 inet tagged weft_gw_lan keep state
block drop out quick on utun4 inet from ! 100.64.0.2 to any
`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			cfg.Routes, cfg.Virtual = tt.routes, tt.virtual
			got, err := pfGatewayRules(cfg, []string{"en0", "en1"})
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestPFGatewayRulesRefusesBadInput(t *testing.T) {
	cfg := GatewayConfig{TunnelIface: "utun4", MeshPrefix: netip.MustParsePrefix("100.64.0.0/10"),
		Self: netip.MustParseAddr("100.64.0.2"), Routes: prefixes("0.0.0.0/0")}
	for _, egress := range [][]string{{"utun4"}, {"en0 -> (en0)\npass"}, {""}} {
		if _, err := pfGatewayRules(cfg, egress); err == nil {
			t.Errorf("egress %q accepted", egress)
		}
	}
	cfg.TunnelIface = "utun4 all"
	if _, err := pfGatewayRules(cfg, []string{"en0"}); err == nil {
		t.Error("hostile tunnel name accepted")
	}
}
