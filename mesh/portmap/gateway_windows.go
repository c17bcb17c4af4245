package portmap

import (
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/windows"
	"golang.zx2c4.com/wireguard/windows/tunnel/winipcfg"
)

// DefaultGateway is the next hop of the IPv4 default route Windows prefers (lowest route
// plus interface metric) among those that have one: a tunnel's default route is on-link.
func DefaultGateway() (netip.Addr, error) {
	rows, err := winipcfg.GetIPForwardTable2(windows.AF_INET)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("portmap: read the routing table: %w", err)
	}
	var best netip.Addr
	bestCost := uint64(1) << 63
	for i := range rows {
		row := &rows[i]
		hop := row.NextHop.Addr()
		if row.DestinationPrefix.Prefix().Bits() != 0 || !hop.Is4() || hop.IsUnspecified() {
			continue
		}
		ifRow, err := row.InterfaceLUID.IPInterface(windows.AF_INET)
		if err != nil || !ifRow.Connected {
			continue
		}
		if cost := uint64(row.Metric) + uint64(ifRow.Metric); cost < bestCost {
			best, bestCost = hop, cost
		}
	}
	if !best.IsValid() {
		return netip.Addr{}, errors.New("portmap: no IPv4 default route with a gateway")
	}
	return best, nil
}
