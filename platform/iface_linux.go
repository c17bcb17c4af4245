package platform

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.zx2c4.com/wireguard/tun"
)

func configureInterface(dev tun.Device, addr netip.Prefix) error {
	name, err := dev.Name()
	if err != nil {
		return fmt.Errorf("tunnel interface name: %w", err)
	}
	return configureInterfaceByName(name, addr)
}

func configureInterfaceByName(name string, addr netip.Prefix) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find interface %s: %w", name, err)
	}
	existing, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", name, err)
	}
	want := &netlink.Addr{IPNet: &net.IPNet{
		IP:   addr.Addr().AsSlice(),
		Mask: net.CIDRMask(addr.Bits(), addr.Addr().BitLen()),
	}}
	have := false
	for _, a := range existing {
		if a.IPNet.String() == want.IPNet.String() {
			have = true
			continue
		}
		if a.IP.IsLinkLocalUnicast() {
			continue
		}
		if err := netlink.AddrDel(link, &a); err != nil {
			return fmt.Errorf("remove old address %s from %s: %w", a.IPNet, name, err)
		}
	}
	if !have {
		if err := netlink.AddrAdd(link, want); err != nil {
			return fmt.Errorf("add address %s to %s: %w", addr, name, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("bring %s up: %w", name, err)
	}
	return nil
}
