package platform

import (
	"fmt"
	"net/netip"
	"os/exec"

	"golang.zx2c4.com/wireguard/tun"
)

// macOS utun interfaces are point-to-point: the address goes on with itself as the
// destination, and the mesh range is a route through the interface.
func configureInterface(dev tun.Device, addr netip.Prefix) error {
	name, err := dev.Name()
	if err != nil {
		return fmt.Errorf("tunnel interface name: %w", err)
	}
	return configureInterfaceByName(name, addr)
}

func configureInterfaceByName(name string, addr netip.Prefix) error {
	ip := addr.Addr().String()
	if out, err := exec.Command("/sbin/ifconfig", name, "inet", ip, ip, "up").CombinedOutput(); err != nil {
		return fmt.Errorf("ifconfig %s %s: %w: %s", name, ip, err, out)
	}
	// A stale route from an earlier run would make "add" fail; delete first, ignore absence.
	_ = exec.Command("/sbin/route", "-q", "-n", "delete", "-inet", addr.Masked().String()).Run()
	if out, err := exec.Command("/sbin/route", "-q", "-n", "add", "-inet", addr.Masked().String(), "-interface", name).CombinedOutput(); err != nil {
		return fmt.Errorf("route add %s via %s: %w: %s", addr.Masked(), name, err, out)
	}
	return nil
}
