package platform

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
)

// Router sends chosen destinations through the tunnel: the routes to the networks behind
// the gateways this device uses, and the internet when it uses an exit node.
type Router interface {
	// SetRoutes makes exactly routes go through the tunnel interface iface, replacing the
	// set of the previous call. New routes are in place before old ones go, so a
	// destination in both sets always has a route. A default route (0.0.0.0/0, ::/0) makes
	// the tunnel the device's exit to everywhere except its directly connected networks
	// (the LAN stays reachable) and the addresses in exclude, which keep going the way they
	// went before: the broker, the relays and the peers' public endpoints, whose packets
	// carry the tunnel itself. Where a route overlaps a network the device is directly
	// connected to, the connected network wins on Linux (policy routing), the longer prefix
	// elsewhere. Empty routes remove everything. Invalid input is an error and changes
	// nothing; an error from the system may leave the new set partly installed, and
	// calling SetRoutes again (or Close) repairs it.
	SetRoutes(iface string, routes []netip.Prefix, exclude []netip.Addr) error
	// Close removes every route and rule the Router installed, and nothing else. The
	// Router must not be used afterwards.
	Close() error
}

// NewRouter returns the router of this operating system, or an error saying why it cannot
// be used here. On Linux it acts in the network namespace of the calling thread.
func NewRouter(log *slog.Logger) (Router, error) {
	return newRouter(log)
}

// routeSet is SetRoutes' arguments, checked and normalised: masked prefixes and unmapped
// addresses, sorted, without duplicates.
type routeSet struct {
	iface   string
	routes  []netip.Prefix
	exclude []netip.Addr
}

// checkRoutes validates and normalises SetRoutes' arguments.
func checkRoutes(iface string, routes []netip.Prefix, exclude []netip.Addr) (routeSet, error) {
	if err := checkIfaceName(iface); err != nil {
		return routeSet{}, fmt.Errorf("routes: invalid interface name %q", iface)
	}
	s := routeSet{iface: iface}
	for _, p := range routes {
		if !p.IsValid() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
			return routeSet{}, fmt.Errorf("routes: invalid route %v", p)
		}
		s.routes = append(s.routes, p.Masked())
	}
	for _, a := range exclude {
		if !a.IsValid() {
			return routeSet{}, fmt.Errorf("routes: invalid excluded address %v", a)
		}
		s.exclude = append(s.exclude, a.Unmap().WithZone(""))
	}
	slices.SortFunc(s.routes, comparePrefix)
	s.routes = slices.Compact(s.routes)
	slices.SortFunc(s.exclude, netip.Addr.Compare)
	s.exclude = slices.Compact(s.exclude)
	return s, nil
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// covered returns the excluded addresses that some route would send into the tunnel: only
// those need a way around it.
func (s routeSet) covered() []netip.Addr {
	var out []netip.Addr
	for _, a := range s.exclude {
		if slices.ContainsFunc(s.routes, func(p netip.Prefix) bool { return p.Contains(a) }) {
			out = append(out, a)
		}
	}
	return out
}

// sysRoute is one entry of a single routing table (macOS, Windows): dst through the
// tunnel, or, when bypass is set, a host route for an excluded address through the
// gateway of the system's default route.
type sysRoute struct {
	dst    netip.Prefix
	bypass bool
}

// splitRoutes turns a route set into entries of one routing table. A default route becomes
// its two halves (0.0.0.0/1 and 128.0.0.0/1, ::/1 and 8000::/1), which beat the system's
// default route by being longer without replacing it, so the default route stays there
// to be looked up for the excluded addresses' host routes and comes back untouched.
func splitRoutes(s routeSet) []sysRoute {
	var out []sysRoute
	for _, p := range s.routes {
		if p.Bits() != 0 {
			out = append(out, sysRoute{dst: p})
			continue
		}
		half := netip.AddrFrom4([4]byte{128})
		if p.Addr().Is6() {
			half = netip.AddrFrom16([16]byte{0x80})
		}
		out = append(out, sysRoute{dst: netip.PrefixFrom(p.Addr(), 1)}, sysRoute{dst: netip.PrefixFrom(half, 1)})
	}
	bypass := map[netip.Prefix]bool{}
	for _, a := range s.covered() {
		host := netip.PrefixFrom(a, a.BitLen())
		bypass[host] = true
		out = append(out, sysRoute{dst: host, bypass: true})
	}
	// An excluded address routed as a host of its own stays outside: its packets carry
	// the tunnel.
	out = slices.DeleteFunc(out, func(r sysRoute) bool { return !r.bypass && bypass[r.dst] })
	slices.SortFunc(out, func(a, b sysRoute) int { return comparePrefix(a.dst, b.dst) })
	return slices.Compact(out)
}
