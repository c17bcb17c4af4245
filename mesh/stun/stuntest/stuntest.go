// Package stuntest runs STUN binding servers for tests, answering as the broker does.
package stuntest

import (
	"net"
	"net/netip"
	"testing"

	"github.com/weftmesh/weft/mesh/stun"
)

// Server answers binding requests on a fresh 127.0.0.1 port until the test ends and
// returns that address.
func Server(t testing.TB) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if tx, err := stun.ParseRequest(buf[:n]); err == nil {
				c.WriteToUDPAddrPort(stun.Response(tx, from), from)
			}
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}
