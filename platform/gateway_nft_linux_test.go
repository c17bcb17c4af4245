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

// renderGatewayPlan decodes a gateway plan back into nft-like text, independently of the
// builder, so the tests compare the expressions themselves (offsets, masks, byte orders,
// set layouts, NAT registers).
func renderGatewayPlan(t *testing.T, p *nftPlan) string {
	t.Helper()
	var b strings.Builder
	if p.table.Family != nftables.TableFamilyIPv4 {
		t.Errorf("table family %d, want ip", p.table.Family)
	}
	fmt.Fprintf(&b, "table ip %s\n", p.table.Name)
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
		loaded, imm := "", ""
		for _, e := range r.rule.Exprs {
			switch e := e.(type) {
			case *expr.Meta:
				loaded = map[expr.MetaKey]string{expr.MetaKeyIIFNAME: "iifname", expr.MetaKeyOIFNAME: "oifname",
					expr.MetaKeyNFPROTO: "nfproto", expr.MetaKeyL4PROTO: "l4proto"}[e.Key]
				checkReg(t, e.Register)
			case *expr.Payload:
				loaded = payloadName(e)
				checkReg(t, e.DestRegister)
			case *expr.Ct:
				checkReg(t, e.Register)
				loaded = map[expr.CtKey]string{expr.CtKeySTATE: "ct state", expr.CtKeySTATUS: "ct status"}[e.Key]
				if e.Key == expr.CtKeyDST {
					loaded = fmt.Sprintf("ct dir %d ip daddr", e.Direction)
				}
			case *expr.Bitwise:
				if e.Len != 4 || binary.NativeEndian.Uint32(e.Xor) != 0 {
					t.Errorf("unexpected bitwise on %s: %+v", loaded, e)
				}
				if strings.HasPrefix(loaded, "ct ") {
					loaded = fmt.Sprintf("%s & %#x", loaded, binary.NativeEndian.Uint32(e.Mask))
				} else {
					mask, _ := netip.AddrFromSlice(e.Mask)
					loaded = fmt.Sprintf("%s & %s", loaded, mask)
				}
			case *expr.Cmp:
				checkReg(t, e.Register)
				op := map[expr.CmpOp]string{expr.CmpOpEq: "==", expr.CmpOpNeq: "!="}[e.Op]
				fmt.Fprintf(&b, " %s %s %s;", loaded, op, gwRenderValue(loaded, e.Data))
			case *expr.Lookup:
				checkReg(t, e.SourceRegister)
				s, ok := sets[e.SetID]
				if !ok || s.set.Name != e.SetName {
					t.Errorf("lookup of set %d %q not made for this rule", e.SetID, e.SetName)
				}
				fmt.Fprintf(&b, " %s in %s {%s};", loaded, s.set.KeyType.Name, renderElems(t, loaded, s.elems))
			case *expr.Immediate:
				checkReg(t, e.Register)
				a, _ := netip.AddrFromSlice(e.Data)
				imm = a.String()
			case *expr.NAT:
				if e.RegAddrMin != 1 || e.Family != 2 || imm == "" {
					t.Errorf("NAT without its address in register 1: %+v", e)
				}
				fmt.Fprintf(&b, " %s to %s", map[expr.NATType]string{expr.NATTypeDestNAT: "dnat", expr.NATTypeSourceNAT: "snat"}[e.Type], imm)
			case *expr.Masq:
				b.WriteString(" masquerade")
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

func gwRenderValue(loaded string, data []byte) string {
	switch {
	case loaded == "oifname":
		return renderValue("iifname", data)
	case strings.HasPrefix(loaded, "ct dir"):
		a, _ := netip.AddrFromSlice(data)
		return a.String()
	case strings.HasPrefix(loaded, "ct "):
		return fmt.Sprint(binary.NativeEndian.Uint32(data))
	}
	return renderValue(loaded, data)
}

func TestNFTGatewayRuleset(t *testing.T) {
	base := GatewayConfig{
		TunnelIface: "wt0",
		MeshPrefix:  netip.MustParsePrefix("100.64.0.0/10"),
		Self:        netip.MustParseAddr("100.64.0.2"),
	}
	cam := VirtualDevice{SecureIP: netip.MustParseAddr("100.64.0.99"), LANIP: netip.MustParseAddr("192.168.1.50"),
		Filter: wire.PacketFilter{Rules: []wire.FilterRule{
			{Sources: prefixes("100.64.0.1/32"), Proto: wire.ProtoTCP, Ports: []wire.PortRange{{First: 554, Last: 554}}},
			{Sources: prefixes("100.64.0.1/32", "100.64.0.7/32", "fd7a::1/128"), Proto: wire.ProtoICMP},
		}}}
	printer := VirtualDevice{SecureIP: netip.MustParseAddr("100.64.0.98"), LANIP: netip.MustParseAddr("192.168.1.60"),
		Filter: wire.PacketFilter{DefaultAllow: true}}

	tests := []struct {
		name string
		cfg  func(GatewayConfig) GatewayConfig
		want string
	}{{
		name: "subnet routes",
		cfg: func(c GatewayConfig) GatewayConfig {
			c.Routes = prefixes("198.51.100.0/24", "10.1.0.0/16", "10.0.0.0/8", "::/0", "192.0.2.7/32")
			return c
		},
		want: `table ip weft-gw
chain forward hook 2 priority 0 type filter policy 1
chain postrouting hook 4 priority 100 type nat policy 1
forward: ct state & 0x6 != 0; accept
forward: iifname == "wt0"(16 bytes); ct status & 0x20 != 0; accept
forward: iifname == "wt0"(16 bytes); oifname != "wt0"(16 bytes); ip saddr & 255.192.0.0 == 100.64.0.0; ip daddr in ipv4_addr {10.0.0.0-10.255.255.255, 192.0.2.7, 198.51.100.0-198.51.100.255}; accept
forward: iifname == "wt0"(16 bytes); drop
forward: oifname == "wt0"(16 bytes); drop
postrouting: oifname == "wt0"(16 bytes); accept
postrouting: ip saddr & 255.192.0.0 == 100.64.0.0; ip daddr in ipv4_addr {10.0.0.0-10.255.255.255, 192.0.2.7, 198.51.100.0-198.51.100.255}; masquerade
`,
	}, {
		name: "one route",
		cfg: func(c GatewayConfig) GatewayConfig {
			c.Routes = prefixes("10.9.0.0/16")
			return c
		},
		want: `table ip weft-gw
chain forward hook 2 priority 0 type filter policy 1
chain postrouting hook 4 priority 100 type nat policy 1
forward: ct state & 0x6 != 0; accept
forward: iifname == "wt0"(16 bytes); ct status & 0x20 != 0; accept
forward: iifname == "wt0"(16 bytes); oifname != "wt0"(16 bytes); ip saddr & 255.192.0.0 == 100.64.0.0; ip daddr & 255.255.0.0 == 10.9.0.0; accept
forward: iifname == "wt0"(16 bytes); drop
forward: oifname == "wt0"(16 bytes); drop
postrouting: oifname == "wt0"(16 bytes); accept
postrouting: ip saddr & 255.192.0.0 == 100.64.0.0; ip daddr & 255.255.0.0 == 10.9.0.0; masquerade
`,
	}, {
		name: "exit node",
		cfg: func(c GatewayConfig) GatewayConfig {
			c.Routes = prefixes("0.0.0.0/0", "10.0.0.0/8")
			return c
		},
		want: `table ip weft-gw
chain forward hook 2 priority 0 type filter policy 1
chain postrouting hook 4 priority 100 type nat policy 1
forward: ct state & 0x6 != 0; accept
forward: iifname == "wt0"(16 bytes); ct status & 0x20 != 0; accept
forward: iifname == "wt0"(16 bytes); oifname != "wt0"(16 bytes); ip saddr & 255.192.0.0 == 100.64.0.0; accept
forward: iifname == "wt0"(16 bytes); drop
forward: oifname == "wt0"(16 bytes); drop
postrouting: oifname == "wt0"(16 bytes); accept
postrouting: ip saddr & 255.192.0.0 == 100.64.0.0; masquerade
`,
	}, {
		name: "virtual devices",
		cfg: func(c GatewayConfig) GatewayConfig {
			c.Virtual = []VirtualDevice{cam, printer}
			return c
		},
		want: `table ip weft-gw
chain vdev_filter_in hook 0 priority -150 type filter policy 1
chain vdev_filter_out hook 3 priority -150 type filter policy 1
chain vdev_100_64_0_99
chain dnat_in hook 0 priority -100 type nat policy 1
chain dnat_out hook 3 priority -100 type nat policy 1
chain forward hook 2 priority 0 type filter policy 1
chain postrouting hook 4 priority 100 type nat policy 1
vdev_filter_in: iifname == "wt0"(16 bytes); ip daddr == 100.64.0.99; jump vdev_100_64_0_99
vdev_filter_out: ip daddr == 100.64.0.99; jump vdev_100_64_0_99
vdev_100_64_0_99: ct state & 0x6 != 0; accept
vdev_100_64_0_99: ct state & 0x1 != 0; drop
vdev_100_64_0_99: ip saddr == 100.64.0.1; ip daddr == 100.64.0.99; l4proto == tcp; th dport == 554; accept
vdev_100_64_0_99: ip saddr in ipv4_addr {100.64.0.1, 100.64.0.7}; ip daddr == 100.64.0.99; l4proto == icmp; th type == 8; accept
vdev_100_64_0_99: drop
dnat_in: iifname == "wt0"(16 bytes); ip daddr == 100.64.0.98; dnat to 192.168.1.60
dnat_out: ip daddr == 100.64.0.98; dnat to 192.168.1.60
dnat_in: iifname == "wt0"(16 bytes); ip daddr == 100.64.0.99; dnat to 192.168.1.50
dnat_out: ip daddr == 100.64.0.99; dnat to 192.168.1.50
forward: ct state & 0x6 != 0; accept
forward: iifname == "wt0"(16 bytes); ct status & 0x20 != 0; accept
forward: iifname == "wt0"(16 bytes); drop
forward: oifname == "wt0"(16 bytes); ip saddr in ipv4_addr {192.168.1.50, 192.168.1.60}; ip daddr & 255.192.0.0 == 100.64.0.0; accept
forward: oifname == "wt0"(16 bytes); drop
postrouting: oifname == "wt0"(16 bytes); ip saddr == 192.168.1.60; ip daddr & 255.192.0.0 == 100.64.0.0; snat to 100.64.0.98
postrouting: oifname == "wt0"(16 bytes); ip saddr == 192.168.1.50; ip daddr & 255.192.0.0 == 100.64.0.0; snat to 100.64.0.99
postrouting: oifname == "wt0"(16 bytes); accept
postrouting: ip saddr & 255.192.0.0 == 100.64.0.0; ct dir 0 ip daddr == 100.64.0.98; masquerade
postrouting: ip saddr & 255.192.0.0 == 100.64.0.0; ct dir 0 ip daddr == 100.64.0.99; masquerade
`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := checkGateway(tt.cfg(base))
			if err != nil {
				t.Fatal(err)
			}
			if got := renderGatewayPlan(t, nftGatewayRuleset("weft-gw", cfg)); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestStaleFlow(t *testing.T) {
	a := netip.MustParseAddr
	mesh := netip.MustParsePrefix("100.64.0.0/10")
	cam := VirtualDevice{SecureIP: a("100.64.0.99"), LANIP: a("192.168.1.50")}
	old := GatewayConfig{MeshPrefix: mesh, Routes: prefixes("0.0.0.0/0"), Virtual: []VirtualDevice{cam}}
	keepCam := GatewayConfig{MeshPrefix: mesh, Routes: prefixes("198.51.100.0/24"), Virtual: []VirtualDevice{cam}}
	moved := GatewayConfig{MeshPrefix: mesh, Virtual: []VirtualDevice{{SecureIP: cam.SecureIP, LANIP: a("192.168.1.51")}}}
	type flow struct{ origSrc, origDst, replySrc, replyDst string }
	meshToCam := flow{"100.64.0.1", "100.64.0.99", "192.168.1.50", "192.168.1.2"}
	camToMesh := flow{"192.168.1.50", "100.64.0.1", "100.64.0.1", "100.64.0.99"}
	toServer := flow{"100.64.0.1", "198.51.100.2", "198.51.100.2", "198.51.100.1"}
	toElsewhere := flow{"100.64.0.1", "203.0.113.9", "203.0.113.9", "203.0.113.1"}
	inMesh := flow{"100.64.0.1", "100.64.0.2", "100.64.0.2", "100.64.0.1"} // not translated
	lanOwn := flow{"192.168.1.7", "203.0.113.9", "203.0.113.9", "203.0.113.1"}
	for _, tt := range []struct {
		name      string
		cur       GatewayConfig
		f         flow
		wantStale bool
	}{
		{"camera kept", keepCam, meshToCam, false},
		{"camera kept, its own flow", keepCam, camToMesh, false},
		{"camera removed", GatewayConfig{}, meshToCam, true},
		{"camera removed, its own flow", GatewayConfig{}, camToMesh, true},
		{"camera moved to another LAN address", moved, meshToCam, true},
		{"route still covered", keepCam, toServer, false},
		{"route removed", keepCam, toElsewhere, true},
		{"everything removed", GatewayConfig{}, toServer, true},
		{"mesh flow, never translated", GatewayConfig{}, inMesh, false},
		{"not from the mesh", GatewayConfig{}, lanOwn, false},
	} {
		if got := staleFlow(old, tt.cur, a(tt.f.origSrc), a(tt.f.origDst), a(tt.f.replySrc), a(tt.f.replyDst)); got != tt.wantStale {
			t.Errorf("%s: stale = %v, want %v", tt.name, got, tt.wantStale)
		}
	}
}
