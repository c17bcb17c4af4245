package main

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/weftmesh/weft/wire"
)

const gatewayAdvertiseUsage = "usage: weft gateway advertise CIDR… | --none   (0.0.0.0/0 offers this device as an exit node)"

// cmdGatewayAdvertise replaces the networks this device offers to route for its peers.
func cmdGatewayAdvertise(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "gateway advertise")
	none := fs.Bool("none", false, "withdraw every advertised network")
	pos, err := parseArgs(fs, args, gatewayAdvertiseUsage)
	if err != nil {
		return err
	}
	switch {
	case *none && len(pos) > 0:
		return usagef(gatewayAdvertiseUsage, "--none withdraws everything: give no networks with it")
	case !*none && len(pos) == 0:
		return usagef(gatewayAdvertiseUsage, "which networks? give CIDRs, or --none to withdraw them all")
	}
	routes := []netip.Prefix{}
	for _, s := range pos {
		p, err := parseRoute(gatewayAdvertiseUsage, s)
		if err != nil {
			return err
		}
		if err := wire.ValidateRoute(p); err != nil {
			return usagef(gatewayAdvertiseUsage, "%v", err)
		}
		routes = append(routes, p)
	}
	resp, err := e.client().AdvertiseRoutes(ctx, routes)
	if err != nil {
		return err
	}
	if len(resp.Advertised) == 0 {
		fmt.Fprintln(e.stdout, "this device advertises no networks now")
		return nil
	}
	var waiting []netip.Prefix
	for _, p := range resp.Advertised {
		if !slices.Contains(resp.Routes, p) {
			waiting = append(waiting, p)
		}
	}
	fmt.Fprintf(e.stdout, "advertising %s\n", routeList(resp.Advertised))
	fmt.Fprintf(e.stdout, "approved: %s\n", routeList(resp.Routes))
	if len(waiting) > 0 {
		fmt.Fprintf(e.stdout, "waiting for approval: %s (weft-broker route approve ACCOUNT DEVICE CIDR)\n", routeList(waiting))
	}
	return nil
}
