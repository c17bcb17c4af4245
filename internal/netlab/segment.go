package netlab

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
)

// Segment is one layer-2 network: a bridge in some lab namespace with an IPv4 range, and a
// gateway when a router serves it.
type Segment struct {
	lab     *Lab
	name    string
	ns      string // namespace holding the bridge
	bridge  string
	prefix  netip.Prefix
	gateway netip.Addr // invalid on the internet

	// next is the host number of the next address handed out; guarded by lab.mu.
	next uint32
}

// Name is the segment's name: "inet" for the internet, else the router's name.
func (s *Segment) Name() string { return s.name }

// Prefix is the segment's address range.
func (s *Segment) Prefix() netip.Prefix { return s.prefix }

// Gateway is the router's address on the segment; it is invalid on the internet, where every
// host is on-link.
func (s *Segment) Gateway() netip.Addr { return s.gateway }

// newSegment creates a bridge in namespace ns and installs the lab's blackholes on it.
func (l *Lab) newSegment(name, ns, bridge string, prefix netip.Prefix, gateway netip.Addr) *Segment {
	l.t.Helper()
	s := &Segment{lab: l, name: name, ns: ns, bridge: bridge, prefix: prefix, gateway: gateway, next: 2}
	l.ip("-n", ns, "link", "add", bridge, "type", "bridge")
	l.ip("-n", ns, "link", "set", bridge, "up")
	// A bridge-family table sees every frame entering the bridge from a port (prerouting)
	// and every frame the namespace itself sends onto it (output), routed or bridged.
	l.nft(ns, `table bridge netlab {
	chain pre {
		type filter hook prerouting priority filter; policy accept;
	}
	chain out {
		type filter hook output priority filter; policy accept;
	}
}
`)
	l.mu.Lock()
	l.segments = append(l.segments, s)
	holes := append([][2]netip.Addr(nil), l.blackholes...)
	l.mu.Unlock()
	for _, h := range holes {
		l.nft(ns, blackholeRules(h[0], h[1]))
	}
	return s
}

// allocAddr hands out the segment's next free address.
func (s *Segment) allocAddr() netip.Addr {
	s.lab.t.Helper()
	s.lab.mu.Lock()
	n := s.next
	s.next++
	s.lab.mu.Unlock()
	base := s.prefix.Masked().Addr().As4()
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], binary.BigEndian.Uint32(base[:])+n)
	a := netip.AddrFrom4(b)
	size := uint32(1) << (32 - s.prefix.Bits())
	if n >= size-1 { // the last address is broadcast
		s.lab.t.Fatalf("netlab: segment %s (%s) has no free address left", s.name, s.prefix)
	}
	return a
}

// attach connects namespace ns to the segment with a veth pair whose end in ns is ifname and
// whose end on the bridge is "p-" + name, gives it the next free address, and routes by
// default through the segment's gateway when it has one. It returns the address.
func (s *Segment) attach(ns, name, ifname string) netip.Addr {
	l := s.lab
	l.t.Helper()
	addr := s.allocAddr()
	port := "p-" + name
	// Both ends are created directly in their namespaces: nothing ever exists in the root
	// namespace, where names from parallel labs could collide.
	l.ip("-n", s.ns, "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", ns)
	l.ip("-n", s.ns, "link", "set", port, "master", s.bridge, "up")
	l.ip("-n", ns, "addr", "add", netip.PrefixFrom(addr, s.prefix.Bits()).String(), "dev", ifname)
	l.ip("-n", ns, "link", "set", ifname, "up")
	if s.gateway.IsValid() {
		l.ip("-n", ns, "route", "add", "default", "via", s.gateway.String(), "dev", ifname)
	}
	return addr
}

// blackholeRules is an nft script dropping traffic between a and b in a bridge namespace.
func blackholeRules(a, b netip.Addr) string {
	a, b = a.Unmap(), b.Unmap()
	var sb strings.Builder
	for _, chain := range []string{"pre", "out"} {
		for _, pair := range [][2]netip.Addr{{a, b}, {b, a}} {
			fmt.Fprintf(&sb, "add rule bridge netlab %s %s saddr %s %s daddr %s counter drop\n",
				chain, ipFamily(pair[0]), pair[0], ipFamily(pair[1]), pair[1])
		}
	}
	return sb.String()
}

// ipFamily is the nft payload keyword for an address: ip or ip6.
func ipFamily(a netip.Addr) string {
	if a.Unmap().Is4() {
		return "ip"
	}
	return "ip6"
}
