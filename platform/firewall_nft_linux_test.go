package platform

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/weftmesh/weft/wire"
)

// renderPlan decodes a plan back into nft-like text, independently of the builder, so the
// expressions (offsets, byte orders, set layout) are what the tests compare.
func renderPlan(t *testing.T, p *nftPlan) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "table %s %s\n", map[nftables.TableFamily]string{nftables.TableFamilyINet: "inet"}[p.table.Family], p.table.Name)
	for _, c := range p.chains {
		if c.Table != p.table {
			t.Errorf("chain %s is not in the plan's table", c.Name)
		}
		fmt.Fprintf(&b, "chain %s", c.Name)
		if c.Hooknum != nil {
			fmt.Fprintf(&b, " hook %d priority %d type %s policy %d", *c.Hooknum, *c.Priority, c.Type, *c.Policy)
		}
		b.WriteString("\n")
	}
	for _, r := range p.rules {
		if r.rule.Table != p.table {
			t.Errorf("rule not in the plan's table")
		}
		fmt.Fprintf(&b, "%s:", r.rule.Chain.Name)
		sets := map[uint32]nftSet{}
		for _, s := range r.sets {
			if !s.set.Anonymous || !s.set.Constant || !s.set.Interval || s.set.Table != p.table {
				t.Errorf("set %d: anonymous=%v constant=%v interval=%v", s.set.ID, s.set.Anonymous, s.set.Constant, s.set.Interval)
			}
			sets[s.set.ID] = s
		}
		loaded := ""
		for _, e := range r.rule.Exprs {
			switch e := e.(type) {
			case *expr.Meta:
				loaded = map[expr.MetaKey]string{expr.MetaKeyIIFNAME: "iifname", expr.MetaKeyOIFNAME: "oifname", expr.MetaKeyNFPROTO: "nfproto", expr.MetaKeyL4PROTO: "l4proto"}[e.Key]
				checkReg(t, e.Register)
			case *expr.Payload:
				loaded = payloadName(e)
				checkReg(t, e.DestRegister)
			case *expr.Ct:
				switch {
				case e.Key == expr.CtKeySTATE:
					loaded = "ct state"
				case e.Key == expr.CtKeyDST && e.Direction == 0:
					loaded = "ct original ip daddr"
				default:
					t.Errorf("unexpected ct expression %+v", e)
				}
				checkReg(t, e.Register)
			case *expr.Bitwise:
				if loaded == "ip saddr" || loaded == "ip daddr" {
					ones := 0
					for _, m := range e.Mask {
						for ; m != 0; m <<= 1 {
							ones++
						}
					}
					loaded = fmt.Sprintf("%s/%d", loaded, ones)
					continue
				}
				if loaded != "ct state" || e.Len != 4 || binary.NativeEndian.Uint32(e.Xor) != 0 {
					t.Errorf("unexpected bitwise on %s: %+v", loaded, e)
				}
				loaded = fmt.Sprintf("ct state & %#x", binary.NativeEndian.Uint32(e.Mask))
			case *expr.Cmp:
				checkReg(t, e.Register)
				op := map[expr.CmpOp]string{expr.CmpOpEq: "==", expr.CmpOpNeq: "!="}[e.Op]
				fmt.Fprintf(&b, " %s %s %s;", loaded, op, renderValue(loaded, e.Data))
			case *expr.Lookup:
				checkReg(t, e.SourceRegister)
				s, ok := sets[e.SetID]
				if !ok || s.set.Name != e.SetName {
					t.Errorf("lookup of set %d %q not made for this rule", e.SetID, e.SetName)
				}
				fmt.Fprintf(&b, " %s in %s {%s};", loaded, s.set.KeyType.Name, renderElems(t, loaded, s.elems))
			case *expr.Verdict:
				v := map[expr.VerdictKind]string{expr.VerdictAccept: "accept", expr.VerdictDrop: "drop", expr.VerdictJump: "jump " + e.Chain}[e.Kind]
				fmt.Fprintf(&b, " %s", v)
			default:
				t.Errorf("unexpected expression %T", e)
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

func checkReg(t *testing.T, reg uint32) {
	t.Helper()
	if reg != 1 {
		t.Errorf("register %d, want 1", reg)
	}
}

func payloadName(p *expr.Payload) string {
	type k struct {
		base     expr.PayloadBase
		off, len uint32
	}
	name, ok := map[k]string{
		{expr.PayloadBaseNetworkHeader, 12, 4}:  "ip saddr",
		{expr.PayloadBaseNetworkHeader, 16, 4}:  "ip daddr",
		{expr.PayloadBaseNetworkHeader, 8, 16}:  "ip6 saddr",
		{expr.PayloadBaseNetworkHeader, 24, 16}: "ip6 daddr",
		{expr.PayloadBaseTransportHeader, 2, 2}: "th dport",
		{expr.PayloadBaseTransportHeader, 0, 1}: "th type",
	}[k{p.Base, p.Offset, p.Len}]
	if !ok {
		return fmt.Sprintf("payload %d+%d/%d", p.Base, p.Offset, p.Len)
	}
	return name
}

func renderValue(loaded string, data []byte) string {
	switch {
	case loaded == "iifname" || loaded == "oifname":
		return fmt.Sprintf("%q(%d bytes)", strings.TrimRight(string(data), "\x00"), len(data))
	case loaded == "nfproto":
		return map[byte]string{2: "ipv4", 10: "ipv6"}[data[0]]
	case loaded == "l4proto":
		return map[byte]string{1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6"}[data[0]]
	case strings.HasPrefix(loaded, "ip") || loaded == "ct original ip daddr":
		a, _ := netip.AddrFromSlice(data)
		return a.String()
	case loaded == "th dport":
		return fmt.Sprint(binary.BigEndian.Uint16(data))
	case loaded == "th type":
		return fmt.Sprint(data[0])
	case strings.HasPrefix(loaded, "ct state"):
		return fmt.Sprint(binary.NativeEndian.Uint32(data))
	}
	return fmt.Sprintf("%x", data)
}

// renderElems decodes interval set elements: an interval-end marker at zero unless the
// first range starts there, then start and exclusive-end pairs.
func renderElems(t *testing.T, loaded string, elems []nftables.SetElement) string {
	t.Helper()
	var parts []string
	zero := strings.Repeat("00", len(elems[0].Key))
	if fmt.Sprintf("%x", elems[0].Key) == zero && elems[0].IntervalEnd {
		elems = elems[1:]
	} else if fmt.Sprintf("%x", elems[0].Key) != zero {
		t.Errorf("interval set does not start with an end marker at zero")
	}
	for i := 0; i < len(elems); i++ {
		if elems[i].IntervalEnd {
			t.Fatalf("element %d: interval end without a start", i)
		}
		start := renderValue(loaded, elems[i].Key)
		if i+1 == len(elems) {
			parts = append(parts, start+"-max")
			continue
		}
		if !elems[i+1].IntervalEnd {
			t.Fatalf("element %d: start without an end", i)
		}
		last := decrement(elems[i+1].Key)
		i++
		if end := renderValue(loaded, last); end != start {
			start += "-" + end
		}
		parts = append(parts, start)
	}
	return strings.Join(parts, ", ")
}

func decrement(b []byte) []byte {
	out := append([]byte(nil), b...)
	for i := len(out) - 1; i >= 0; i-- {
		out[i]--
		if out[i] != 0xff {
			break
		}
	}
	return out
}

func TestNFTRuleset(t *testing.T) {
	v4 := netip.MustParseAddr("100.64.0.9")
	v6 := netip.MustParseAddr("fd7a::9")
	head := `table inet weft
chain input hook 1 priority 0 type filter policy 1
chain forward hook 2 priority 0 type filter policy 1
chain tunnel_in
chain tunnel_fwd
input: iifname == "wt0"(16 bytes); jump tunnel_in
forward: iifname == "wt0"(16 bytes); jump tunnel_fwd
tunnel_in: ct state & 0x6 != 0; accept
tunnel_in: ct state & 0x1 != 0; drop
`
	tests := []struct {
		name   string
		self   netip.Addr
		filter wire.PacketFilter
		fwd    Forwarding
		want   string
	}{{
		name:   "deny all",
		self:   v4,
		filter: wire.PacketFilter{},
		want: head + `tunnel_fwd: ct state & 0x6 != 0; accept
tunnel_in: drop
tunnel_fwd: drop
`,
	}, {
		name:   "default allow",
		self:   v4,
		filter: wire.PacketFilter{DefaultAllow: true},
		want: head + `tunnel_fwd: ct state & 0x6 != 0; accept
`,
	}, {
		name: "rules",
		self: v4,
		filter: wire.PacketFilter{Rules: []wire.FilterRule{
			{Sources: prefixes("100.64.0.1/32"), Proto: "tcp", Ports: []wire.PortRange{{First: 22, Last: 22}}},
			{Sources: prefixes("100.64.0.3/32", "100.64.0.1/32", "100.64.0.2/32", "0.0.0.0/32"), Proto: "udp",
				Ports: []wire.PortRange{{First: 60000, Last: 65535}, {First: 1, Last: 10}, {First: 5, Last: 11}}},
			{Sources: prefixes("100.64.0.1/32", "100.64.0.255/32", "fd00::1/128"), Proto: "icmp"},
			{Sources: prefixes("255.255.255.255/32", "10.1.2.3/8"), Proto: "*"},
			{Sources: prefixes("100.64.0.5/32"), Proto: "tcp"},
			{Sources: prefixes("fd00::1/128"), Proto: "udp"},
		}},
		want: head + `tunnel_in: nfproto == ipv4; ip saddr == 100.64.0.1; ip daddr == 100.64.0.9; l4proto == tcp; th dport == 22; accept
tunnel_in: nfproto == ipv4; ip saddr in ipv4_addr {0.0.0.0, 100.64.0.1-100.64.0.3}; ip daddr == 100.64.0.9; l4proto == udp; th dport in inet_service {1-11, 60000-max}; accept
tunnel_in: nfproto == ipv4; ip saddr in ipv4_addr {100.64.0.1, 100.64.0.255}; ip daddr == 100.64.0.9; l4proto == icmp; th type == 8; accept
tunnel_in: nfproto == ipv4; ip saddr in ipv4_addr {10.0.0.0-10.255.255.255, 255.255.255.255-max}; ip daddr == 100.64.0.9; accept
tunnel_in: nfproto == ipv4; ip saddr == 100.64.0.5; ip daddr == 100.64.0.9; l4proto == tcp; accept
tunnel_fwd: ct state & 0x6 != 0; accept
tunnel_in: drop
tunnel_fwd: drop
`,
	}, {
		name: "ipv6",
		self: v6,
		filter: wire.PacketFilter{Rules: []wire.FilterRule{
			{Sources: prefixes("fd7a::1/128", "fd7a::2/127", "100.64.0.1/32"), Proto: "icmp"},
			{Sources: prefixes("fd7a::1/128"), Proto: "tcp", Ports: []wire.PortRange{{First: 80, Last: 81}}},
		}},
		want: head + `tunnel_in: nfproto == ipv6; ip6 saddr in ipv6_addr {fd7a::1-fd7a::3}; ip6 daddr == fd7a::9; l4proto == icmpv6; th type == 128; accept
tunnel_in: nfproto == ipv6; ip6 saddr == fd7a::1; ip6 daddr == fd7a::9; l4proto == tcp; th dport in inet_service {80-81}; accept
tunnel_fwd: ct state & 0x6 != 0; accept
tunnel_in: drop
tunnel_fwd: drop
`,
	}, {
		// A gateway lets through what its gateway table governs, and still drops the rest.
		name:   "gateway under deny",
		self:   v4,
		filter: wire.PacketFilter{},
		fwd: Forwarding{Mesh: netip.MustParsePrefix("100.64.0.0/10"), Routes: prefixes("192.168.1.0/24", "10.0.0.0/8"),
			Virtual: []netip.Addr{netip.MustParseAddr("100.64.0.20"), netip.MustParseAddr("100.64.0.21")}},
		want: head + `tunnel_fwd: ct state & 0x6 != 0; accept
tunnel_fwd: nfproto == ipv4; oifname != "wt0"(16 bytes); ip saddr/10 == 100.64.0.0; ip daddr in ipv4_addr {10.0.0.0-10.255.255.255, 192.168.1.0-192.168.1.255}; accept
tunnel_fwd: nfproto == ipv4; ct original ip daddr == 100.64.0.20; accept
tunnel_fwd: nfproto == ipv4; ct original ip daddr == 100.64.0.21; accept
tunnel_in: drop
tunnel_fwd: drop
`,
	}, {
		name:   "exit node",
		self:   v4,
		filter: wire.PacketFilter{DefaultAllow: true},
		fwd:    Forwarding{Mesh: netip.MustParsePrefix("100.64.0.0/10"), Routes: prefixes("0.0.0.0/0")},
		want: head + `tunnel_fwd: ct state & 0x6 != 0; accept
tunnel_fwd: nfproto == ipv4; oifname != "wt0"(16 bytes); ip saddr/10 == 100.64.0.0; accept
`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fwd, err := checkForwarding(tt.fwd)
			if err != nil {
				t.Fatal(err)
			}
			plan, err := nftRuleset("weft", "wt0", tt.self, tt.filter, fwd)
			if err != nil {
				t.Fatal(err)
			}
			if got := renderPlan(t, plan); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestNFTRulesetRefusesBadInput(t *testing.T) {
	self := netip.MustParseAddr("100.64.0.9")
	ok := wire.PacketFilter{}
	for _, tt := range []struct {
		name   string
		iface  string
		self   netip.Addr
		filter wire.PacketFilter
	}{
		{"empty iface", "", self, ok},
		{"long iface", "abcdefghijklmnop", self, ok},
		{"quote in iface", `wt"0`, self, ok},
		{"no self", "wt0", netip.Addr{}, ok},
		{"unknown proto", "wt0", self, wire.PacketFilter{Rules: []wire.FilterRule{{Sources: prefixes("1.2.3.4/32"), Proto: "gre"}}}},
		{"port zero", "wt0", self, wire.PacketFilter{Rules: []wire.FilterRule{{Sources: prefixes("1.2.3.4/32"), Proto: "tcp", Ports: []wire.PortRange{{First: 0, Last: 5}}}}}},
		{"reversed range", "wt0", self, wire.PacketFilter{Rules: []wire.FilterRule{{Sources: prefixes("1.2.3.4/32"), Proto: "tcp", Ports: []wire.PortRange{{First: 9, Last: 5}}}}}},
		{"ports for icmp", "wt0", self, wire.PacketFilter{Rules: []wire.FilterRule{{Sources: prefixes("1.2.3.4/32"), Proto: "icmp", Ports: []wire.PortRange{{First: 8, Last: 8}}}}}},
		{"no sources", "wt0", self, wire.PacketFilter{Rules: []wire.FilterRule{{Proto: "tcp"}}}},
		{"allow with rules", "wt0", self, wire.PacketFilter{DefaultAllow: true, Rules: []wire.FilterRule{{Sources: prefixes("1.2.3.4/32"), Proto: "*"}}}},
	} {
		if _, err := nftRuleset("weft", tt.iface, tt.self, tt.filter, Forwarding{}); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
}
