package service

import (
	"net/netip"
	"slices"

	"github.com/weftmesh/weft/wire"
)

// The verdicts of a network check, without I/O: what the answers it collected mean.

// classifyMapping says how a NAT maps a socket bound to port, from what STUN servers saw
// of it: mapped[i] is servers[i]'s answer, invalid when it gave none; local are the host's
// own addresses. preserved says whether every answer kept port (nil: no answers).
//
// Two different answers prove that the mapping depends on the destination; equal answers
// from two servers show it did not for these two (the broker's two ports on one address
// cannot tell a mapping that depends on the address only, which is rare, from an
// independent one); one answer alone shows nothing but whether there is a NAT at all.
func classifyMapping(mapped []netip.AddrPort, local []netip.Addr, port int) (mapping string, preserved *bool) {
	var got []netip.AddrPort
	for _, m := range mapped {
		if m.IsValid() {
			got = append(got, netip.AddrPortFrom(m.Addr().Unmap(), m.Port()))
		}
	}
	if len(got) == 0 {
		return "", nil
	}
	kept := !slices.ContainsFunc(got, func(m netip.AddrPort) bool { return int(m.Port()) != port })
	preserved = &kept
	distinct := slices.Clone(got)
	slices.SortFunc(distinct, netip.AddrPort.Compare)
	distinct = slices.Compact(distinct)
	switch {
	case len(distinct) > 1:
		return wire.MappingVaries, preserved
	case kept && slices.Contains(local, got[0].Addr()):
		return wire.MappingNone, preserved
	case len(got) >= 2:
		return wire.MappingIndependent, preserved
	}
	return wire.MappingUnknown, preserved
}

// udpVerdict says whether UDP gets out: any STUN answer or relay handshake over UDP
// proves it does; asking and hearing nothing says it does not; not asking says nothing.
func udpVerdict(stunAsked, stunAnswered int, relays []wire.NetcheckRelay) string {
	udpAsked, udpOK := false, false
	for _, r := range relays {
		if r.UDP != nil {
			udpAsked = true
			udpOK = udpOK || r.UDP.OK
		}
	}
	switch {
	case stunAnswered > 0 || udpOK:
		return wire.UDPOK
	case stunAsked > 0 || udpAsked:
		return wire.UDPBlocked
	}
	return wire.UDPUnchecked
}

// preferredRelay is the relay the engine settles on: the first in the broker's order
// that answers on either transport (the engine dials them in that order and keeps the
// first connection it gets).
func preferredRelay(relays []wire.NetcheckRelay) string {
	for _, r := range relays {
		if r.UDP != nil && r.UDP.OK || r.TLS != nil && r.TLS.OK {
			return r.Name
		}
	}
	return ""
}
