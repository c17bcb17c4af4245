//go:build !linux && !windows

package portmap

import (
	"errors"
	"fmt"
	"net/netip"
)

// DefaultGateway is not implemented here yet (macOS would read it from the routing
// socket): port mapping is off.
func DefaultGateway() (netip.Addr, error) {
	return netip.Addr{}, fmt.Errorf("portmap: finding the default gateway: %w", errors.ErrUnsupported)
}
