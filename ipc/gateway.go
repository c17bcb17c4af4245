package ipc

import (
	"context"
	"net/http"
	"net/netip"

	"github.com/weftmesh/weft/wire"
)

// AdvertiseRoutes replaces the networks this device offers as a gateway; an empty list
// withdraws them. The answer says which the broker approved.
func (c *Client) AdvertiseRoutes(ctx context.Context, routes []netip.Prefix) (wire.RoutesResponse, error) {
	if routes == nil {
		routes = []netip.Prefix{}
	}
	var r wire.RoutesResponse
	err := c.do(ctx, http.MethodPost, wire.LocalPathGatewayAdvertise, wire.RoutesRequest{Advertise: routes}, &r)
	return r, err
}

// Gateways lists the peers offering routes and this device's gateway choices.
func (c *Client) Gateways(ctx context.Context) (wire.Gateways, error) {
	var g wire.Gateways
	err := c.do(ctx, http.MethodGet, wire.LocalPathGateways, nil, &g)
	return g, err
}

// UseGateway sends a route (or all of a gateway's approved routes) through a gateway.
func (c *Client) UseGateway(ctx context.Context, req wire.GatewayUseRequest) (wire.Gateways, error) {
	var g wire.Gateways
	err := c.do(ctx, http.MethodPost, wire.LocalPathGatewayUse, req, &g)
	return g, err
}

// ClearGateway drops gateway choices (see wire.GatewayClearRequest).
func (c *Client) ClearGateway(ctx context.Context, req wire.GatewayClearRequest) (wire.Gateways, error) {
	var g wire.Gateways
	err := c.do(ctx, http.MethodPost, wire.LocalPathGatewayClear, req, &g)
	return g, err
}

// VirtualDevices lists the virtual devices this device hosts.
func (c *Client) VirtualDevices(ctx context.Context) (wire.VDevList, error) {
	var l wire.VDevList
	err := c.do(ctx, http.MethodGet, wire.LocalPathVDevs, nil, &l)
	return l, err
}

// AddVirtualDevice registers a LAN device behind this device.
func (c *Client) AddVirtualDevice(ctx context.Context, req wire.VDevRequest) (wire.Device, error) {
	var r wire.VDevResponse
	err := c.do(ctx, http.MethodPost, wire.LocalPathVDevAdd, req, &r)
	return r.Device, err
}

// RemoveVirtualDevice removes one of this device's virtual devices by name.
func (c *Client) RemoveVirtualDevice(ctx context.Context, name string) (wire.VDevList, error) {
	var l wire.VDevList
	err := c.do(ctx, http.MethodPost, wire.LocalPathVDevRemove, wire.VDevRemoveRequest{Name: name}, &l)
	return l, err
}
