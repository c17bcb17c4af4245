//go:build !linux

package bind

import (
	"errors"
	"net"
	"net/netip"
)

// sendTTL: only Linux takes a per-packet TTL on sendmsg; changing the socket's TTL around
// one send would race with WireGuard's sends, so the probe is not sent.
func (b *Bind) sendTTL(addr netip.AddrPort, pkt []byte, ttl int) error {
	return errors.ErrUnsupported
}

func writeTTL(c *net.UDPConn, addr netip.AddrPort, pkt []byte, ttl int) error {
	return errors.ErrUnsupported
}
