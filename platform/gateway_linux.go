package platform

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
)

// ipForwardSysctl is the IPv4 forwarding switch of the calling thread's namespace.
const ipForwardSysctl = "/proc/sys/net/ipv4/ip_forward"

// nftGateway keeps the gateway's rules in an nftables table of its own, replaced as a
// whole in one netlink transaction on every Apply. It acts in the network namespace of
// the calling thread (sockets and /proc/sys/net are resolved there), so weftd calls it
// from anywhere and tests from a thread switched into a lab namespace.
type nftGateway struct {
	log   *slog.Logger
	table string

	mu         sync.Mutex    // serialises Apply and Close and guards the fields below
	cfg        GatewayConfig // in force; empty when nothing is installed
	forwardWas string        // ip_forward before weft turned it on; "" when weft did not
	closed     bool
}

func newGateway(log *slog.Logger) (Gateway, error) {
	// Fail now rather than at the first Apply if nftables is missing or we lack the right.
	conn, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("gateway: open nftables: %w", err)
	}
	if _, err := conn.ListTablesOfFamily(nftables.TableFamilyIPv4); err != nil {
		return nil, fmt.Errorf("gateway: nftables not usable (kernel support, CAP_NET_ADMIN?): %w", err)
	}
	if _, err := os.ReadFile(ipForwardSysctl); err != nil {
		return nil, fmt.Errorf("gateway: read IPv4 forwarding setting: %w", err)
	}
	return &nftGateway{log: log, table: "weft-gw"}, nil
}

func (g *nftGateway) Apply(cfg GatewayConfig) error {
	c, err := checkGateway(cfg)
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errors.New("gateway: apply after close")
	}
	if c.empty() {
		return g.remove()
	}
	plan := nftGatewayRuleset(g.table, c)
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("gateway: open nftables: %w", err)
	}
	// Add (a no-op if it exists), delete and recreate the table in one batch, which the
	// kernel applies as one transaction.
	conn.AddTable(plan.table)
	conn.DelTable(plan.table)
	conn.AddTable(plan.table)
	for _, ch := range plan.chains {
		conn.AddChain(ch)
	}
	for _, r := range plan.rules {
		for _, s := range r.sets {
			if err := conn.AddSet(s.set, s.elems); err != nil {
				return fmt.Errorf("gateway: build set: %w", err)
			}
		}
		conn.AddRule(r.rule)
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("gateway: replace nftables table ip %s: %w", g.table, err)
	}
	old := g.cfg
	g.cfg = c
	g.cutStaleFlows(old, c)
	// Forwarding goes on only once the rules that limit it are in force.
	if err := g.enableForwarding(); err != nil {
		return err
	}
	g.log.Info("gateway rules applied", "table", "ip "+g.table, "iface", c.TunnelIface,
		"routes", len(c.Routes), "virtual_devices", len(c.Virtual))
	return nil
}

func (g *nftGateway) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	if err := g.remove(); err != nil {
		return err
	}
	g.closed = true
	return nil
}

// remove deletes the table, restores forwarding and cuts the flows the gateway carried.
func (g *nftGateway) remove() error {
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("gateway: open nftables: %w", err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: g.table}
	conn.AddTable(t) // so that deleting succeeds when nothing was applied
	conn.DelTable(t)
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("gateway: delete nftables table ip %s: %w", g.table, err)
	}
	if g.forwardWas != "" {
		if err := os.WriteFile(ipForwardSysctl, []byte(g.forwardWas+"\n"), 0o644); err != nil {
			return fmt.Errorf("gateway: restore IPv4 forwarding to %s: %w", g.forwardWas, err)
		}
		g.forwardWas = ""
	}
	old := g.cfg
	g.cfg = GatewayConfig{}
	g.cutStaleFlows(old, GatewayConfig{})
	g.log.Info("gateway rules removed", "table", "ip "+g.table)
	return nil
}

// enableForwarding turns IPv4 forwarding on, remembering what it was the first time.
func (g *nftGateway) enableForwarding() error {
	was, err := os.ReadFile(ipForwardSysctl)
	if err != nil {
		return fmt.Errorf("gateway: read IPv4 forwarding setting: %w", err)
	}
	if strings.TrimSpace(string(was)) == "1" {
		return nil
	}
	if err := os.WriteFile(ipForwardSysctl, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("gateway: turn IPv4 forwarding on: %w", err)
	}
	if g.forwardWas == "" {
		g.forwardWas = strings.TrimSpace(string(was))
	}
	return nil
}

// cutStaleFlows deletes the connection tracking entries of flows that went through a
// virtual device or route the new configuration no longer has: their NAT bindings and
// "established" state would otherwise carry them on for as long as they stay busy. Best
// effort: the rules are what matters, so a failure here is logged, not returned.
func (g *nftGateway) cutStaleFlows(old, cur GatewayConfig) {
	if old.empty() {
		return
	}
	n, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, netlink.FAMILY_V4, staleFlowFilter{old, cur})
	if err != nil {
		g.log.Warn("gateway: could not cut flows of removed routes or virtual devices", "err", err)
		return
	}
	if n > 0 {
		g.log.Info("gateway: cut flows of removed routes or virtual devices", "flows", n)
	}
}

type staleFlowFilter struct{ old, cur GatewayConfig }

func (f staleFlowFilter) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	return staleFlow(f.old, f.cur, flowAddr(flow.Forward.SrcIP), flowAddr(flow.Forward.DstIP),
		flowAddr(flow.Reverse.SrcIP), flowAddr(flow.Reverse.DstIP))
}

func flowAddr(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// staleFlow reports whether a flow, given by its original and reply addresses, was
// translated by old for a virtual device or route that cur does not have (the same).
func staleFlow(old, cur GatewayConfig, origSrc, origDst, replySrc, replyDst netip.Addr) bool {
	for _, v := range old.Virtual {
		kept := slices.ContainsFunc(cur.Virtual, func(w VirtualDevice) bool {
			return w.SecureIP == v.SecureIP && w.LANIP == v.LANIP
		})
		if kept {
			continue
		}
		if origDst == v.SecureIP && replySrc == v.LANIP || origSrc == v.LANIP && replyDst == v.SecureIP {
			return true
		}
	}
	if !old.MeshPrefix.IsValid() || !old.MeshPrefix.Contains(origSrc) || replyDst == origSrc || replySrc != origDst {
		return false // not from the mesh, not masqueraded, or to a DNATed destination
	}
	in := func(routes []netip.Prefix) bool {
		return slices.ContainsFunc(routes, func(p netip.Prefix) bool { return p.Contains(origDst) })
	}
	return in(old.Routes) && !in(cur.Routes)
}
