package platform

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"

	"github.com/weftmesh/weft/wire"
)

// Gateway makes this device forward traffic for its peers: to the networks it serves
// (subnet routes, or the internet as an exit node) and to and from the LAN devices it
// projects into the mesh as virtual devices. Its rules and settings are its own; it
// touches nobody else's, the device firewall's included. Both see every packet and a
// drop in either is final, so forwarded flows need the firewall's leave as well.
type Gateway interface {
	// Apply replaces the gateway's whole configuration with cfg, atomically: at every
	// moment either the old rules or the new ones are in force. It turns IP forwarding on
	// while there is something to forward; a cfg with no routes and no virtual devices
	// removes everything, as Close does, but leaves the Gateway usable. New flows through
	// a route or virtual device that cfg no longer has stop at once; on Linux running ones
	// are cut too (their conntrack entries go), while a changed filter, like the
	// firewall's, lets running flows finish. Invalid input is an error and changes
	// nothing.
	Apply(cfg GatewayConfig) error
	// Close removes every rule the Gateway installed and restores the forwarding setting
	// it found. The Gateway must not be used afterwards.
	Close() error
}

// GatewayConfig is what a gateway serves. The mesh is IPv4: routes of another family
// cannot be reached from it and are ignored.
type GatewayConfig struct {
	TunnelIface string       // the mesh interface (weft0)
	MeshPrefix  netip.Prefix // the mesh range, 100.64.0.0/10
	Self        netip.Addr   // the gateway's own mesh address
	// Routes are the networks this device serves (approved ones only): traffic from the
	// mesh to them is forwarded and source-NATed (masquerade) out of whatever non-tunnel
	// interface the system routes it through; 0.0.0.0/0 makes an exit node. Traffic that
	// stays in the mesh is never translated, and mesh traffic to anywhere else is not
	// forwarded.
	Routes []netip.Prefix
	// Virtual are the LAN devices this gateway projects into the mesh.
	Virtual []VirtualDevice
}

// VirtualDevice is a LAN device that cannot run weft, projected into the mesh with 1:1
// NAT. Mesh traffic to SecureIP goes to LANIP, with the gateway's LAN address as its
// source (the device has no route to the mesh); traffic the device sends to a mesh
// address leaves with SecureIP as its source, so peers see a stable address of its own
// and the policy applies to it as to any device. Only registered LAN addresses may send
// into the mesh.
type VirtualDevice struct {
	SecureIP netip.Addr // its mesh address, in MeshPrefix
	LANIP    netip.Addr // its real address on the gateway's LAN
	// Filter is its inbound packet filter, enforced on new flows from the mesh; the zero
	// filter allows none.
	Filter wire.PacketFilter
}

// NewGateway returns the gateway of this operating system, or an error saying why it
// cannot be used here. On Linux it acts in the network namespace of the calling thread.
func NewGateway(log *slog.Logger) (Gateway, error) {
	return newGateway(log)
}

// checkGateway validates cfg and returns it normalised: IPv4 routes only, masked, sorted
// and without duplicates; virtual devices sorted by SecureIP.
func checkGateway(cfg GatewayConfig) (GatewayConfig, error) {
	if err := checkIfaceName(cfg.TunnelIface); err != nil {
		return GatewayConfig{}, fmt.Errorf("gateway: invalid tunnel interface name %q", cfg.TunnelIface)
	}
	mesh := cfg.MeshPrefix
	if !mesh.IsValid() || !mesh.Addr().Is4() {
		return GatewayConfig{}, fmt.Errorf("gateway: mesh range %v: want an IPv4 prefix", mesh)
	}
	mesh = mesh.Masked()
	if !cfg.Self.Is4() || !mesh.Contains(cfg.Self) {
		return GatewayConfig{}, fmt.Errorf("gateway: own address %v is not in the mesh range %v", cfg.Self, mesh)
	}
	out := GatewayConfig{TunnelIface: cfg.TunnelIface, MeshPrefix: mesh, Self: cfg.Self}
	for _, p := range cfg.Routes {
		if !p.IsValid() {
			return GatewayConfig{}, fmt.Errorf("gateway: invalid route %v", p)
		}
		if p.Addr().Is4() {
			out.Routes = append(out.Routes, p.Masked())
		}
	}
	slices.SortFunc(out.Routes, comparePrefix)
	out.Routes = slices.Compact(out.Routes)

	secure, lan := map[netip.Addr]bool{}, map[netip.Addr]bool{}
	for _, v := range cfg.Virtual {
		switch {
		case !v.SecureIP.Is4() || !mesh.Contains(v.SecureIP):
			return GatewayConfig{}, fmt.Errorf("gateway: virtual device address %v is not in the mesh range %v", v.SecureIP, mesh)
		case v.SecureIP == cfg.Self:
			return GatewayConfig{}, fmt.Errorf("gateway: virtual device address %v is the gateway's own", v.SecureIP)
		case secure[v.SecureIP]:
			return GatewayConfig{}, fmt.Errorf("gateway: two virtual devices with address %v", v.SecureIP)
		case !v.LANIP.Is4() || mesh.Contains(v.LANIP) || !v.LANIP.IsGlobalUnicast():
			return GatewayConfig{}, fmt.Errorf("gateway: virtual device %v: LAN address %v: want an IPv4 unicast address outside the mesh range", v.SecureIP, v.LANIP)
		case lan[v.LANIP]:
			return GatewayConfig{}, fmt.Errorf("gateway: two virtual devices with LAN address %v", v.LANIP)
		}
		if err := v.Filter.Validate(); err != nil {
			return GatewayConfig{}, fmt.Errorf("gateway: virtual device %v: %w", v.SecureIP, err)
		}
		secure[v.SecureIP], lan[v.LANIP] = true, true
		out.Virtual = append(out.Virtual, v)
	}
	slices.SortFunc(out.Virtual, func(a, b VirtualDevice) int { return a.SecureIP.Compare(b.SecureIP) })
	return out, nil
}

// empty reports whether cfg has nothing to forward.
func (cfg GatewayConfig) empty() bool { return len(cfg.Routes) == 0 && len(cfg.Virtual) == 0 }

// lanIPs are the registered LAN addresses, sorted.
func (cfg GatewayConfig) lanIPs() []netip.Addr {
	var out []netip.Addr
	for _, v := range cfg.Virtual {
		out = append(out, v.LANIP)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}
