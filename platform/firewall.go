package platform

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"

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

// Forwarding is what this device forwards from the tunnel as a gateway: traffic from the
// mesh to the routes it serves, and flows to the virtual devices it hosts. The zero value
// forwards nothing. The gateway's own rules (Gateway) decide in detail what passes; the
// firewall only stops refusing what they govern, since a drop in either is final.
type Forwarding struct {
	Mesh    netip.Prefix   // the mesh range: where routed traffic must come from
	Routes  []netip.Prefix // approved routes this device serves; IPv4 only (the mesh is IPv4)
	Virtual []netip.Addr   // mesh addresses (SecureIPs) of the virtual devices it hosts
}

// ForwardingFirewall is a Firewall that can also let forwarded gateway traffic through.
// Firewalls of systems that cannot be gateways (Windows) do not implement it.
type ForwardingFirewall interface {
	Firewall
	// SetForwarding replaces what the firewall lets through as forwarded traffic and
	// enforces it with the filter of the last Apply, atomically; before any Apply it is
	// only remembered for it. Forwarded flows outside fwd stay refused unless the filter
	// allows everything. Invalid input is an error and changes nothing.
	SetForwarding(fwd Forwarding) error
}

// checkForwarding validates fwd and returns it normalised: IPv4 routes only, masked,
// sorted and without duplicates; virtual addresses sorted and without duplicates.
func checkForwarding(fwd Forwarding) (Forwarding, error) {
	if len(fwd.Routes) == 0 && len(fwd.Virtual) == 0 {
		return Forwarding{}, nil
	}
	if !fwd.Mesh.IsValid() || !fwd.Mesh.Addr().Is4() {
		return Forwarding{}, fmt.Errorf("firewall: mesh range %v: want an IPv4 prefix", fwd.Mesh)
	}
	out := Forwarding{Mesh: fwd.Mesh.Masked()}
	for _, p := range fwd.Routes {
		if !p.IsValid() {
			return Forwarding{}, fmt.Errorf("firewall: invalid forwarded route %v", p)
		}
		if p.Addr().Is4() {
			out.Routes = append(out.Routes, p.Masked())
		}
	}
	for _, a := range fwd.Virtual {
		if !a.Is4() || !out.Mesh.Contains(a) {
			return Forwarding{}, fmt.Errorf("firewall: virtual device address %v is not in the mesh range %v", a, out.Mesh)
		}
		out.Virtual = append(out.Virtual, a)
	}
	slices.SortFunc(out.Routes, comparePrefix)
	out.Routes = slices.Compact(out.Routes)
	slices.SortFunc(out.Virtual, netip.Addr.Compare)
	out.Virtual = slices.Compact(out.Virtual)
	if len(out.Routes) == 0 && len(out.Virtual) == 0 {
		return Forwarding{}, nil
	}
	return out, nil
}
