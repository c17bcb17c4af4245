package platform

import (
	"errors"
	"fmt"
	"net/netip"

	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/windows/tunnel/winipcfg"
)

func configureInterface(dev tun.Device, addr netip.Prefix) error {
	nt, ok := dev.(*tun.NativeTun)
	if !ok {
		return errors.New("configure interface: not a Wintun device")
	}
	luid := winipcfg.LUID(nt.LUID())
	if err := luid.SetIPAddresses([]netip.Prefix{addr}); err != nil {
		return fmt.Errorf("set address %s: %w", addr, err)
	}
	return nil
}

// Windows tunnels are Wintun adapters, configured through their device (by LUID); weft
// creates no interface that exists only by name there.
func configureInterfaceByName(name string, addr netip.Prefix) error {
	return fmt.Errorf("configure interface %s by name: not supported on windows (only Wintun tunnels, configured through their device)", name)
}
