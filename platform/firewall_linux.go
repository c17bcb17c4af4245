package platform

import (
	"fmt"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/google/nftables"

	"github.com/weftmesh/weft/wire"
)

// nftFirewall keeps weft's rules in a table of its own, which it replaces as a whole in
// one netlink transaction on every Apply; other tables are never touched.
type nftFirewall struct {
	log   *slog.Logger
	table string
	opts  []nftables.ConnOption // tests point these at another network namespace

	mu     sync.Mutex // serialises Apply, SetForwarding and Close, and guards the fields below
	closed bool
	fwd    Forwarding // what is let through as forwarded gateway traffic (checked)
	// last are the arguments of the last successful Apply; nil before one.
	last *nftApplied
}

// nftApplied is what an Apply put in force, for SetForwarding to enforce again.
type nftApplied struct {
	iface  string
	self   netip.Addr
	filter wire.PacketFilter
}

func newFirewall(log *slog.Logger) (Firewall, error) {
	return newNFTFirewall(log, "weft")
}

func newNFTFirewall(log *slog.Logger, table string, opts ...nftables.ConnOption) (*nftFirewall, error) {
	f := &nftFirewall{log: log, table: table, opts: opts}
	// Fail now rather than at the first Apply if nftables is missing or we lack the right.
	conn, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("firewall: open nftables: %w", err)
	}
	if _, err := conn.ListTablesOfFamily(nftables.TableFamilyINet); err != nil {
		return nil, fmt.Errorf("firewall: nftables not usable (kernel support, CAP_NET_ADMIN?): %w", err)
	}
	return f, nil
}

func (f *nftFirewall) Apply(iface string, self netip.Addr, filter wire.PacketFilter) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applyLocked(nftApplied{iface: iface, self: self, filter: filter}, f.fwd)
}

func (f *nftFirewall) SetForwarding(fwd Forwarding) error {
	c, err := checkForwarding(fwd)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return fmt.Errorf("firewall: set forwarding after close")
	}
	if f.last == nil {
		f.fwd = c
		return nil
	}
	return f.applyLocked(*f.last, c)
}

// applyLocked replaces the table with the rules for a and fwd. The caller holds mu.
func (f *nftFirewall) applyLocked(a nftApplied, fwd Forwarding) error {
	plan, err := nftRuleset(f.table, a.iface, a.self, a.filter, fwd)
	if err != nil {
		return err
	}
	if f.closed {
		return fmt.Errorf("firewall: apply after close")
	}
	iface, filter := a.iface, a.filter
	conn, err := nftables.New(f.opts...)
	if err != nil {
		return fmt.Errorf("firewall: open nftables: %w", err)
	}
	// Add (a no-op if it exists), delete and recreate the table in the same batch: the
	// kernel applies the batch as one transaction, so the old rules, whatever an earlier
	// run left, stay in force until the new ones are.
	conn.AddTable(plan.table)
	conn.DelTable(plan.table)
	conn.AddTable(plan.table)
	for _, c := range plan.chains {
		conn.AddChain(c)
	}
	for _, r := range plan.rules {
		for _, s := range r.sets {
			if err := conn.AddSet(s.set, s.elems); err != nil {
				return fmt.Errorf("firewall: build set: %w", err)
			}
		}
		conn.AddRule(r.rule)
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("firewall: replace nftables table inet %s: %w", f.table, err)
	}
	f.last, f.fwd = &a, fwd
	f.log.Info("firewall rules applied", "table", "inet "+f.table, "iface", iface,
		"default_allow", filter.DefaultAllow, "rules", len(filter.Rules),
		"forwarded_routes", len(fwd.Routes), "forwarded_virtual", len(fwd.Virtual))
	return nil
}

func (f *nftFirewall) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	conn, err := nftables.New(f.opts...)
	if err != nil {
		return fmt.Errorf("firewall: open nftables: %w", err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: f.table}
	conn.AddTable(t) // so that deleting succeeds when nothing was applied
	conn.DelTable(t)
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("firewall: delete nftables table inet %s: %w", f.table, err)
	}
	f.closed = true
	f.log.Info("firewall rules removed", "table", "inet "+f.table)
	return nil
}
