package main

import (
	"context"
	"fmt"

	"github.com/weftmesh/weft/wire"
)

const gatewayUseUsage = "usage: weft gateway use DEVICE [--route CIDR]   (without --route: all of DEVICE's approved routes)"

// cmdGatewayUse sends a route, or all of a gateway's approved routes, through it.
func cmdGatewayUse(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "gateway use")
	route := fs.String("route", "", "use the gateway for this approved route only")
	pos, err := parseArgs(fs, args, gatewayUseUsage)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 0:
		return usagef(gatewayUseUsage, "which gateway? give a device's name, FQDN or mesh IP")
	case len(pos) > 1:
		return usagef(gatewayUseUsage, "unexpected argument %q", pos[1])
	}
	req := wire.GatewayUseRequest{Gateway: pos[0]}
	if *route != "" {
		if req.Route, err = parseRoute(gatewayUseUsage, *route); err != nil {
			return err
		}
	}
	g, err := e.client().UseGateway(ctx, req)
	if err != nil {
		return err
	}
	// Every choice, so the user sees what else goes through a gateway too.
	for _, c := range g.Choices {
		state := "in use"
		if !c.Active {
			state = "not in use: " + c.Reason
		}
		fmt.Fprintf(e.stdout, "%s via %s (%s)\n", routeName(c.Route), c.GatewayName, state)
	}
	return nil
}
