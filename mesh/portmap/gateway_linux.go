package portmap

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// DefaultGateway is the next hop of the main routing table's IPv4 default route with the
// lowest metric. The main table, not the route a lookup would pick: with an exit node,
// weft's own table routes the internet into the tunnel, but the gateway that maps ports
// is still the LAN's (weft's rules keep the main table's connected routes in front).
func DefaultGateway() (netip.Addr, error) {
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("portmap: read the routing table: %w", err)
	}
	var best netip.Addr
	prio := -1
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		gw, ok := netip.AddrFromSlice(r.Gw)
		if !ok || !gw.Unmap().Is4() || gw.IsUnspecified() {
			continue
		}
		if prio < 0 || r.Priority < prio {
			best, prio = gw.Unmap(), r.Priority
		}
	}
	if !best.IsValid() {
		return netip.Addr{}, errors.New("portmap: no IPv4 default route with a gateway")
	}
	return best, nil
}
