package platform

import (
	"fmt"
	"strings"
)

// pfGatewayAnchor holds the gateway's pf rules, beside the firewall's anchor: the stock
// macOS /etc/pf.conf evaluates nat-anchor, rdr-anchor and anchor "com.apple/*".
const pfGatewayAnchor = "com.apple/weft-gw"

// Tags carry a packet's origin from translation to filtering: pf filters the translated
// packet, so after rdr a flow to a virtual device is known by its tag, not its address.
const (
	pfTagVdev = "weft_gw_vdev" // mesh → virtual device, set by rdr
	pfTagLAN  = "weft_gw_lan"  // registered LAN device → mesh, set by nat
)

// pfGatewayRules is the gateway anchor's ruleset, built without I/O so it is tested on any
// OS. egress are the interfaces traffic may leave through towards routes and LAN devices
// (every interface but the tunnel and loopback): pf cannot masquerade "out of whichever
// interface", so there is one nat rule per interface, following its address.
//
//	table <weft_gw_routes> const { ROUTES, !MESH }     # a route never covers the mesh itself
//	table <weft_gw_lan> const { LAN_i… }
//	table <weft_gw_N> const { SOURCES }                # one per virtual device filter rule
//	nat on TUN inet from LAN_i to MESH tag weft_gw_lan -> SEC_i
//	nat on IF inet from MESH to <weft_gw_lan> tagged weft_gw_vdev -> (IF)     # each egress IF
//	nat on IF inet from MESH to <weft_gw_routes> -> (IF)
//	rdr on TUN inet from any to SEC_i tag weft_gw_vdev -> LAN_i
//	pass in quick on TUN inet proto tcp from <weft_gw_N> to LAN_i port { PORTS } tagged weft_gw_vdev keep state
//	block drop in quick on TUN inet from any to LAN_i tagged weft_gw_vdev     # unless DefaultAllow
//	pass in quick on TUN inet from MESH to <weft_gw_routes> keep state
//	block drop in quick on TUN inet from any to ! SELF     # a gateway forwards only what it serves
//	pass out quick on TUN inet tagged weft_gw_lan keep state
//	block drop out quick on TUN inet from ! SELF to any    # only registered LAN devices enter the mesh
//
// Traffic to SELF itself is the device firewall's business (its own anchor).
func pfGatewayRules(cfg GatewayConfig, egress []string) (string, error) {
	c, err := checkGateway(cfg)
	if err != nil {
		return "", err
	}
	for _, name := range egress {
		if err := checkIfaceName(name); err != nil || name == c.TunnelIface {
			return "", fmt.Errorf("gateway: invalid egress interface %q", name)
		}
	}
	tun, mesh, self := c.TunnelIface, c.MeshPrefix.String(), c.Self.String()
	var tables, nat, rdr, filter []string
	if len(c.Routes) > 0 {
		entries := make([]string, 0, len(c.Routes)+1)
		for _, p := range c.Routes {
			entries = append(entries, p.String())
		}
		tables = append(tables, fmt.Sprintf("table <weft_gw_routes> const { %s, !%s }", strings.Join(entries, ", "), mesh))
	}
	if len(c.Virtual) > 0 {
		var lan []string
		for _, a := range c.lanIPs() {
			lan = append(lan, a.String())
		}
		tables = append(tables, fmt.Sprintf("table <weft_gw_lan> const { %s }", strings.Join(lan, ", ")))
	}
	for _, v := range c.Virtual {
		nat = append(nat, fmt.Sprintf("nat on %s inet from %s to %s tag %s -> %s", tun, v.LANIP, mesh, pfTagLAN, v.SecureIP))
	}
	for _, ifc := range egress {
		if len(c.Virtual) > 0 {
			nat = append(nat, fmt.Sprintf("nat on %s inet from %s to <weft_gw_lan> tagged %s -> (%s)", ifc, mesh, pfTagVdev, ifc))
		}
		if len(c.Routes) > 0 {
			nat = append(nat, fmt.Sprintf("nat on %s inet from %s to <weft_gw_routes> -> (%s)", ifc, mesh, ifc))
		}
	}
	nextTable := 0
	for _, v := range c.Virtual {
		rdr = append(rdr, fmt.Sprintf("rdr on %s inet from any to %s tag %s -> %s", tun, v.SecureIP, pfTagVdev, v.LANIP))
		t, f := pfVdevFilter(tun, v, &nextTable)
		tables, filter = append(tables, t...), append(filter, f...)
	}
	if len(c.Routes) > 0 {
		filter = append(filter, fmt.Sprintf("pass in quick on %s inet from %s to <weft_gw_routes> keep state", tun, mesh))
	}
	filter = append(filter, fmt.Sprintf("block drop in quick on %s inet from any to ! %s", tun, self))
	if len(c.Virtual) > 0 {
		filter = append(filter, fmt.Sprintf("pass out quick on %s inet tagged %s keep state", tun, pfTagLAN))
	}
	filter = append(filter, fmt.Sprintf("block drop out quick on %s inet from ! %s to any", tun, self))

	var b strings.Builder
	fmt.Fprintf(&b, "# weft gateway on %s: generated, replaced on every change\n", tun)
	for _, section := range [][]string{tables, nat, rdr, filter} {
		for _, line := range section {
			b.WriteString(line + "\n")
		}
	}
	return b.String(), nil
}

// pfVdevFilter is a virtual device's PacketFilter as pass rules for the flows rdr sent to
// it, and the source tables they use, numbered from *next on: the firewall's pfPass with
// the device's LAN address as the destination, limited to packets its rdr sent.
func pfVdevFilter(tun string, v VirtualDevice, next *int) (tables, rules []string) {
	tagged := func(rule string) string {
		return strings.TrimSuffix(rule, " keep state") + " tagged " + pfTagVdev + " keep state"
	}
	if v.Filter.DefaultAllow {
		return nil, []string{fmt.Sprintf("pass in quick on %s inet from any to %s tagged %s keep state", tun, v.LANIP, pfTagVdev)}
	}
	for _, r := range v.Filter.Rules {
		sources := familySources(v.LANIP, r.Sources)
		if len(sources) == 0 {
			continue
		}
		table := fmt.Sprintf("weft_gw_%d", *next)
		*next++
		tables = append(tables, pfTable(table, sources))
		rules = append(rules, tagged(pfPass(tun, v.LANIP, table, r)))
	}
	return tables, append(rules, fmt.Sprintf("block drop in quick on %s inet from any to %s tagged %s", tun, v.LANIP, pfTagVdev))
}
