// Package platform configures the operating system around weft's tunnel: interface
// addresses and routes (and, later, the firewall), one file per OS.
package platform

import (
	"net/netip"

	"golang.zx2c4.com/wireguard/tun"
)

// ConfigureInterface gives the tunnel interface behind dev the mesh address addr (whose
// prefix is the mesh range, so the route to every peer comes with it) and brings it up.
// It replaces any address the interface had.
func ConfigureInterface(dev tun.Device, addr netip.Prefix) error {
	return configureInterface(dev, addr)
}

// ConfigureInterfaceByName does the same for an interface that has no tun.Device behind
// it, such as a kernel WireGuard link, found by its name.
func ConfigureInterfaceByName(name string, addr netip.Prefix) error {
	return configureInterfaceByName(name, addr)
}
