package mesh

import (
	"net"
	"net/netip"
)

// LocalEndpoints lists this host's usable unicast addresses with port, leaving out
// loopback, link-local and anything inside exclude (the mesh range itself).
func LocalEndpoints(port int, exclude netip.Prefix) []netip.AddrPort {
	var out []netip.AddrPort
	for _, p := range LocalPrefixes() {
		a := p.Addr()
		if exclude.IsValid() && exclude.Contains(a) {
			continue
		}
		out = append(out, netip.AddrPortFrom(a, uint16(port)))
	}
	return out
}

// LocalPrefixes lists the host's usable unicast addresses with their subnets: the
// networks this host reaches without a router.
func LocalPrefixes() []netip.Prefix {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Prefix
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsUnspecified() {
			continue
		}
		ones, _ := ipn.Mask.Size()
		out = append(out, netip.PrefixFrom(ip, ones))
	}
	return out
}
