package main

import (
	"context"
	"fmt"

	"github.com/weftmesh/weft/wire"
)

const gatewayClearUsage = "usage: weft gateway clear [DEVICE] [--route CIDR]   (neither: stop using every gateway)"

// cmdGatewayClear stops sending routes through gateways: those of DEVICE, the one
// --route names, or all of them.
func cmdGatewayClear(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "gateway clear")
	route := fs.String("route", "", "stop using a gateway for this route")
	pos, err := parseArgs(fs, args, gatewayClearUsage)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef(gatewayClearUsage, "unexpected argument %q", pos[1])
	}
	var req wire.GatewayClearRequest
	if len(pos) == 1 {
		req.Gateway = pos[0]
	}
	if *route != "" {
		if req.Route, err = parseRoute(gatewayClearUsage, *route); err != nil {
			return err
		}
	}
	g, err := e.client().ClearGateway(ctx, req)
	if err != nil {
		return err
	}
	if len(g.Choices) == 0 {
		fmt.Fprintln(e.stdout, "no route goes through a gateway now")
		return nil
	}
	for _, c := range g.Choices {
		fmt.Fprintf(e.stdout, "still %s via %s\n", routeName(c.Route), c.GatewayName)
	}
	return nil
}
