//go:build !linux

package netlab

import (
	"context"
	"net"
)

// Listen is Linux-only, as the lab is.
func (h *Host) Listen(network, addr string) (net.Listener, error) { return nil, errNotLinux }

// ListenPacket is Linux-only, as the lab is.
func (h *Host) ListenPacket(network, addr string) (net.PacketConn, error) { return nil, errNotLinux }

// Dial is Linux-only, as the lab is.
func (h *Host) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return nil, errNotLinux
}
