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
