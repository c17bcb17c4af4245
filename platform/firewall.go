package platform

import (
	"log/slog"
	"net/netip"

	"github.com/weftmesh/weft/wire"
)

// Firewall enforces a device's inbound packet filter on its tunnel interface with the
// operating system's own firewall (nftables, pf, WFP). It adds rules of its own and never
// touches anyone else's; it only ever restricts traffic arriving on the tunnel, and
// replies to flows the device started always pass.
type Firewall interface {
	// Apply replaces weft's rules for the tunnel interface iface with filter, atomically:
	// at every moment either the old rules or the new ones are in force. self is the
	// device's mesh address; rules allow flows to it, and sources of another address
	// family than self's are ignored. An invalid filter is an error and changes nothing.
	Apply(iface string, self netip.Addr, filter wire.PacketFilter) error
	// Close removes every rule weft installed. The Firewall must not be used afterwards.
	Close() error
}

// NewFirewall returns the firewall of this operating system, or an error saying why it
// cannot be used here (not supported, no permission, kernel support missing).
func NewFirewall(log *slog.Logger) (Firewall, error) {
	return newFirewall(log)
}
