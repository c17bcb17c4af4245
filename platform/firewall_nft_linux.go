package platform

import (
	"encoding/binary"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/weftmesh/weft/wire"
)

// The nftables ruleset, built without I/O so it can be tested: one function per rule.
//
//	table inet weft {
//		chain input   { type filter hook input priority filter; iifname IFACE jump tunnel_in }
//		chain forward { type filter hook forward priority filter; iifname IFACE jump tunnel_fwd }
//		chain tunnel_in {
//			ct state established,related accept
//			ct state invalid drop
//			ip saddr SOURCES ip daddr SELF tcp dport PORTS accept   # one per FilterRule
//			drop                                                     # unless DefaultAllow
//		}
//		chain tunnel_fwd {
//			ct state established,related accept
//			oifname != IFACE ip saddr MESH ip daddr ROUTES accept   # a gateway's routes (Forwarding)
//			ct original ip daddr SEC_i accept                        # each virtual device it hosts
//			drop                                                     # unless DefaultAllow
//		}
//	}
//
// Forwarding from the tunnel is refused under a deny policy, except what this device
// serves as a gateway: that traffic is the gateway table's (ip weft-gw) to judge, which
// forwards only approved routes and applies each virtual device's own filter. No filter
// rule grants a peer anything beyond this device.

const (
	nftChainInput     = "input"
	nftChainForward   = "forward"
	nftChainTunnelIn  = "tunnel_in"
	nftChainTunnelFwd = "tunnel_fwd"
)

// nftPlan is everything Apply sends, in order, in one netlink batch.
type nftPlan struct {
	table  *nftables.Table
	chains []*nftables.Chain
	rules  []nftRule
}

// nftRule is a rule and the anonymous sets it looks up, which must be added before it.
type nftRule struct {
	rule *nftables.Rule
	sets []nftSet
}

type nftSet struct {
	set   *nftables.Set
	elems []nftables.SetElement
}

// nftRuleset builds weft's table for a tunnel interface; fwd has passed checkForwarding.
func nftRuleset(tableName, iface string, self netip.Addr, filter wire.PacketFilter, fwd Forwarding) (*nftPlan, error) {
	if err := checkApply(iface, self, filter); err != nil {
		return nil, err
	}
	b := &nftBuilder{plan: &nftPlan{table: &nftables.Table{Family: nftables.TableFamilyINet, Name: tableName}}}
	accept := nftables.ChainPolicyAccept
	input := b.chain(&nftables.Chain{Name: nftChainInput, Hooknum: nftables.ChainHookInput,
		Priority: nftables.ChainPriorityFilter, Type: nftables.ChainTypeFilter, Policy: &accept})
	forward := b.chain(&nftables.Chain{Name: nftChainForward, Hooknum: nftables.ChainHookForward,
		Priority: nftables.ChainPriorityFilter, Type: nftables.ChainTypeFilter, Policy: &accept})
	tunnelIn := b.chain(&nftables.Chain{Name: nftChainTunnelIn})
	tunnelFwd := b.chain(&nftables.Chain{Name: nftChainTunnelFwd})

	b.add(input, nftJumpFromTunnel(iface, nftChainTunnelIn))
	b.add(forward, nftJumpFromTunnel(iface, nftChainTunnelFwd))

	b.add(tunnelIn, nftAcceptEstablished())
	b.add(tunnelIn, nftDropInvalid())
	for _, r := range filter.Rules {
		if exprs := b.nftAllow(self, r); exprs != nil {
			b.add(tunnelIn, exprs)
		}
	}
	b.add(tunnelFwd, nftAcceptEstablished())
	if len(fwd.Routes) > 0 {
		b.add(tunnelFwd, b.nftForwardToRoutes(iface, fwd.Mesh, fwd.Routes))
	}
	for _, v := range fwd.Virtual {
		b.add(tunnelFwd, nftForwardToVdev(v))
	}
	if !filter.DefaultAllow {
		b.add(tunnelIn, nftDrop())
		b.add(tunnelFwd, nftDrop())
	}
	return b.plan, nil
}

type nftBuilder struct {
	plan    *nftPlan
	pending []nftSet // sets made for the rule being built
	setID   uint32   // numbering our own sets keeps the library's global counter out
}

func (b *nftBuilder) chain(c *nftables.Chain) *nftables.Chain {
	c.Table = b.plan.table
	b.plan.chains = append(b.plan.chains, c)
	return c
}

func (b *nftBuilder) add(c *nftables.Chain, exprs []expr.Any) {
	b.plan.rules = append(b.plan.rules, nftRule{
		rule: &nftables.Rule{Table: b.plan.table, Chain: c, Exprs: exprs},
		sets: b.pending,
	})
	b.pending = nil
}

// nftJumpFromTunnel: iifname IFACE jump CHAIN.
func nftJumpFromTunnel(iface, chain string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(iface)},
		&expr.Verdict{Kind: expr.VerdictJump, Chain: chain},
	}
}

// nftAcceptEstablished: ct state established,related accept.
func nftAcceptEstablished() []expr.Any {
	return append(ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), &expr.Verdict{Kind: expr.VerdictAccept})
}

// nftDropInvalid: ct state invalid drop.
func nftDropInvalid() []expr.Any {
	return append(ctState(expr.CtStateBitINVALID), &expr.Verdict{Kind: expr.VerdictDrop})
}

// nftForwardToRoutes: oifname != IFACE ip saddr MESH ip daddr ROUTES accept.
func (b *nftBuilder) nftForwardToRoutes(iface string, mesh netip.Prefix, routes []netip.Prefix) []expr.Any {
	exprs := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
	}
	exprs = append(exprs, ifaceIs(expr.MetaKeyOIFNAME, iface, false)...)
	exprs = append(exprs, ipInPrefix(ipSaddr, mesh)...)
	exprs = append(exprs, b.ipInPrefixes(ipDaddr, routes)...)
	return append(exprs, &expr.Verdict{Kind: expr.VerdictAccept})
}

// nftForwardToVdev: ct original ip daddr SECURE accept: a flow the gateway table DNATed
// to the virtual device with that mesh address, and judged by its filter already.
func nftForwardToVdev(secure netip.Addr) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Ct{Key: expr.CtKeyDST, Register: 1, Direction: 0},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: secure.AsSlice()},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
}

// nftDrop: drop.
func nftDrop() []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}
}

// nftAllow: [ip|ip6] saddr SOURCES daddr SELF <proto match> accept, or nil when none of
// the rule's sources is of self's family.
func (b *nftBuilder) nftAllow(self netip.Addr, r wire.FilterRule) []expr.Any {
	sources := familySources(self, r.Sources)
	if len(sources) == 0 {
		return nil
	}
	nfproto, saddrOff, daddrOff, addrLen := byte(unix.NFPROTO_IPV4), uint32(12), uint32(16), uint32(4)
	keyType := nftables.TypeIPAddr
	if self.Is6() {
		nfproto, saddrOff, daddrOff, addrLen = unix.NFPROTO_IPV6, 8, 24, 16
		keyType = nftables.TypeIP6Addr
	}
	exprs := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: saddrOff, Len: addrLen},
	}
	ranges := addrRanges(sources)
	if len(ranges) == 1 && ranges[0].first == ranges[0].last {
		exprs = append(exprs, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ranges[0].first.AsSlice()})
	} else {
		var elems []rangeKey
		for _, ar := range ranges {
			end := ar.last.Next()
			var endKey []byte
			if end.IsValid() {
				endKey = end.AsSlice()
			}
			elems = append(elems, rangeKey{ar.first.AsSlice(), endKey})
		}
		exprs = append(exprs, b.lookup(keyType, elems))
	}
	exprs = append(exprs,
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: daddrOff, Len: addrLen},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: self.AsSlice()},
	)
	switch r.Proto {
	case wire.ProtoTCP, wire.ProtoUDP:
		proto := byte(unix.IPPROTO_TCP)
		if r.Proto == wire.ProtoUDP {
			proto = unix.IPPROTO_UDP
		}
		exprs = append(exprs,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		)
		if ports := mergePorts(r.Ports); len(ports) > 0 {
			exprs = append(exprs, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
			if len(ports) == 1 && ports[0].First == ports[0].Last {
				exprs = append(exprs, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(ports[0].First)})
			} else {
				var elems []rangeKey
				for _, pr := range ports {
					var endKey []byte
					if pr.Last < 65535 {
						endKey = be16(pr.Last + 1)
					}
					elems = append(elems, rangeKey{be16(pr.First), endKey})
				}
				exprs = append(exprs, b.lookup(nftables.TypeInetService, elems))
			}
		}
	case wire.ProtoICMP:
		proto, echoRequest := byte(unix.IPPROTO_ICMP), byte(8)
		if self.Is6() {
			proto, echoRequest = unix.IPPROTO_ICMPV6, 128
		}
		exprs = append(exprs,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{echoRequest}},
		)
	}
	return append(exprs, &expr.Verdict{Kind: expr.VerdictAccept})
}

// rangeKey is an interval [start, end) of an interval set; end is nil when the interval
// runs to the highest key.
type rangeKey struct{ start, end []byte }

// lookup makes an anonymous constant interval set of sorted, disjoint ranges and returns
// the expression that matches register 1 against it. The elements are laid out as nft
// does: an interval-end marker at zero unless the first range starts there, then each
// range's start and, past its end, an interval-end.
func (b *nftBuilder) lookup(keyType nftables.SetDatatype, ranges []rangeKey) expr.Any {
	b.setID++
	set := &nftables.Set{
		Table:     b.plan.table,
		ID:        b.setID,
		Name:      "__set%d", // the kernel names anonymous sets
		Anonymous: true,
		Constant:  true,
		Interval:  true,
		KeyType:   keyType,
	}
	var elems []nftables.SetElement
	zero := make([]byte, keyType.Bytes)
	if string(ranges[0].start) != string(zero) {
		elems = append(elems, nftables.SetElement{Key: zero, IntervalEnd: true})
	}
	for _, r := range ranges {
		elems = append(elems, nftables.SetElement{Key: r.start})
		if r.end != nil {
			elems = append(elems, nftables.SetElement{Key: r.end, IntervalEnd: true})
		}
	}
	b.pending = append(b.pending, nftSet{set: set, elems: elems})
	return &expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID}
}

func ctState(bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binary.NativeEndian.AppendUint32(nil, bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// ifname is an interface name as the kernel compares it: NUL-padded to IFNAMSIZ.
func ifname(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
