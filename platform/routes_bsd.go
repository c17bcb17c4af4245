package platform

import (
	"fmt"
	"net/netip"
	"strings"
)

// macOS route(8) command lines for SetRoutes, built without I/O so they are tested on any
// OS. macOS has one routing table: routes through the tunnel are interface routes on the
// utun, a default route is split in halves (splitRoutes), and each excluded address a
// route covers gets a host route through the gateway of the system's own default route.

// bsdVia is where the system's default route of one family goes: a gateway address, or,
// on point-to-point links, just an interface.
type bsdVia struct {
	gateway netip.Addr
	iface   string
}

func (v bsdVia) args() []string {
	if v.gateway.IsValid() {
		return []string{v.gateway.String()}
	}
	return []string{"-interface", v.iface}
}

// bsdRouteArgs is the argument list of /sbin/route for op ("add", "change" or "delete")
// on r: through the tunnel interface, or, for a bypass host route, through via.
func bsdRouteArgs(op string, r sysRoute, tunnel string, via bsdVia) []string {
	family := "-inet"
	if r.dst.Addr().Is6() {
		family = "-inet6"
	}
	args := []string{"-q", "-n", op, family}
	if r.dst.IsSingleIP() {
		args = append(args, "-host", r.dst.Addr().String())
	} else {
		args = append(args, "-net", r.dst.String())
	}
	if r.bypass {
		return append(args, via.args()...)
	}
	return append(args, "-interface", tunnel)
}

// bsdDefaultVia finds the default route of a family in the output of `netstat -rn -f
// inet` (or inet6), skipping the tunnel's own and interface-scoped ones (flag I), which
// only serve sockets bound to their interface. Columns are found by the header, whose
// layout differs between macOS versions.
func bsdDefaultVia(netstat, tunnel string) (bsdVia, error) {
	col := map[string]int{}
	for line := range strings.Lines(netstat) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if f[0] == "Destination" {
			clear(col)
			for i, name := range f {
				col[name] = i
			}
			continue
		}
		gi, ok1 := col["Gateway"]
		fi, ok2 := col["Flags"]
		ni, ok3 := col["Netif"]
		if f[0] != "default" || !ok1 || !ok2 || !ok3 || len(f) <= max(gi, fi, ni) {
			continue
		}
		gw, flags, netif := f[gi], f[fi], f[ni]
		if netif == tunnel || strings.Contains(flags, "I") {
			continue
		}
		if a, err := netip.ParseAddr(gw); err == nil {
			return bsdVia{gateway: a}, nil
		}
		// "link#12" or a MAC address: the route points at the interface itself.
		return bsdVia{iface: netif}, nil
	}
	return bsdVia{}, fmt.Errorf("routes: no default route outside %s to keep excluded addresses out of the tunnel", tunnel)
}
