package platform

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/weftmesh/weft/wire"
)

// Helpers shared by the firewall rule generators of every OS; pure, so they are tested
// on any OS.

// checkApply validates Apply's arguments; iface must be a plain interface name, because
// the Linux and macOS firewalls put it into rules as text.
func checkApply(iface string, self netip.Addr, filter wire.PacketFilter) error {
	if err := checkIfaceName(iface); err != nil {
		return err
	}
	return checkFilter(self, filter)
}

// checkFilter validates the address and filter Apply was given.
func checkFilter(self netip.Addr, filter wire.PacketFilter) error {
	if !self.IsValid() || self.Is4In6() {
		return fmt.Errorf("firewall: invalid mesh address %v for this device", self)
	}
	if err := filter.Validate(); err != nil {
		return fmt.Errorf("firewall: %w", err)
	}
	return nil
}

// checkIfaceName accepts 1-15 letters, digits, '_', '-' and '.': what Linux (IFNAMSIZ) and
// macOS (utunN) names look like, and nothing that could break out of a rule's syntax.
func checkIfaceName(name string) error {
	ok := name != "" && len(name) <= 15
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.'
	}
	if !ok {
		return fmt.Errorf("firewall: invalid interface name %q", name)
	}
	return nil
}

// familySources returns the sources of self's address family, masked, sorted and without
// duplicates; the others can never reach self.
func familySources(self netip.Addr, sources []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range sources {
		if p.Addr().Is4() == self.Is4() {
			out = append(out, p.Masked())
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(out)
}

// addrRange is the inclusive range first..last.
type addrRange struct{ first, last netip.Addr }

// addrRanges turns sorted prefixes into sorted, disjoint ranges, joining those that
// overlap or touch.
func addrRanges(prefixes []netip.Prefix) []addrRange {
	var out []addrRange
	for _, p := range prefixes {
		r := addrRange{p.Masked().Addr(), lastAddr(p)}
		if n := len(out); n > 0 {
			prev := &out[n-1]
			next := prev.last.Next() // invalid after the very last address
			if r.first.Compare(prev.last) <= 0 || next.IsValid() && r.first == next {
				if r.last.Compare(prev.last) > 0 {
					prev.last = r.last
				}
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// lastAddr is the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	b := a.AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	last, _ := netip.AddrFromSlice(b)
	return last
}

// mergePorts sorts port ranges and joins those that overlap or touch.
func mergePorts(in []wire.PortRange) []wire.PortRange {
	rs := slices.Clone(in)
	slices.SortFunc(rs, func(a, b wire.PortRange) int { return int(a.First) - int(b.First) })
	var out []wire.PortRange
	for _, r := range rs {
		if n := len(out); n > 0 && uint32(r.First) <= uint32(out[n-1].Last)+1 {
			out[n-1].Last = max(out[n-1].Last, r.Last)
			continue
		}
		out = append(out, r)
	}
	return out
}
