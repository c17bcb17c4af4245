package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"text/tabwriter"

	"github.com/weftmesh/weft/broker"
	"github.com/weftmesh/weft/wire"
)

func cmdRoute(args []string, data string, e env) error {
	fs := newFlags("weft-broker route")
	asJSON := fs.Bool("json", false, "")
	dir, verb, pos, err := adminCommand("route", args, data, fs)
	if err != nil {
		return err
	}
	var route netip.Prefix
	switch verb {
	case "list":
		if err := wantArgs("route list", pos, "ACCOUNT"); err != nil {
			return err
		}
	case "approve", "unapprove":
		if err := wantArgs("route "+verb, pos, "ACCOUNT", "DEVICE", "CIDR"); err != nil {
			return err
		}
		if route, err = netip.ParsePrefix(pos[2]); err != nil {
			return usagef("route %s: %q is not a network like 192.168.1.0/24", verb, pos[2])
		}
	default:
		return usagef("unknown route subcommand %q", verb)
	}
	if *asJSON && verb != "list" {
		return usagef("--json is for route list")
	}
	c, err := broker.NewAdminClient(dir)
	if err != nil {
		return err
	}
	ctx := context.Background()
	switch verb {
	case "approve", "unapprove":
		req := broker.AdminRouteRequest{Account: pos[0], Device: pos[1], Route: route}
		change := c.UnapproveRoute
		if verb == "approve" {
			change = c.ApproveRoute
		}
		r, err := change(ctx, req)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%sd route %s of device %s in account %s\n", verb, route, r.Device, pos[0])
		return nil
	}
	routes, err := c.Routes(ctx, pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(routes)
	}
	return printRoutes(e.stdout, routes)
}

// printRoutes shows one line per route of each device: advertised, approved or both.
func printRoutes(w io.Writer, devs []broker.AdminRoutes) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tROUTE\tADVERTISED\tAPPROVED\tIN-USE")
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	for _, d := range devs {
		all := slices.Concat(d.Advertised, d.Approved)
		slices.SortFunc(all, func(a, b netip.Prefix) int {
			if c := a.Addr().Compare(b.Addr()); c != 0 {
				return c
			}
			return a.Bits() - b.Bits()
		})
		for _, p := range slices.Compact(all) {
			name := p.String()
			if wire.IsExitRoute(p) {
				name += " (exit)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.Device, name,
				yes(slices.Contains(d.Advertised, p)), yes(slices.Contains(d.Approved, p)), yes(slices.Contains(d.Routes, p)))
		}
	}
	return tw.Flush()
}
