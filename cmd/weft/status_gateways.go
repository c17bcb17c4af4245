package main

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"

	"github.com/weftmesh/weft/wire"
)

// tunnelPeers are the peers this device has a tunnel to: all but virtual devices.
func tunnelPeers(all []wire.PeerStatus) []wire.PeerStatus {
	var out []wire.PeerStatus
	for _, p := range all {
		if p.Kind != wire.KindVirtual {
			out = append(out, p)
		}
	}
	return out
}

// printGateways prints the gateways (peers with approved routes), the routes this device
// sends through them, and the virtual devices, each section only when it has something.
func printGateways(w io.Writer, st wire.Status) {
	names := map[string]string{}
	var gateways, vdevs []wire.PeerStatus
	for _, p := range st.Peers {
		names[p.ID] = p.Name
		switch {
		case p.Kind == wire.KindVirtual:
			vdevs = append(vdevs, p)
		case len(p.Routes) > 0:
			gateways = append(gateways, p)
		}
	}
	if st.Self != nil {
		names[st.Self.ID] = st.Self.Name + " (this device)"
	}
	if len(gateways) > 0 {
		fmt.Fprintln(w, "\ngateways:")
		for _, g := range gateways {
			fmt.Fprintf(w, "  %s (%s): %s\n", g.Name, g.Address, routeList(g.Routes))
		}
	}
	if len(st.GatewayRoutes) > 0 {
		fmt.Fprintln(w, "\nroutes through gateways:")
		for _, c := range st.GatewayRoutes {
			via := c.GatewayName
			if via == "" {
				via = c.Gateway
			}
			state := "in use"
			if !c.Active {
				state = "not in use: " + c.Reason
			}
			fmt.Fprintf(w, "  %s via %s (%s)\n", routeName(c.Route), via, state)
		}
	}
	if len(vdevs) > 0 {
		fmt.Fprintln(w, "\nvirtual devices:")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, v := range vdevs {
			via := names[v.Gateway]
			if via == "" {
				via = v.Gateway
			}
			line := fmt.Sprintf("  %s\t%s\tvia %s", v.Name, v.Address, via)
			if v.LANIP.IsValid() {
				line += "\tLAN " + v.LANIP.String()
			}
			fmt.Fprintln(tw, line)
		}
		tw.Flush()
	}
}

// routeName is a route as the CLI shows it: exit routes say so.
func routeName(p netip.Prefix) string {
	if wire.IsExitRoute(p) {
		return p.String() + " (exit)"
	}
	return p.String()
}

func routeList(ps []netip.Prefix) string {
	if len(ps) == 0 {
		return "none"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = routeName(p)
	}
	return strings.Join(s, ", ")
}
