package wire

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"testing"
)

func TestPacketFilterAllows(t *testing.T) {
	a, b, c := netip.MustParseAddr("100.64.0.1"), netip.MustParseAddr("100.64.0.2"), netip.MustParseAddr("100.64.0.3")
	f := PacketFilter{Rules: []FilterRule{
		{Sources: []netip.Prefix{netip.PrefixFrom(a, 32)}, Proto: ProtoTCP, Ports: []PortRange{{First: 22, Last: 22}, {First: 80, Last: 90}}},
		{Sources: []netip.Prefix{netip.PrefixFrom(a, 32), netip.PrefixFrom(b, 32)}, Proto: ProtoICMP},
		{Sources: []netip.Prefix{netip.PrefixFrom(b, 32)}, Proto: ProtoUDP},
		{Sources: []netip.Prefix{netip.MustParsePrefix("100.64.0.3/32")}, Proto: ProtoAny},
	}}
	for _, tt := range []struct {
		src   netip.Addr
		proto string
		port  uint16
		want  bool
	}{
		{a, "tcp", 22, true}, {a, "tcp", 23, false}, {a, "tcp", 80, true}, {a, "tcp", 90, true}, {a, "tcp", 91, false},
		{a, "udp", 22, false}, {a, "icmp", 0, true}, {b, "icmp", 0, true}, {b, "tcp", 22, false},
		{b, "udp", 1, true}, {b, "udp", 65535, true}, {c, "tcp", 1, true}, {c, "icmp", 0, true},
		{netip.MustParseAddr("100.64.0.4"), "tcp", 22, false},
	} {
		if got := f.Allows(tt.src, tt.proto, tt.port); got != tt.want {
			t.Errorf("Allows(%v, %s, %d) = %v, want %v", tt.src, tt.proto, tt.port, got, tt.want)
		}
	}
	if (PacketFilter{}).Allows(a, "tcp", 22) {
		t.Error("empty filter allows")
	}
	if !(PacketFilter{DefaultAllow: true}).Allows(a, "tcp", 22) {
		t.Error("default allow does not allow")
	}
}

func TestPacketFilterValidate(t *testing.T) {
	src := []netip.Prefix{netip.MustParsePrefix("100.64.0.1/32")}
	good := []PacketFilter{
		{}, {DefaultAllow: true},
		{Rules: []FilterRule{{Sources: src, Proto: "tcp", Ports: []PortRange{{First: 1, Last: 65535}}}, {Sources: src, Proto: "*"}}},
	}
	for _, f := range good {
		if err := f.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", f, err)
		}
	}
	bad := []PacketFilter{
		{DefaultAllow: true, Rules: []FilterRule{{Sources: src, Proto: "*"}}},
		{Rules: []FilterRule{{Proto: "tcp"}}},
		{Rules: []FilterRule{{Sources: []netip.Prefix{{}}, Proto: "tcp"}}},
		{Rules: []FilterRule{{Sources: src, Proto: "TCP"}}},
		{Rules: []FilterRule{{Sources: src, Proto: "icmp", Ports: []PortRange{{First: 8, Last: 8}}}}},
		{Rules: []FilterRule{{Sources: src, Proto: "udp", Ports: []PortRange{{First: 0, Last: 8}}}}},
		{Rules: []FilterRule{{Sources: src, Proto: "udp", Ports: []PortRange{{First: 9, Last: 8}}}}},
	}
	for _, f := range bad {
		if err := f.Validate(); err == nil {
			t.Errorf("Validate(%+v) accepted", f)
		}
	}
}

func TestPacketFilterJSON(t *testing.T) {
	f := PacketFilter{Rules: []FilterRule{{Sources: []netip.Prefix{netip.MustParsePrefix("100.64.0.1/32")}, Proto: "tcp", Ports: []PortRange{{First: 22, Last: 22}}}}}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"rules":[{"sources":["100.64.0.1/32"],"proto":"tcp","ports":[{"first":22,"last":22}]}]}`; string(b) != want {
		t.Errorf("JSON %s, want %s", b, want)
	}
	var back PacketFilter
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, f) {
		t.Errorf("round trip: %+v, %v", back, err)
	}
}
