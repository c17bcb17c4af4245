package platform

import (
	"net/netip"
	"testing"

	"github.com/weftmesh/weft/wire"
)

func TestPFRules(t *testing.T) {
	v4 := netip.MustParseAddr("100.64.0.9")
	tests := []struct {
		name   string
		self   netip.Addr
		filter wire.PacketFilter
		fwd    Forwarding
		want   string
	}{{
		name:   "default allow",
		self:   v4,
		filter: wire.PacketFilter{DefaultAllow: true},
		want:   "# weft access policy for utun4: generated, replaced on every change\n",
	}, {
		name:   "deny all",
		self:   v4,
		filter: wire.PacketFilter{},
		want: `# weft access policy for utun4: generated, replaced on every change
pass out on utun4 all keep state
block drop in quick on utun4 all
`,
	}, {
		name: "rules",
		self: v4,
		filter: wire.PacketFilter{Rules: []wire.FilterRule{
			{Sources: prefixes("100.64.0.1/32"), Proto: "icmp"},
			{Sources: prefixes("100.64.0.2/32", "100.64.0.1/32", "fd00::1/128"), Proto: "tcp",
				Ports: []wire.PortRange{{First: 80, Last: 90}, {First: 22, Last: 22}, {First: 85, Last: 100}}},
			{Sources: prefixes("10.1.0.0/16"), Proto: "udp"},
			{Sources: prefixes("fd00::1/128"), Proto: "udp"}, // another family: left out
			{Sources: prefixes("100.64.0.5/32"), Proto: "*"},
		}},
		want: `# weft access policy for utun4: generated, replaced on every change
table <weft_0> const { 100.64.0.1 }
table <weft_1> const { 100.64.0.1, 100.64.0.2 }
table <weft_2> const { 10.1.0.0/16 }
table <weft_3> const { 100.64.0.5 }
pass out on utun4 all keep state
pass in quick on utun4 inet proto icmp from <weft_0> to 100.64.0.9 icmp-type echoreq keep state
pass in quick on utun4 inet proto tcp from <weft_1> to 100.64.0.9 port { 22, 80:100 } keep state
pass in quick on utun4 inet proto udp from <weft_2> to 100.64.0.9 keep state
pass in quick on utun4 inet from <weft_3> to 100.64.0.9 keep state
block drop in quick on utun4 all
`,
	}, {
		name: "ipv6",
		self: netip.MustParseAddr("fd7a::9"),
		filter: wire.PacketFilter{Rules: []wire.FilterRule{
			{Sources: prefixes("fd7a::1/128", "100.64.0.1/32"), Proto: "icmp"},
			{Sources: prefixes("fd7a::2/128"), Proto: "udp", Ports: []wire.PortRange{{First: 53, Last: 53}}},
		}},
		want: `# weft access policy for utun4: generated, replaced on every change
table <weft_0> const { fd7a::1 }
table <weft_1> const { fd7a::2 }
pass out on utun4 all keep state
pass in quick on utun4 inet6 proto 58 from <weft_0> to fd7a::9 icmp6-type echoreq keep state
pass in quick on utun4 inet6 proto udp from <weft_1> to fd7a::9 port { 53 } keep state
block drop in quick on utun4 all
`,
	}, {
		name:   "gateway",
		self:   v4,
		filter: wire.PacketFilter{Rules: []wire.FilterRule{{Sources: prefixes("100.64.0.1/32"), Proto: "icmp"}}},
		fwd:    Forwarding{Mesh: netip.MustParsePrefix("100.64.0.0/10"), Routes: prefixes("192.168.1.0/24")},
		want: `# weft access policy for utun4: generated, replaced on every change
table <weft_0> const { 100.64.0.1 }
pass out on utun4 all keep state
pass in quick on utun4 inet proto icmp from <weft_0> to 100.64.0.9 icmp-type echoreq keep state
block drop in quick on utun4 inet from any to 100.64.0.0/10
block drop in quick on utun4 inet from ! 100.64.0.0/10 to any
block drop in quick on utun4 inet6 all
`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pfRules("utun4", tt.self, tt.filter, tt.fwd)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestPFRulesRefusesBadInput(t *testing.T) {
	self := netip.MustParseAddr("100.64.0.9")
	for _, iface := range []string{"", "utun4 all\npass", "utun{4}", "a-very-long-interface"} {
		if _, err := pfRules(iface, self, wire.PacketFilter{}, Forwarding{}); err == nil {
			t.Errorf("interface %q accepted", iface)
		}
	}
	bad := wire.PacketFilter{Rules: []wire.FilterRule{{Sources: prefixes("100.64.0.1/32"), Proto: "tcp", Ports: []wire.PortRange{{First: 0, Last: 1}}}}}
	if _, err := pfRules("utun4", self, bad, Forwarding{}); err == nil {
		t.Error("port 0 accepted")
	}
	if _, err := pfRules("utun4", netip.Addr{}, wire.PacketFilter{}, Forwarding{}); err == nil {
		t.Error("missing self accepted")
	}
	if _, err := pfRules("utun4", self, wire.PacketFilter{}, Forwarding{Routes: prefixes("10.0.0.0/8")}); err == nil {
		t.Error("forwarding without a mesh range accepted")
	}
}
