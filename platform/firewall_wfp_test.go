package platform

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/weftmesh/weft/wire"
)

func renderWFP(fs []wfpFilter) string {
	names := map[wfpGUID]string{
		wfpLayerRecvAcceptV4:  "ALE_AUTH_RECV_ACCEPT_V4",
		wfpLayerRecvAcceptV6:  "ALE_AUTH_RECV_ACCEPT_V6",
		wfpCondLocalInterface: "IP_LOCAL_INTERFACE",
		wfpCondLocalAddress:   "IP_LOCAL_ADDRESS",
		wfpCondRemoteAddress:  "IP_REMOTE_ADDRESS",
		wfpCondProtocol:       "IP_PROTOCOL",
		wfpCondLocalPort:      "IP_LOCAL_PORT",
	}
	var b strings.Builder
	for _, f := range fs {
		action := map[wfpAction]string{wfpPermit: "permit", wfpBlock: "block"}[f.action]
		fmt.Fprintf(&b, "%s weight %d %s %q\n", action, f.weight, names[f.layer], f.name)
		for _, c := range f.conds {
			fmt.Fprintf(&b, "  %s %s\n", names[c.field], c.value.wfpValueString())
		}
	}
	return b.String()
}

func TestWFPFilters(t *testing.T) {
	const luid = 0x0006_0000_0001_2345
	tests := []struct {
		name   string
		self   string
		filter wire.PacketFilter
		want   string
	}{{
		name:   "default allow",
		self:   "100.64.0.9",
		filter: wire.PacketFilter{DefaultAllow: true},
		want:   "",
	}, {
		name: "deny all",
		self: "100.64.0.9",
		want: `block weight 1 ALE_AUTH_RECV_ACCEPT_V4 "weft: block other inbound flows on the tunnel"
  IP_LOCAL_INTERFACE uint64 0x6000000012345
`,
	}, {
		name: "rules",
		self: "100.64.0.9",
		filter: wire.PacketFilter{Rules: []wire.FilterRule{
			{Sources: prefixes("100.64.0.2/32", "100.64.0.1/32", "fd00::1/128"), Proto: "tcp",
				Ports: []wire.PortRange{{First: 80, Last: 90}, {First: 22, Last: 22}, {First: 85, Last: 100}}},
			{Sources: prefixes("100.64.0.1/32"), Proto: "icmp"},
			{Sources: prefixes("10.1.0.0/16", "0.0.0.0/0"), Proto: "udp"},
			{Sources: prefixes("fd00::1/128"), Proto: "udp"}, // another family: left out
			{Sources: prefixes("100.64.0.5/32"), Proto: "*"},
		}},
		want: `permit weight 10 ALE_AUTH_RECV_ACCEPT_V4 "weft: permit tcp from 2 sources"
  IP_LOCAL_INTERFACE uint64 0x6000000012345
  IP_LOCAL_ADDRESS uint32 100.64.0.9
  IP_REMOTE_ADDRESS v4_addr_mask 100.64.0.1/255.255.255.255
  IP_REMOTE_ADDRESS v4_addr_mask 100.64.0.2/255.255.255.255
  IP_PROTOCOL uint8 6
  IP_LOCAL_PORT uint16 22
  IP_LOCAL_PORT range 80-100
permit weight 10 ALE_AUTH_RECV_ACCEPT_V4 "weft: permit icmp from 1 sources"
  IP_LOCAL_INTERFACE uint64 0x6000000012345
  IP_LOCAL_ADDRESS uint32 100.64.0.9
  IP_REMOTE_ADDRESS v4_addr_mask 100.64.0.1/255.255.255.255
  IP_PROTOCOL uint8 1
  IP_LOCAL_PORT uint16 8
permit weight 10 ALE_AUTH_RECV_ACCEPT_V4 "weft: permit udp from 2 sources"
  IP_LOCAL_INTERFACE uint64 0x6000000012345
  IP_LOCAL_ADDRESS uint32 100.64.0.9
  IP_REMOTE_ADDRESS v4_addr_mask 0.0.0.0/0.0.0.0
  IP_REMOTE_ADDRESS v4_addr_mask 10.1.0.0/255.255.0.0
  IP_PROTOCOL uint8 17
permit weight 10 ALE_AUTH_RECV_ACCEPT_V4 "weft: permit * from 1 sources"
  IP_LOCAL_INTERFACE uint64 0x6000000012345
  IP_LOCAL_ADDRESS uint32 100.64.0.9
  IP_REMOTE_ADDRESS v4_addr_mask 100.64.0.5/255.255.255.255
block weight 1 ALE_AUTH_RECV_ACCEPT_V4 "weft: block other inbound flows on the tunnel"
  IP_LOCAL_INTERFACE uint64 0x6000000012345
`,
	}, {
		name: "ipv6",
		self: "fd7a::9",
		filter: wire.PacketFilter{Rules: []wire.FilterRule{
			{Sources: prefixes("fd7a::1/128", "100.64.0.1/32", "fd7b::/64"), Proto: "icmp"},
		}},
		want: `permit weight 10 ALE_AUTH_RECV_ACCEPT_V6 "weft: permit icmp from 2 sources"
  IP_LOCAL_INTERFACE uint64 0x6000000012345
  IP_LOCAL_ADDRESS byte_array16 fd7a::9
  IP_REMOTE_ADDRESS v6_addr_mask fd7a::1/128
  IP_REMOTE_ADDRESS v6_addr_mask fd7b::/64
  IP_PROTOCOL uint8 58
  IP_LOCAL_PORT uint16 128
block weight 1 ALE_AUTH_RECV_ACCEPT_V6 "weft: block other inbound flows on the tunnel"
  IP_LOCAL_INTERFACE uint64 0x6000000012345
`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, err := wfpFilters(luid, netip.MustParseAddr(tt.self), tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if got := renderWFP(fs); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestWFPFiltersRefuseBadInput(t *testing.T) {
	if _, err := wfpFilters(1, netip.Addr{}, wire.PacketFilter{}); err == nil {
		t.Error("missing self accepted")
	}
	bad := wire.PacketFilter{Rules: []wire.FilterRule{{Sources: prefixes("100.64.0.1/32"), Proto: "udp", Ports: []wire.PortRange{{First: 5, Last: 4}}}}}
	if _, err := wfpFilters(1, netip.MustParseAddr("100.64.0.9"), bad); err == nil {
		t.Error("reversed port range accepted")
	}
}
