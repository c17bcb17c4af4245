//go:build !linux && !darwin && !windows

package platform

import (
	"fmt"
	"net/netip"
	"runtime"

	"golang.zx2c4.com/wireguard/tun"
)

func configureInterface(dev tun.Device, addr netip.Prefix) error {
	return fmt.Errorf("configure interface: not supported on %s", runtime.GOOS)
}

func configureInterfaceByName(name string, addr netip.Prefix) error {
	return fmt.Errorf("configure interface %s: not supported on %s", name, runtime.GOOS)
}
