package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/weftmesh/weft/wire"
)

const gatewayUsage = `usage: weft gateway advertise CIDR… | --none
       weft gateway list [--json]
       weft gateway use DEVICE [--route CIDR]
       weft gateway clear [DEVICE] [--route CIDR]`

// gatewayTimeout bounds one gateway command (advertise goes on to the broker).
const gatewayTimeout = 45 * time.Second

func cmdGateway(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usagef(gatewayUsage, "which gateway command? advertise, list, use or clear")
	}
	ctx, cancel := context.WithTimeout(ctx, gatewayTimeout)
	defer cancel()
	switch args[0] {
	case "advertise":
		return cmdGatewayAdvertise(ctx, e, args[1:])
	case "list":
		return cmdGatewayList(ctx, e, args[1:])
	case "use":
		return cmdGatewayUse(ctx, e, args[1:])
	case "clear":
		return cmdGatewayClear(ctx, e, args[1:])
	}
	return usagef(gatewayUsage, "unknown gateway command %q", args[0])
}

const gatewayListUsage = "usage: weft gateway list [--json]"

// cmdGatewayList shows every peer that offers routes, one line per route, and which of
// them this device sends through it.
func cmdGatewayList(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "gateway list")
	asJSON := fs.Bool("json", false, "print the list as JSON")
	if err := noArgs(fs, args, gatewayListUsage); err != nil {
		return err
	}
	g, err := e.client().Gateways(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(g)
	}
	printGatewayList(e, g)
	return nil
}

func printGatewayList(e *env, g wire.Gateways) {
	w := e.stdout
	choice := map[netip.Prefix]wire.RouteChoice{}
	for _, c := range g.Choices {
		choice[c.Route] = c
	}
	if len(g.Gateways) == 0 {
		fmt.Fprintln(w, "no gateways: no other device offers routes")
	} else {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "GATEWAY\tMESH IP\tONLINE\tROUTE\tAPPROVED\tUSING")
		for _, gw := range g.Gateways {
			all := slices.Concat(gw.Advertised, gw.Routes)
			slices.SortFunc(all, func(a, b netip.Prefix) int {
				if c := a.Addr().Compare(b.Addr()); c != 0 {
					return c
				}
				return a.Bits() - b.Bits()
			})
			for _, r := range slices.Compact(all) {
				using := "no"
				if c, ok := choice[r]; ok && c.Gateway == gw.ID {
					using = "yes"
					if !c.Active {
						using = "chosen, not in use"
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", gw.Name, gw.Address, yesNo(gw.Online), routeName(r),
					yesNo(slices.Contains(gw.Routes, r)), using)
			}
		}
		tw.Flush()
	}
	for _, c := range g.Choices {
		if !c.Active {
			via := c.GatewayName
			if via == "" {
				via = c.Gateway
			}
			fmt.Fprintf(w, "%s via %s is chosen but not in use: %s\n", routeName(c.Route), via, c.Reason)
		}
	}
	if len(g.Advertised) > 0 {
		fmt.Fprintf(w, "this device advertises %s; approved: %s\n", routeList(g.Advertised), routeList(g.Approved))
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// parseRoute parses a CIDR given on the command line.
func parseRoute(usageLine, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, usagef(usageLine, "%q is not a network like 192.168.1.0/24 (or 0.0.0.0/0 for the internet)", s)
	}
	return p, nil
}
