package control

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"

	"github.com/weftmesh/weft/wire"
)

// AdvertiseRoutes replaces the networks this device offers to route for its peers (an
// empty list withdraws them all) and returns what it advertises and which are approved.
func (c *Client) AdvertiseRoutes(ctx context.Context, routes []netip.Prefix) (wire.RoutesResponse, error) {
	if routes == nil {
		routes = []netip.Prefix{}
	}
	var resp wire.RoutesResponse
	err := c.authedJSON(ctx, wire.PathRoutes, wire.RoutesRequest{Advertise: routes}, &resp)
	return resp, err
}

// AddVirtualDevice registers a LAN device behind this device, its gateway, and returns it
// as the gateway sees it (with its mesh address and LAN IP).
func (c *Client) AddVirtualDevice(ctx context.Context, req wire.VDevRequest) (wire.Device, error) {
	var resp wire.VDevResponse
	if err := c.authedJSON(ctx, wire.PathVDevs, req, &resp); err != nil {
		return wire.Device{}, err
	}
	return resp.Device, nil
}

// RemoveVirtualDevice removes one of this gateway's virtual devices by name.
func (c *Client) RemoveVirtualDevice(ctx context.Context, name string) error {
	return c.authedCall(ctx, wire.PathVDevsRemove, wire.VDevRemoveRequest{Name: name})
}

// authedJSON makes an authenticated POST of in and decodes the answer into out.
func (c *Client) authedJSON(ctx context.Context, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encode %s request: %w", path, err)
	}
	resp, err := c.authed(ctx, http.MethodPost, path, body)
	if err != nil {
		return err
	}
	return readJSON(resp, out)
}
