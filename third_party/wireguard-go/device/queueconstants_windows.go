/* SPDX-License-Identifier: MIT
 *
 * Copyright (C) 2017-2025 WireGuard LLC. All Rights Reserved.
 */

package device

const (
	QueueStagedSize    = 128
	QueueOutboundSize  = 1024
	QueueInboundSize   = 1024
	QueueHandshakeSize = 1024
	MaxSegmentSize     = 2048 - 32 // largest possible UDP datagram
)

// PreallocatedBuffersPerPool bounds each of the device's buffer pools; 0 leaves them
// unbounded, as upstream does. weft patch: upstream has this as a constant, so an embedder
// cannot bound memory under load. Set it before NewDevice.
var PreallocatedBuffersPerPool uint32 = 0
