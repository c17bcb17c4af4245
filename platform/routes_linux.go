package platform

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Linux routes through the tunnel with policy routing, as wg-quick and Tailscale do: every
// route goes into a table of weft's own, consulted after the main table has had its say
// on everything but the default route, so directly connected networks (and any specific
// route the system has) keep working, and excluded addresses never enter the tunnel:
//
//	ip rule add priority 5750 to EXCLUDED lookup main             # one per excluded address a route covers
//	ip rule add priority 5760 lookup main suppress_prefixlength 0 # the main table, except its default route
//	ip rule add priority 5770 lookup 5757                         # weft: ROUTES dev IFACE
//
// for each address family that has routes. Only rules at these priorities that look up
// main or weft's table, and the routes in that table, are weft's: SetRoutes reconciles
// them with what the kernel holds, so whatever a weftd that died left is cleaned up too.
// Table 5757 and priorities 57xx keep clear of Tailscale's (52, 52xx).
const (
	routeTable       = 5757 // weft's; `ip route show table 5757`
	rulePrioExclude  = 5750
	rulePrioMain     = 5760
	rulePrioTable    = 5770
	noSuppressPrefix = -1
	routeTableMain   = unix.RT_TABLE_MAIN
)

// linuxRule is one policy routing rule as weft makes it; comparable, so sets of rules
// are compared with ==.
type linuxRule struct {
	family   int // unix.AF_INET or unix.AF_INET6
	priority int
	dst      netip.Prefix // invalid: every destination
	table    int
	suppress int // suppress_prefixlength, or noSuppressPrefix
}

// linuxRoutePlan is what the kernel should hold for a route set: the rules, in the order
// they are added, and the destinations in weft's table.
func linuxRoutePlan(s routeSet) (rules []linuxRule, routes []netip.Prefix) {
	for _, family := range []int{unix.AF_INET, unix.AF_INET6} {
		is6 := family == unix.AF_INET6
		if !slices.ContainsFunc(s.routes, func(p netip.Prefix) bool { return p.Addr().Is6() == is6 }) {
			continue
		}
		for _, a := range s.covered() {
			if a.Is6() == is6 {
				rules = append(rules, linuxRule{family: family, priority: rulePrioExclude,
					dst: netip.PrefixFrom(a, a.BitLen()), table: routeTableMain, suppress: noSuppressPrefix})
			}
		}
		rules = append(rules,
			linuxRule{family: family, priority: rulePrioMain, table: routeTableMain, suppress: 0},
			linuxRule{family: family, priority: rulePrioTable, table: routeTable, suppress: noSuppressPrefix})
	}
	return rules, s.routes
}

// nlRouter installs routes and rules with netlink in the calling thread's namespace.
type nlRouter struct {
	log *slog.Logger

	mu     sync.Mutex // serialises SetRoutes and Close
	closed bool       // guarded by mu
}

func newRouter(log *slog.Logger) (Router, error) {
	// Fail now rather than at the first SetRoutes if policy routing is missing.
	if _, err := netlink.RuleList(unix.AF_INET); err != nil {
		return nil, fmt.Errorf("routes: list routing rules (kernel support, CAP_NET_ADMIN?): %w", err)
	}
	return &nlRouter{log: log}, nil
}

func (r *nlRouter) SetRoutes(iface string, routes []netip.Prefix, exclude []netip.Addr) error {
	s, err := checkRoutes(iface, routes, exclude)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("routes: set after close")
	}
	if err := r.reconcile(s); err != nil {
		return err
	}
	r.log.Info("routes set", "iface", iface, "routes", len(s.routes), "excluded", len(s.covered()))
	return nil
}

func (r *nlRouter) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	if err := r.reconcile(routeSet{}); err != nil {
		return err
	}
	r.closed = true
	r.log.Info("routes removed")
	return nil
}

// reconcile makes the kernel hold exactly s's rules and routes, in an order that never
// leaves a destination of both the old and new set without a route, nor an excluded
// address without its way around the tunnel: new rules, new routes (replaced in place
// when they exist), then old routes and old rules go.
func (r *nlRouter) reconcile(s routeSet) error {
	wantRules, wantRoutes := linuxRoutePlan(s)
	linkIndex := 0
	if len(wantRoutes) > 0 {
		link, err := netlink.LinkByName(s.iface)
		if err != nil {
			return fmt.Errorf("routes: find interface %s: %w", s.iface, err)
		}
		linkIndex = link.Attrs().Index
	}
	haveRules, err := weftRules()
	if err != nil {
		return err
	}
	for _, rule := range wantRules {
		if slices.Contains(haveRules, rule) {
			continue
		}
		if err := netlink.RuleAdd(rule.netlink()); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("routes: add rule %s: %w", rule, err)
		}
	}
	for _, p := range wantRoutes {
		if err := netlink.RouteReplace(tableRoute(p, linkIndex)); err != nil {
			return fmt.Errorf("routes: route %s via %s: %w", p, s.iface, err)
		}
	}
	haveRoutes, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: routeTable}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("routes: list table %d: %w", routeTable, err)
	}
	for _, rt := range haveRoutes {
		p, ok := ipNetPrefix(rt.Dst)
		if ok && slices.Contains(wantRoutes, p) && rt.LinkIndex == linkIndex {
			continue
		}
		if err := netlink.RouteDel(&rt); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("routes: remove route %v from table %d: %w", rt.Dst, routeTable, err)
		}
	}
	for _, rule := range haveRules {
		if slices.Contains(wantRules, rule) {
			continue
		}
		if err := netlink.RuleDel(rule.netlink()); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("routes: remove rule %s: %w", rule, err)
		}
	}
	return nil
}

// weftRules lists the rules of both families that are weft's: at weft's priorities,
// looking up main or weft's table, with no other selector than a destination.
func weftRules() ([]linuxRule, error) {
	all, err := netlink.RuleList(netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("routes: list routing rules: %w", err)
	}
	var out []linuxRule
	for _, nr := range all {
		switch {
		case nr.Priority != rulePrioExclude && nr.Priority != rulePrioMain && nr.Priority != rulePrioTable,
			nr.Table != routeTableMain && nr.Table != routeTable,
			nr.Src != nil, nr.Mark != 0, nr.Mask != nil, nr.IifName != "", nr.OifName != "",
			nr.Invert, nr.Goto >= 0, nr.IPProto != 0, nr.Dport != nil, nr.Sport != nil, nr.UIDRange != nil:
			continue
		}
		rule := linuxRule{family: nr.Family, priority: nr.Priority, table: nr.Table, suppress: nr.SuppressPrefixlen}
		if nr.Dst != nil {
			p, ok := ipNetPrefix(nr.Dst)
			if !ok {
				continue
			}
			rule.dst = p
		}
		out = append(out, rule)
	}
	return out, nil
}

func (r linuxRule) netlink() *netlink.Rule {
	nr := netlink.NewRule()
	nr.Family = r.family
	nr.Priority = r.priority
	nr.Table = r.table
	nr.SuppressPrefixlen = r.suppress
	if r.dst.IsValid() {
		nr.Dst = prefixIPNet(r.dst)
	}
	return nr
}

func (r linuxRule) String() string {
	to := "all"
	if r.dst.IsValid() {
		to = r.dst.String()
	}
	s := fmt.Sprintf("priority %d to %s lookup %d", r.priority, to, r.table)
	if r.suppress != noSuppressPrefix {
		s += fmt.Sprintf(" suppress_prefixlength %d", r.suppress)
	}
	return s
}

// tableRoute is dst through the tunnel interface in weft's table.
func tableRoute(dst netip.Prefix, linkIndex int) *netlink.Route {
	rt := &netlink.Route{LinkIndex: linkIndex, Dst: prefixIPNet(dst), Table: routeTable, Scope: netlink.SCOPE_LINK}
	if dst.Addr().Is6() {
		rt.Scope = netlink.SCOPE_UNIVERSE
	}
	return rt
}

func prefixIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func ipNetPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	ones, bits := n.Mask.Size()
	if bits == 0 || (bits == 128) != a.Is6() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones), true
}
