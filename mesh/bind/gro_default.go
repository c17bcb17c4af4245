//go:build !linux

package bind

import "net"

// enableGRO: UDP GRO is Linux's.
func enableGRO(*net.UDPConn) {}
