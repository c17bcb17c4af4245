package platform

import (
	"fmt"
	"net/netip"

	"github.com/weftmesh/weft/wire"
)

// The Windows Filtering Platform filters for a tunnel interface, described without the
// Windows API so they are built and tested on any OS; firewall_windows.go turns them into
// FWPM_FILTER0 structs. One function per filter:
//
//	permit  ALE_AUTH_RECV_ACCEPT  interface == TUNNEL, local address == SELF,
//	        remote address in SOURCES, protocol == P, local port in PORTS     (per FilterRule)
//	block   ALE_AUTH_RECV_ACCEPT  interface == TUNNEL                         (unless DefaultAllow)
//
// ALE_AUTH_RECV_ACCEPT authorises new inbound flows only (a TCP SYN, the first datagram to a
// socket, an ICMP echo request); replies to flows the device started are never classified
// there, which gives the "established" exception for free. Conditions on the same field are
// ORed by WFP, different fields ANDed. Within weft's sublayer the higher weight wins, so the
// permits outrank the block; a block from weft's sublayer beats permits from any other
// (Windows Firewall's included), while weft's permits cannot override others' blocks.

// wfpGUID has the layout and field names of windows.GUID, so the Windows code converts it.
type wfpGUID struct {
	Data1 uint32
	Data2 uint16
	Data3 uint16
	Data4 [8]byte
}

// Keys from fwpmu.h.
var (
	wfpLayerRecvAcceptV4 = wfpGUID{0xe1cd9fe7, 0xf4b5, 0x4273, [8]byte{0x96, 0xc0, 0x59, 0x2e, 0x48, 0x7b, 0x86, 0x50}}
	wfpLayerRecvAcceptV6 = wfpGUID{0xa3b42c97, 0x9f04, 0x4672, [8]byte{0xb8, 0x7e, 0xce, 0xe9, 0xc4, 0x83, 0x25, 0x7f}}

	wfpCondLocalInterface = wfpGUID{0x4cd62a49, 0x59c3, 0x4969, [8]byte{0xb7, 0xf3, 0xbd, 0xa5, 0xd3, 0x28, 0x90, 0xa4}}
	wfpCondLocalAddress   = wfpGUID{0xd9ee00de, 0xc1ef, 0x4617, [8]byte{0xbf, 0xe3, 0xff, 0xd8, 0xf5, 0xa0, 0x89, 0x57}}
	wfpCondRemoteAddress  = wfpGUID{0xb235ae9a, 0x1d64, 0x49b8, [8]byte{0xa4, 0x4c, 0x5f, 0xf3, 0xd9, 0x09, 0x50, 0x45}}
	wfpCondProtocol       = wfpGUID{0x3971ef2b, 0x623e, 0x4f9a, [8]byte{0x8c, 0xb1, 0x6e, 0x79, 0xb8, 0x06, 0xb9, 0xa7}}
	wfpCondLocalPort      = wfpGUID{0x0c1ba1af, 0x5765, 0x453f, [8]byte{0xaf, 0x22, 0xa8, 0xf7, 0x91, 0xac, 0x77, 0x5b}}
	wfpCondICMPType       = wfpCondLocalPort // fwpmu.h: the ICMP type travels in the local port field

	// weft's own sublayer (a random GUID, fixed so that a leftover one is recognised).
	wfpSublayerKey = wfpGUID{0x5d1c8a3e, 0x7b2f, 0x4e61, [8]byte{0x9a, 0x0d, 0x3c, 0x48, 0xe2, 0x71, 0xb6, 0x95}}
)

type wfpAction int

const (
	wfpPermit wfpAction = iota
	wfpBlock
)

// Filter weights inside weft's sublayer.
const (
	wfpWeightPermit = 10
	wfpWeightBlock  = 1
)

// wfpFilter is one filter to add.
type wfpFilter struct {
	name   string
	layer  wfpGUID
	action wfpAction
	weight uint8
	conds  []wfpCondition
}

// wfpCondition is one FWPM_FILTER_CONDITION0 with FWP_MATCH_EQUAL, or FWP_MATCH_RANGE
// for a wfpPortRange.
type wfpCondition struct {
	field wfpGUID
	value wfpValue
}

// wfpValue is one of the condition value types below.
type wfpValue interface{ wfpValueString() string }

type (
	wfpUint8    uint8  // FWP_UINT8: a protocol
	wfpUint16   uint16 // FWP_UINT16: a port or ICMP type
	wfpUint32   uint32 // FWP_UINT32: an IPv4 address, host byte order
	wfpUint64   uint64 // FWP_UINT64: an interface LUID
	wfpV6Addr   [16]byte
	wfpV4Mask   struct{ addr, mask uint32 } // FWP_V4_ADDR_MASK, host byte order
	wfpV6Prefix struct {
		addr [16]byte
		bits uint8
	}
	wfpPortRange struct{ first, last uint16 } // FWP_RANGE_TYPE of two FWP_UINT16
)

func (v wfpUint8) wfpValueString() string  { return fmt.Sprintf("uint8 %d", v) }
func (v wfpUint16) wfpValueString() string { return fmt.Sprintf("uint16 %d", v) }
func (v wfpUint32) wfpValueString() string {
	return "uint32 " + netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}).String()
}
func (v wfpUint64) wfpValueString() string { return fmt.Sprintf("uint64 %#x", uint64(v)) }
func (v wfpV6Addr) wfpValueString() string { return "byte_array16 " + netip.AddrFrom16(v).String() }
func (v wfpV4Mask) wfpValueString() string {
	return fmt.Sprintf("v4_addr_mask %s/%s", wfpUint32(v.addr).wfpValueString()[7:], wfpUint32(v.mask).wfpValueString()[7:])
}
func (v wfpV6Prefix) wfpValueString() string {
	return fmt.Sprintf("v6_addr_mask %s/%d", netip.AddrFrom16(v.addr), v.bits)
}
func (v wfpPortRange) wfpValueString() string { return fmt.Sprintf("range %d-%d", v.first, v.last) }

// wfpFilters builds the filters for the tunnel interface with LUID luid.
func wfpFilters(luid uint64, self netip.Addr, filter wire.PacketFilter) ([]wfpFilter, error) {
	if err := checkFilter(self, filter); err != nil {
		return nil, err
	}
	var out []wfpFilter
	for _, r := range filter.Rules {
		if f, ok := wfpPermitRule(luid, self, r); ok {
			out = append(out, f)
		}
	}
	if !filter.DefaultAllow {
		out = append(out, wfpBlockTunnel(luid, self))
	}
	return out, nil
}

func wfpLayer(self netip.Addr) wfpGUID {
	if self.Is6() {
		return wfpLayerRecvAcceptV6
	}
	return wfpLayerRecvAcceptV4
}

// wfpPermitRule permits one FilterRule's flows to self; false when none of its sources
// is of self's family.
func wfpPermitRule(luid uint64, self netip.Addr, r wire.FilterRule) (wfpFilter, bool) {
	sources := familySources(self, r.Sources)
	if len(sources) == 0 {
		return wfpFilter{}, false
	}
	f := wfpFilter{
		name:   fmt.Sprintf("weft: permit %s from %d sources", r.Proto, len(sources)),
		layer:  wfpLayer(self),
		action: wfpPermit,
		weight: wfpWeightPermit,
		conds: []wfpCondition{
			{wfpCondLocalInterface, wfpUint64(luid)},
			{wfpCondLocalAddress, wfpAddrValue(self)},
		},
	}
	for _, p := range sources {
		f.conds = append(f.conds, wfpCondition{wfpCondRemoteAddress, wfpPrefixValue(p)})
	}
	switch r.Proto {
	case wire.ProtoTCP, wire.ProtoUDP:
		proto := wfpUint8(6)
		if r.Proto == wire.ProtoUDP {
			proto = 17
		}
		f.conds = append(f.conds, wfpCondition{wfpCondProtocol, proto})
		for _, pr := range mergePorts(r.Ports) {
			var v wfpValue = wfpPortRange{pr.First, pr.Last}
			if pr.First == pr.Last {
				v = wfpUint16(pr.First)
			}
			f.conds = append(f.conds, wfpCondition{wfpCondLocalPort, v})
		}
	case wire.ProtoICMP:
		proto, echoRequest := wfpUint8(1), wfpUint16(8)
		if self.Is6() {
			proto, echoRequest = 58, 128
		}
		f.conds = append(f.conds, wfpCondition{wfpCondProtocol, proto}, wfpCondition{wfpCondICMPType, echoRequest})
	}
	return f, true
}

// wfpBlockTunnel blocks every other new inbound flow on the tunnel.
func wfpBlockTunnel(luid uint64, self netip.Addr) wfpFilter {
	return wfpFilter{
		name:   "weft: block other inbound flows on the tunnel",
		layer:  wfpLayer(self),
		action: wfpBlock,
		weight: wfpWeightBlock,
		conds:  []wfpCondition{{wfpCondLocalInterface, wfpUint64(luid)}},
	}
}

func wfpAddrValue(a netip.Addr) wfpValue {
	if a.Is4() {
		b := a.As4()
		return wfpUint32(uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]))
	}
	return wfpV6Addr(a.As16())
}

func wfpPrefixValue(p netip.Prefix) wfpValue {
	if p.Addr().Is4() {
		return wfpV4Mask{addr: uint32(wfpAddrValue(p.Addr()).(wfpUint32)), mask: ^uint32(0) << (32 - p.Bits())}
	}
	return wfpV6Prefix{addr: p.Addr().As16(), bits: uint8(p.Bits())}
}
