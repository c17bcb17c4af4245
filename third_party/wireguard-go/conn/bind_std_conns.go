/* SPDX-License-Identifier: MIT
 *
 * Copyright (C) 2017-2025 WireGuard LLC. All Rights Reserved.
 */

package conn

import "net"

// UDPConns returns the bind's open sockets, nil for a family that is not open. It is a
// weft addition (see third_party/WIREGUARD-GO.md): a wrapping bind sends an occasional
// datagram with control messages of its own on them (a TTL-limited NAT probe). Writes on
// them are safe concurrently with Send; after Close they fail with net.ErrClosed.
func (s *StdNetBind) UDPConns() (v4, v6 *net.UDPConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ipv4, s.ipv6
}
