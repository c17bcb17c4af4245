package service

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/weftmesh/weft/platform"
	"github.com/weftmesh/weft/wire"
)

// This file decides, without I/O, what this device's gateway choices and its own gateway
// role mean for WireGuard, routing and the gateway's rules: netconfig.go puts it into the
// OS, gateway.go serves the local API that changes the choices.

// gatewayChoice is a route this device sends through a gateway it chose (weft gateway
// use), as kept in state.json. The choice is the user's and stays when the gateway goes
// away or its route loses its approval; it is in use only while neither is the case.
type gatewayChoice struct {
	Route   netip.Prefix `json:"route"`
	Gateway string       `json:"gateway"` // the gateway's device ID
}

// resolveChoice says whether a choice is in use with the peer map m, and why not.
func resolveChoice(c gatewayChoice, m *PeerMap) wire.RouteChoice {
	rc := wire.RouteChoice{Route: c.Route, Gateway: c.Gateway}
	g, ok := m.ByID(c.Gateway)
	if ok {
		rc.GatewayName = g.Name
	}
	switch {
	case !ok:
		rc.Reason = "the gateway is not in this device's map (removed, or hidden by the access policy)"
	case g.Kind == wire.KindVirtual || g.PublicKey.IsZero():
		rc.Reason = "that device cannot route (no WireGuard key)"
	case !slices.Contains(g.Routes, c.Route):
		rc.Reason = "the route is not approved on the gateway"
	case !c.Route.Addr().Is4():
		rc.Reason = "gateways forward IPv4 only"
	default:
		rc.Active = true
	}
	return rc
}

// resolveChoices resolves every choice, in route order.
func resolveChoices(choices []gatewayChoice, m *PeerMap) []wire.RouteChoice {
	out := make([]wire.RouteChoice, 0, len(choices))
	for _, c := range choices {
		out = append(out, resolveChoice(c, m))
	}
	slices.SortFunc(out, func(a, b wire.RouteChoice) int { return comparePrefixes(a.Route, b.Route) })
	return out
}

// activeRoutes are the chosen routes in use, sorted.
func activeRoutes(choices []gatewayChoice, m *PeerMap) []netip.Prefix {
	var out []netip.Prefix
	for _, c := range choices {
		if resolveChoice(c, m).Active {
			out = append(out, c.Route)
		}
	}
	slices.SortFunc(out, comparePrefixes)
	return slices.Compact(out)
}

// gatewayAllowedIPs are the networks each peer (by key) carries beyond its own address:
// the mesh addresses of the virtual devices it hosts, so that they are reachable by
// SecureIP and traffic from them is accepted, and the routes this device chose through
// it. selfID's own virtual devices are on its LAN and carried by no peer.
func gatewayAllowedIPs(selfID string, choices []gatewayChoice, m *PeerMap) map[wire.Key][]netip.Prefix {
	out := map[wire.Key][]netip.Prefix{}
	for _, v := range m.List() {
		if v.Kind != wire.KindVirtual || !v.Address.IsValid() || v.Gateway == "" || v.Gateway == selfID {
			continue
		}
		g, ok := m.ByID(v.Gateway)
		if !ok || g.PublicKey.IsZero() {
			continue
		}
		out[g.PublicKey] = append(out[g.PublicKey], netip.PrefixFrom(v.Address, v.Address.BitLen()))
	}
	for _, c := range choices {
		if !resolveChoice(c, m).Active {
			continue
		}
		g, _ := m.ByID(c.Gateway)
		out[g.PublicKey] = append(out[g.PublicKey], c.Route)
	}
	for k, ps := range out {
		slices.SortFunc(ps, comparePrefixes)
		out[k] = slices.Compact(ps)
	}
	return out
}

// gatewayRole is what this device serves as a gateway: its own approved routes and the
// virtual devices the map says it hosts. Virtual devices whose addresses the OS cannot
// translate (not IPv4 unicast) are left out, each with the reason in skipped.
func gatewayRole(self *wire.Device, m *PeerMap) (routes []netip.Prefix, virtual []platform.VirtualDevice, skipped []string) {
	if self == nil {
		return nil, nil, nil
	}
	for _, p := range self.Routes {
		if p.Addr().Is4() {
			routes = append(routes, p)
		}
	}
	for _, v := range m.List() {
		if v.Kind != wire.KindVirtual || v.Gateway != self.ID {
			continue
		}
		if !v.Address.Is4() || !meshRange.Contains(v.Address) || !v.LANIP.Is4() || !v.LANIP.IsGlobalUnicast() || meshRange.Contains(v.LANIP) {
			skipped = append(skipped, fmt.Sprintf("virtual device %s: mesh address %v, LAN IP %v: only IPv4 unicast LAN addresses can be translated", v.Name, v.Address, v.LANIP))
			continue
		}
		var filter wire.PacketFilter
		if v.VirtualFilter != nil {
			filter = *v.VirtualFilter
		}
		virtual = append(virtual, platform.VirtualDevice{SecureIP: v.Address, LANIP: v.LANIP, Filter: filter})
	}
	return routes, virtual, skipped
}

// bypassAddrs are the addresses that must keep their way around the tunnel when routes go
// through it: the broker's and STUN servers' (the control plane), the relays', and every
// endpoint of every peer, from the map and as the tunnel uses them now (packets to them
// carry the tunnel itself).
func bypassAddrs(control []netip.Addr, peers []wire.Device, live []netip.AddrPort) []netip.Addr {
	out := slices.Clone(control)
	for _, p := range peers {
		for _, ep := range p.Endpoints {
			out = append(out, ep.Addr().Unmap())
		}
	}
	for _, ep := range live {
		out = append(out, ep.Addr().Unmap())
	}
	out = slices.DeleteFunc(out, func(a netip.Addr) bool { return !a.IsValid() || a.IsUnspecified() })
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

func comparePrefixes(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}
