package netlab

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
)

// NATKind is how a router translates and filters.
type NATKind int

const (
	// NATHome is a typical home router: masquerade on the WAN (the source port is kept when
	// free, so the mapping does not depend on the destination), and only replies or related
	// traffic come in from the WAN, to the router itself or forwarded.
	NATHome NATKind = iota + 1
	// NATNoInputFilter masquerades but filters nothing: unsolicited packets reach the router.
	NATNoInputFilter
	// NATSymmetric is NATHome with a random source port per connection, so each destination
	// sees a different mapping (endpoint-dependent mapping): hole punching cannot work.
	NATSymmetric
)

func (k NATKind) String() string {
	switch k {
	case NATHome:
		return "home"
	case NATNoInputFilter:
		return "no-input-filter"
	case NATSymmetric:
		return "symmetric"
	}
	return fmt.Sprintf("NATKind(%d)", int(k))
}

// wanIf and lanIf are the router's interface names (namespaces keep them apart).
const (
	wanIf = "wan0"
	lanIf = "lan0"
)

// Router is a NAT router: a namespace with a WAN leg on one segment and a LAN bridge of its
// own. The embedded Host is the router itself; its Addr is the WAN address.
type Router struct {
	*Host
	nat  NATKind
	lan  *Segment
	upnp *miniupnpd // the port mapping service (portmap.go); nil without one
}

// RouterOptions configures AddRouterWith.
type RouterOptions struct {
	NAT NATKind
	// LAN is the LAN's IPv4 range, the router being its first address. Zero means the lab's
	// next 192.168.N.0/24. Two routers may use the same range, as two homes often do.
	LAN netip.Prefix
	// PortMapping runs miniupnpd on the router, offering PCP and NAT-PMP to its LAN: hosts
	// may have a public port forwarded to them (portmap.go).
	PortMapping bool
}

// AddRouter adds a router named name with its WAN on wan and a new LAN 192.168.N.0/24 behind
// it, the router being .1, and returns the router and its LAN. On a segment with a gateway
// (another router's LAN: double NAT, carrier-grade NAT) the router routes by default through
// that gateway.
func (l *Lab) AddRouter(name string, wan *Segment, nat NATKind) (*Router, *Segment) {
	l.t.Helper()
	return l.AddRouterWith(name, wan, RouterOptions{NAT: nat})
}

// AddRouterWith is AddRouter with a chosen LAN range.
func (l *Lab) AddRouterWith(name string, wan *Segment, opts RouterOptions) (*Router, *Segment) {
	l.t.Helper()
	if opts.NAT < NATHome || opts.NAT > NATSymmetric {
		l.t.Fatalf("netlab: router %s: unknown NAT kind %v", name, opts.NAT)
	}
	if _, err := exec.LookPath("nft"); err != nil {
		l.t.Fatalf("netlab: router %s: nft not found (Debian package nftables): run ./build.sh deps", name)
	}
	lan := opts.LAN
	if !lan.IsValid() {
		lan = l.nextLANPrefix(wan.prefix)
	}
	lan = lan.Masked()
	if !lan.Addr().Is4() || lan.Bits() > 30 {
		l.t.Fatalf("netlab: router %s: LAN %s: want an IPv4 range of /30 or larger", name, lan)
	}
	if lan.Overlaps(wan.prefix) {
		l.t.Fatalf("netlab: router %s: LAN %s overlaps its WAN %s", name, lan, wan.prefix)
	}

	l.reserveName(name)
	h := &Host{lab: l, name: name, ns: l.addNamespace(name), seg: wan, ifname: wanIf}
	h.addr = wan.attach(h.ns, name, wanIf)
	l.sysctl(h.ns, "net/ipv4/ip_forward", "1")

	gw := lan.Addr().Next()
	seg := l.newSegment(name, h.ns, lanIf, lan, gw)
	l.ip("-n", h.ns, "addr", "add", netip.PrefixFrom(gw, lan.Bits()).String(), "dev", lanIf)
	l.nft(h.ns, routerRules(opts.NAT, opts.PortMapping))

	r := &Router{Host: h, nat: opts.NAT, lan: seg}
	if opts.PortMapping {
		r.upnp = l.startMiniupnpd(r)
	}
	l.mu.Lock()
	l.routers = append(l.routers, r)
	l.mu.Unlock()
	return r, seg
}

// nextLANPrefix picks the next default LAN that does not overlap the WAN.
func (l *Lab) nextLANPrefix(wan netip.Prefix) netip.Prefix {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.nextLAN < 255 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(l.nextLAN), 0}), 24)
		l.nextLAN++
		if !p.Overlaps(wan) {
			return p
		}
	}
	l.t.Fatalf("netlab: no default LAN range left (192.168.1-254.0/24 used)")
	return netip.Prefix{}
}

// routerRules is the router's nftables ruleset. Regular chains hold the rules added later:
// drops (DropTo) and udpblock (BlockUDP), and with portMap miniupnpd's forwarding rules,
// which pass before the WAN filter drops what nobody asked for.
func routerRules(nat NATKind, portMap bool) string {
	filter := nat == NATHome || nat == NATSymmetric
	masq := "masquerade"
	if nat == NATSymmetric {
		masq = "masquerade random,fully-random"
	}
	var sb strings.Builder
	sb.WriteString("table inet netlab {\n")
	sb.WriteString("\tchain drops {\n\t}\n")
	sb.WriteString("\tchain udpblock {\n\t}\n")
	if portMap {
		fmt.Fprintf(&sb, "\tchain %s {\n\t}\n\tchain %s {\n\t}\n\tchain %s {\n\t}\n", upnpForward, upnpPre, upnpPost)
		sb.WriteString("\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n")
		fmt.Fprintf(&sb, "\t\tjump %s\n\t}\n", upnpPre)
	}

	sb.WriteString("\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n")
	sb.WriteString("\t\tjump drops\n")
	if filter {
		sb.WriteString("\t\tct state established,related accept\n")
		fmt.Fprintf(&sb, "\t\tiifname %q counter drop\n", wanIf)
	}
	sb.WriteString("\t}\n")

	sb.WriteString("\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n")
	sb.WriteString("\t\tjump drops\n\t\tjump udpblock\n")
	if filter {
		sb.WriteString("\t\tct state established,related accept\n")
		if portMap {
			fmt.Fprintf(&sb, "\t\tjump %s\n", upnpForward)
		}
		fmt.Fprintf(&sb, "\t\tiifname %q counter drop\n", wanIf)
	}
	sb.WriteString("\t}\n")

	sb.WriteString("\tchain output {\n\t\ttype filter hook output priority filter; policy accept;\n")
	sb.WriteString("\t\tjump drops\n\t\tjump udpblock\n\t}\n")

	sb.WriteString("\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n")
	if portMap {
		fmt.Fprintf(&sb, "\t\tjump %s\n", upnpPost)
	}
	fmt.Fprintf(&sb, "\t\toifname %q %s\n\t}\n", wanIf, masq)
	sb.WriteString("}\n")
	return sb.String()
}

// NAT is the router's NAT kind.
func (r *Router) NAT() NATKind { return r.nat }

// LAN is the segment behind the router.
func (r *Router) LAN() *Segment { return r.lan }

// BlockUDP drops all UDP leaving through the WAN, forwarded or the router's own, as
// networks that allow only TCP do.
func (r *Router) BlockUDP() {
	r.lab.t.Helper()
	r.lab.nft(r.ns, fmt.Sprintf("add rule inet netlab udpblock oifname %q meta l4proto udp counter drop\n", wanIf))
}

// UnblockUDP undoes BlockUDP.
func (r *Router) UnblockUDP() {
	r.lab.t.Helper()
	r.lab.nft(r.ns, "flush chain inet netlab udpblock\n")
}

// DropTo drops all traffic between the router (and everything behind it) and addr.
func (r *Router) DropTo(addr netip.Addr) {
	r.lab.t.Helper()
	addr = addr.Unmap()
	f := ipFamily(addr)
	r.lab.nft(r.ns, fmt.Sprintf("add rule inet netlab drops %s daddr %s counter drop\nadd rule inet netlab drops %s saddr %s counter drop\n", f, addr, f, addr))
}

// Renumber gives the router a new WAN address on the same segment, as an ISP reassigning it
// or a laptop's hotspot changing would, and flushes its connection tracking so that every
// mapping starts afresh. It returns the new address.
func (r *Router) Renumber() netip.Addr {
	l := r.lab
	l.t.Helper()
	if _, err := exec.LookPath("conntrack"); err != nil {
		l.t.Fatalf("netlab: renumber %s: conntrack not found (Debian package conntrack): run ./build.sh deps", r.name)
	}
	old := r.Addr()
	addr := r.seg.allocAddr()
	bits := r.seg.prefix.Bits()
	// The old address goes first: deleting a primary address also deletes secondaries.
	l.ip("-n", r.ns, "addr", "del", netip.PrefixFrom(old, bits).String(), "dev", wanIf)
	l.ip("-n", r.ns, "addr", "add", netip.PrefixFrom(addr, bits).String(), "dev", wanIf)
	if gw := r.seg.gateway; gw.IsValid() {
		l.ip("-n", r.ns, "route", "replace", "default", "via", gw.String(), "dev", wanIf)
	}
	l.must("ip", "netns", "exec", r.ns, "conntrack", "-F")
	r.mu.Lock()
	r.addr = addr
	r.mu.Unlock()
	if r.upnp != nil {
		r.upnp.readvertise(l)
	}
	return addr
}
