package bind

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sendTTL sends pkt to addr on the WireGuard socket with an IP_TTL (IPv4) or
// IPV6_HOPLIMIT (IPv6) control message: the TTL applies to this one datagram, so it
// cannot race with WireGuard's own sends the way changing the socket option would.
func (b *Bind) sendTTL(addr netip.AddrPort, pkt []byte, ttl int) error {
	v4, v6 := b.inner.UDPConns()
	c := v4
	if addr.Addr().Is6() {
		c = v6
	}
	if c == nil {
		return fmt.Errorf("bind: send to %s: %w", addr, net.ErrClosed)
	}
	return writeTTL(c, addr, pkt, ttl)
}

// writeTTL sends pkt to addr on c with a TTL for this one datagram.
func writeTTL(c *net.UDPConn, addr netip.AddrPort, pkt []byte, ttl int) error {
	level, typ := unix.IPPROTO_IP, unix.IP_TTL
	if addr.Addr().Is6() {
		level, typ = unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT
	}
	oob := make([]byte, unix.CmsgSpace(4))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = int32(level), int32(typ)
	h.SetLen(unix.CmsgLen(4))
	binary.NativeEndian.PutUint32(oob[unix.CmsgLen(0):], uint32(ttl))
	if _, _, err := c.WriteMsgUDPAddrPort(pkt, oob, addr); err != nil {
		return fmt.Errorf("bind: send to %s with TTL %d: %w", addr, ttl, err)
	}
	return nil
}
