package platform

import (
	"encoding/binary"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/weftmesh/weft/wire"
)

// The gateway's nftables table, built without I/O so it can be tested: one function per
// rule. For a tunnel TUN, mesh range MESH, routes ROUTES and virtual devices SEC_i ↔ LAN_i:
//
//	table ip weft-gw {
//		chain vdev_filter_in {  type filter hook prerouting priority mangle    # before DNAT
//			iifname TUN ip daddr SEC_i jump vdev_SEC_i     # each vdev whose filter is not allow-all
//		}
//		chain vdev_filter_out { type filter hook output priority mangle        # the gateway's own flows
//			ip daddr SEC_i jump vdev_SEC_i
//		}
//		chain vdev_SEC_i {                                  # its PacketFilter, as the firewall's tunnel_in
//			ct state established,related accept
//			ct state invalid drop
//			ip saddr SOURCES ip daddr SEC_i tcp dport PORTS accept
//			drop
//		}
//		chain dnat_in {  type nat hook prerouting priority dstnat
//			iifname TUN ip daddr SEC_i dnat to LAN_i
//		}
//		chain dnat_out { type nat hook output priority dstnat
//			ip daddr SEC_i dnat to LAN_i
//		}
//		chain forward {  type filter hook forward priority filter
//			ct state established,related accept
//			iifname TUN ct status dnat accept                # to a vdev (or a service DNATed on this host)
//			iifname TUN oifname != TUN ip saddr MESH ip daddr ROUTES accept
//			iifname TUN drop                                  # a gateway forwards only what it serves
//			oifname TUN ip saddr { LAN_i… } ip daddr MESH accept
//			oifname TUN drop                                  # only registered LAN devices enter the mesh
//		}
//		chain postrouting { type nat hook postrouting priority srcnat
//			oifname TUN ip saddr LAN_i ip daddr MESH snat to SEC_i
//			oifname TUN accept                                # what stays in the mesh is never translated
//			ip saddr MESH ct original ip daddr SEC_i masquerade   # the LAN device replies to us
//			ip saddr MESH ip daddr ROUTES masquerade
//		}
//	}
//
// Chains without rules are left out. The device firewall's table (inet weft) is separate:
// both see every packet, and a drop in either is final.

const (
	gwChainVdevFilterIn  = "vdev_filter_in"
	gwChainVdevFilterOut = "vdev_filter_out"
	gwChainDNATIn        = "dnat_in"
	gwChainDNATOut       = "dnat_out"
	gwChainForward       = "forward"
	gwChainPostrouting   = "postrouting"

	// ctStatusDstNAT is IPS_DST_NAT: the connection's destination is translated.
	ctStatusDstNAT = 1 << 5
)

// nftGatewayRuleset builds the gateway's table for a checked configuration.
func nftGatewayRuleset(tableName string, cfg GatewayConfig) *nftPlan {
	b := &nftBuilder{plan: &nftPlan{table: &nftables.Table{Family: nftables.TableFamilyIPv4, Name: tableName}}}
	tun, mesh := cfg.TunnelIface, cfg.MeshPrefix
	accept := nftables.ChainPolicyAccept
	base := func(name string, hook *nftables.ChainHook, prio *nftables.ChainPriority, typ nftables.ChainType) *nftables.Chain {
		return b.chain(&nftables.Chain{Name: name, Hooknum: hook, Priority: prio, Type: typ, Policy: &accept})
	}

	var filtered []VirtualDevice
	for _, v := range cfg.Virtual {
		if !v.Filter.DefaultAllow {
			filtered = append(filtered, v)
		}
	}
	if len(filtered) > 0 {
		in := base(gwChainVdevFilterIn, nftables.ChainHookPrerouting, nftables.ChainPriorityMangle, nftables.ChainTypeFilter)
		out := base(gwChainVdevFilterOut, nftables.ChainHookOutput, nftables.ChainPriorityMangle, nftables.ChainTypeFilter)
		for _, v := range filtered {
			chain := b.chain(&nftables.Chain{Name: vdevChain(v.SecureIP)})
			b.add(in, gwJumpToVdev(tun, v.SecureIP, chain.Name))
			b.add(out, gwJumpToVdev("", v.SecureIP, chain.Name))
			b.vdevFilter(chain, v.SecureIP, v.Filter)
		}
	}
	if len(cfg.Virtual) > 0 {
		in := base(gwChainDNATIn, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest, nftables.ChainTypeNAT)
		out := base(gwChainDNATOut, nftables.ChainHookOutput, nftables.ChainPriorityNATDest, nftables.ChainTypeNAT)
		for _, v := range cfg.Virtual {
			b.add(in, gwDNAT(tun, v.SecureIP, v.LANIP))
			b.add(out, gwDNAT("", v.SecureIP, v.LANIP))
		}
	}

	fwd := base(gwChainForward, nftables.ChainHookForward, nftables.ChainPriorityFilter, nftables.ChainTypeFilter)
	b.add(fwd, nftAcceptEstablished())
	b.add(fwd, gwAcceptDNATed(tun))
	if len(cfg.Routes) > 0 {
		b.add(fwd, b.gwAcceptToRoutes(tun, mesh, cfg.Routes))
	}
	b.add(fwd, gwDropFrom(tun))
	if len(cfg.Virtual) > 0 {
		b.add(fwd, b.gwAcceptFromLAN(tun, mesh, cfg.lanIPs()))
	}
	b.add(fwd, gwDropTo(tun))

	post := base(gwChainPostrouting, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource, nftables.ChainTypeNAT)
	for _, v := range cfg.Virtual {
		b.add(post, gwSNATToMesh(tun, mesh, v.LANIP, v.SecureIP))
	}
	b.add(post, gwKeepInMesh(tun))
	for _, v := range cfg.Virtual {
		b.add(post, gwMasqueradeToVdev(mesh, v.SecureIP))
	}
	if len(cfg.Routes) > 0 {
		b.add(post, b.gwMasqueradeToRoutes(mesh, cfg.Routes))
	}
	return b.plan
}

// vdevChain names a virtual device's filter chain after its address.
func vdevChain(secure netip.Addr) string {
	return "vdev_" + strings.ReplaceAll(secure.String(), ".", "_")
}

// vdevFilter fills a virtual device's chain with its PacketFilter, exactly as the
// firewall's tunnel_in holds a device's own: the device is secure, its address.
func (b *nftBuilder) vdevFilter(c *nftables.Chain, secure netip.Addr, filter wire.PacketFilter) {
	b.add(c, nftAcceptEstablished())
	b.add(c, nftDropInvalid())
	for _, r := range filter.Rules {
		if exprs := b.nftAllow(secure, r); exprs != nil {
			b.add(c, withoutNFProto(exprs))
		}
	}
	b.add(c, nftDrop())
}

// withoutNFProto drops nftAllow's leading "meta nfproto ipv4": every packet in an ip
// table is IPv4, and nft (1.0.6) cannot list the rule with the match there.
func withoutNFProto(exprs []expr.Any) []expr.Any {
	if m, ok := exprs[0].(*expr.Meta); ok && m.Key == expr.MetaKeyNFPROTO {
		return exprs[2:]
	}
	return exprs
}

// gwJumpToVdev: [iifname TUN] ip daddr SECURE jump CHAIN.
func gwJumpToVdev(tun string, secure netip.Addr, chain string) []expr.Any {
	exprs := append(ifaceIs(expr.MetaKeyIIFNAME, tun, true), ipAddrIs(ipDaddr, secure)...)
	return append(exprs, &expr.Verdict{Kind: expr.VerdictJump, Chain: chain})
}

// gwDNAT: [iifname TUN] ip daddr SECURE dnat to LAN.
func gwDNAT(tun string, secure, lan netip.Addr) []expr.Any {
	exprs := append(ifaceIs(expr.MetaKeyIIFNAME, tun, true), ipAddrIs(ipDaddr, secure)...)
	return append(exprs,
		&expr.Immediate{Register: 1, Data: lan.AsSlice()},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1},
	)
}

// gwAcceptDNATed: iifname TUN ct status dnat accept. Besides virtual devices this passes
// what the host itself DNATs (a container's published port): traffic addressed to this
// device, which its firewall rules on, not routing for the mesh.
func gwAcceptDNATed(tun string) []expr.Any {
	exprs := ifaceIs(expr.MetaKeyIIFNAME, tun, true)
	exprs = append(exprs,
		&expr.Ct{Key: expr.CtKeySTATUS, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binary.NativeEndian.AppendUint32(nil, ctStatusDstNAT), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	)
	return append(exprs, &expr.Verdict{Kind: expr.VerdictAccept})
}

// gwAcceptToRoutes: iifname TUN oifname != TUN ip saddr MESH ip daddr ROUTES accept.
func (b *nftBuilder) gwAcceptToRoutes(tun string, mesh netip.Prefix, routes []netip.Prefix) []expr.Any {
	exprs := ifaceIs(expr.MetaKeyIIFNAME, tun, true)
	exprs = append(exprs, ifaceIs(expr.MetaKeyOIFNAME, tun, false)...)
	exprs = append(exprs, ipInPrefix(ipSaddr, mesh)...)
	exprs = append(exprs, b.ipInPrefixes(ipDaddr, routes)...)
	return append(exprs, &expr.Verdict{Kind: expr.VerdictAccept})
}

// gwDropFrom: iifname TUN drop.
func gwDropFrom(tun string) []expr.Any {
	return append(ifaceIs(expr.MetaKeyIIFNAME, tun, true), &expr.Verdict{Kind: expr.VerdictDrop})
}

// gwAcceptFromLAN: oifname TUN ip saddr { LAN… } ip daddr MESH accept.
func (b *nftBuilder) gwAcceptFromLAN(tun string, mesh netip.Prefix, lan []netip.Addr) []expr.Any {
	exprs := ifaceIs(expr.MetaKeyOIFNAME, tun, true)
	exprs = append(exprs, b.ipInAddrs(ipSaddr, lan)...)
	exprs = append(exprs, ipInPrefix(ipDaddr, mesh)...)
	return append(exprs, &expr.Verdict{Kind: expr.VerdictAccept})
}

// gwDropTo: oifname TUN drop.
func gwDropTo(tun string) []expr.Any {
	return append(ifaceIs(expr.MetaKeyOIFNAME, tun, true), &expr.Verdict{Kind: expr.VerdictDrop})
}

// gwSNATToMesh: oifname TUN ip saddr LAN ip daddr MESH snat to SECURE.
func gwSNATToMesh(tun string, mesh netip.Prefix, lan, secure netip.Addr) []expr.Any {
	exprs := ifaceIs(expr.MetaKeyOIFNAME, tun, true)
	exprs = append(exprs, ipAddrIs(ipSaddr, lan)...)
	exprs = append(exprs, ipInPrefix(ipDaddr, mesh)...)
	return append(exprs,
		&expr.Immediate{Register: 1, Data: secure.AsSlice()},
		&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1},
	)
}

// gwKeepInMesh: oifname TUN accept, ending the chain untranslated.
func gwKeepInMesh(tun string) []expr.Any {
	return append(ifaceIs(expr.MetaKeyOIFNAME, tun, true), &expr.Verdict{Kind: expr.VerdictAccept})
}

// gwMasqueradeToVdev: ip saddr MESH ct original ip daddr SECURE masquerade. One rule per
// device: nft (1.0.6) cannot list a set lookup of a conntrack address.
func gwMasqueradeToVdev(mesh netip.Prefix, secure netip.Addr) []expr.Any {
	exprs := ipInPrefix(ipSaddr, mesh)
	exprs = append(exprs,
		&expr.Ct{Key: expr.CtKeyDST, Register: 1, Direction: 0},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: secure.AsSlice()},
	)
	return append(exprs, &expr.Masq{})
}

// gwMasqueradeToRoutes: ip saddr MESH ip daddr ROUTES masquerade.
func (b *nftBuilder) gwMasqueradeToRoutes(mesh netip.Prefix, routes []netip.Prefix) []expr.Any {
	exprs := ipInPrefix(ipSaddr, mesh)
	exprs = append(exprs, b.ipInPrefixes(ipDaddr, routes)...)
	return append(exprs, &expr.Masq{})
}

// ifaceIs: iifname/oifname ==/!= NAME; nothing for an empty name (the output hook has no
// input interface).
func ifaceIs(key expr.MetaKey, name string, equal bool) []expr.Any {
	if name == "" {
		return nil
	}
	op := expr.CmpOpEq
	if !equal {
		op = expr.CmpOpNeq
	}
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: ifname(name)},
	}
}

// IPv4 header offsets of the addresses.
const (
	ipSaddr = 12
	ipDaddr = 16
)

// ipAddrIs: ip saddr/daddr == ADDR.
func ipAddrIs(offset uint32, a netip.Addr) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a.AsSlice()},
	}
}

// ipInPrefix: ip saddr/daddr PREFIX, as nft writes it: masked, then compared; nothing for
// 0.0.0.0/0.
func ipInPrefix(offset uint32, p netip.Prefix) []expr.Any {
	if p.Bits() == 0 {
		return nil
	}
	exprs := []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4}}
	if p.Bits() < 32 {
		var mask [4]byte
		for i := range p.Bits() {
			mask[i/8] |= 0x80 >> (i % 8)
		}
		exprs = append(exprs, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask[:], Xor: make([]byte, 4)})
	}
	return append(exprs, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()})
}

// ipInPrefixes: ip saddr/daddr in prefixes: one prefix as ipInPrefix, several as a lookup
// in an interval set.
func (b *nftBuilder) ipInPrefixes(offset uint32, prefixes []netip.Prefix) []expr.Any {
	if len(prefixes) == 1 {
		return ipInPrefix(offset, prefixes[0])
	}
	ranges := addrRanges(prefixes)
	if len(ranges) == 1 && ranges[0].first == netip.IPv4Unspecified() && ranges[0].last == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return nil // everything
	}
	return append([]expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4}},
		b.rangeLookup(ranges))
}

// ipInAddrs: ip saddr/daddr in addrs.
func (b *nftBuilder) ipInAddrs(offset uint32, addrs []netip.Addr) []expr.Any {
	return append([]expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4}},
		b.matchAddrs(addrs)...)
}

// matchAddrs compares register 1, loaded with an IPv4 address, with sorted addrs.
func (b *nftBuilder) matchAddrs(addrs []netip.Addr) []expr.Any {
	if len(addrs) == 1 {
		return []expr.Any{&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addrs[0].AsSlice()}}
	}
	var ps []netip.Prefix
	for _, a := range addrs {
		ps = append(ps, netip.PrefixFrom(a, 32))
	}
	return []expr.Any{b.rangeLookup(addrRanges(ps))}
}

// rangeLookup matches register 1 against sorted, disjoint IPv4 ranges.
func (b *nftBuilder) rangeLookup(ranges []addrRange) expr.Any {
	var elems []rangeKey
	for _, r := range ranges {
		var end []byte
		if next := r.last.Next(); next.IsValid() {
			end = next.AsSlice()
		}
		elems = append(elems, rangeKey{r.first.AsSlice(), end})
	}
	return b.lookup(nftables.TypeIPAddr, elems)
}
