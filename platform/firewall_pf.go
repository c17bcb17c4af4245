package platform

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/weftmesh/weft/wire"
)

// pfAnchor is where weft's pf rules live. The stock macOS /etc/pf.conf evaluates
// anchor "com.apple/*", so a sub-anchor there is in force without editing the main
// ruleset; an anchor elsewhere would load fine and never be consulted.
const pfAnchor = "com.apple/weft"

// pfRules is the anchor's ruleset for a tunnel interface, one line per rule:
//
//	table <weft_N> const { SOURCES }                        # one per FilterRule
//	pass out on IFACE all keep state                        # replies to our own flows pass
//	pass in quick on IFACE inet proto tcp from <weft_N> to SELF port { PORTS } keep state
//	block drop in quick on IFACE all                        # unless DefaultAllow
//
// Under DefaultAllow the anchor is empty: nothing is filtered. A gateway (fwd not empty)
// blocks, instead of everything else, what comes to the mesh itself or from outside it:
//
//	block drop in quick on IFACE inet from any to MESH
//	block drop in quick on IFACE inet from ! MESH to any
//	block drop in quick on IFACE inet6 all
//
// so traffic from the mesh to elsewhere (routes, and virtual devices after rdr) is left
// to the gateway's anchor (com.apple/weft-gw, evaluated after this one), which passes only
// what it serves and blocks the rest. A quick pass here would skip its per-device filters.
func pfRules(iface string, self netip.Addr, filter wire.PacketFilter, fwd Forwarding) (string, error) {
	if err := checkApply(iface, self, filter); err != nil {
		return "", err
	}
	fwd, err := checkForwarding(fwd)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# weft access policy for %s: generated, replaced on every change\n", iface)
	if filter.DefaultAllow {
		return b.String(), nil
	}
	var tables, rules []string
	for _, r := range filter.Rules {
		sources := familySources(self, r.Sources)
		if len(sources) == 0 {
			continue
		}
		table := fmt.Sprintf("weft_%d", len(tables))
		tables = append(tables, pfTable(table, sources))
		rules = append(rules, pfPass(iface, self, table, r))
	}
	for _, t := range tables {
		b.WriteString(t + "\n")
	}
	b.WriteString(pfPassOut(iface) + "\n")
	for _, r := range rules {
		b.WriteString(r + "\n")
	}
	if len(fwd.Routes) > 0 || len(fwd.Virtual) > 0 {
		for _, r := range pfBlockForGateway(iface, fwd.Mesh) {
			b.WriteString(r + "\n")
		}
		return b.String(), nil
	}
	b.WriteString(pfBlock(iface) + "\n")
	return b.String(), nil
}

// pfBlockForGateway drops new flows arriving on the tunnel except those from the mesh to
// outside it, which the gateway's anchor judges.
func pfBlockForGateway(iface string, mesh netip.Prefix) []string {
	return []string{
		fmt.Sprintf("block drop in quick on %s inet from any to %s", iface, mesh),
		fmt.Sprintf("block drop in quick on %s inet from ! %s to any", iface, mesh),
		fmt.Sprintf("block drop in quick on %s inet6 all", iface),
	}
}

// pfTable: a constant address table.
func pfTable(name string, sources []netip.Prefix) string {
	addrs := make([]string, len(sources))
	for i, p := range sources {
		addrs[i] = p.String()
		if p.IsSingleIP() {
			addrs[i] = p.Addr().String()
		}
	}
	return fmt.Sprintf("table <%s> const { %s }", name, strings.Join(addrs, ", "))
}

// pfPassOut keeps state for everything the device sends into the tunnel, so that the
// replies pass the final block. Not quick: the main ruleset may still say otherwise.
func pfPassOut(iface string) string {
	return fmt.Sprintf("pass out on %s all keep state", iface)
}

// pfPass allows one FilterRule's flows to self.
func pfPass(iface string, self netip.Addr, table string, r wire.FilterRule) string {
	family := "inet"
	if self.Is6() {
		family = "inet6"
	}
	match, to := "", " to "+self.String()
	switch r.Proto {
	case wire.ProtoTCP, wire.ProtoUDP:
		match = " proto " + r.Proto
		if ports := mergePorts(r.Ports); len(ports) > 0 {
			list := make([]string, len(ports))
			for i, pr := range ports {
				list[i] = fmt.Sprint(pr.First)
				if pr.Last != pr.First {
					list[i] = fmt.Sprintf("%d:%d", pr.First, pr.Last) // inclusive in pf
				}
			}
			to += " port { " + strings.Join(list, ", ") + " }"
		}
	case wire.ProtoICMP:
		match, to = " proto icmp", to+" icmp-type echoreq"
		if self.Is6() {
			// By number: pfctl looks names up in /etc/protocols; numbers always work.
			match, to = " proto 58", " to "+self.String()+" icmp6-type echoreq"
		}
	}
	return fmt.Sprintf("pass in quick on %s %s%s from <%s>%s keep state", iface, family, match, table, to)
}

// pfBlock drops every other new flow arriving on the tunnel.
func pfBlock(iface string) string {
	return fmt.Sprintf("block drop in quick on %s all", iface)
}
