package wire

import "net/netip"

// GatewayUseRequest chooses a gateway for one route or for all of its approved ones.
type GatewayUseRequest struct {
	Gateway string `json:"gateway"` // the gateway device: name, FQDN, mesh IP or ID
	// Route is one of the gateway's approved routes; the zero value means all of them as
	// approved now (0.0.0.0/0 for an exit node).
	Route netip.Prefix `json:"route,omitzero"`
}

// GatewayClearRequest drops gateway choices: those of Gateway, or the one for Route, or,
// with neither set, all of them.
type GatewayClearRequest struct {
	Gateway string       `json:"gateway,omitempty"`
	Route   netip.Prefix `json:"route,omitzero"`
}

// RouteChoice is a route this device sends through a gateway of its choice.
type RouteChoice struct {
	Route       netip.Prefix `json:"route"`
	Gateway     string       `json:"gateway"` // the gateway's device ID
	GatewayName string       `json:"gateway_name,omitempty"`
	// Active is set while the route is installed: the gateway is in the map and the route
	// is approved. Reason says why an inactive choice is not in use.
	Active bool   `json:"active"`
	Reason string `json:"reason,omitempty"`
}

// GatewayInfo is a peer that offers routes.
type GatewayInfo struct {
	ID         string         `json:"id"`
	Name       string         `json:"name"`
	Address    netip.Addr     `json:"address"`
	Online     bool           `json:"online"`
	Advertised []netip.Prefix `json:"advertised,omitempty"`
	Routes     []netip.Prefix `json:"routes,omitempty"` // the approved ones
	Using      []netip.Prefix `json:"using,omitempty"`  // routes this device chose through it
}

// Gateways is what `weft gateway list` shows: every peer offering routes, this
// device's choices, and what this device itself advertises.
type Gateways struct {
	Gateways []GatewayInfo `json:"gateways"`
	Choices  []RouteChoice `json:"choices"`
	// Advertised and Approved are this device's own routes.
	Advertised []netip.Prefix `json:"advertised,omitempty"`
	Approved   []netip.Prefix `json:"approved,omitempty"`
}

// VDevList are the virtual devices this device hosts as their gateway, with their LAN IPs.
type VDevList struct {
	VDevs []Device `json:"vdevs"`
}
