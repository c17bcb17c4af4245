package wire

import (
	"net/netip"
	"time"
)

// Port mapping protocols in PortMapping.Protocol.
const (
	PortMapPCP    = "PCP"     // RFC 6887
	PortMapNATPMP = "NAT-PMP" // RFC 6886
)

// PortMapping is the port mapping weftd keeps on its default gateway for WireGuard's
// port (so peers behind any NAT can reach it directly), or why it has none. Local API
// version 1, additive (2026-12-04).
type PortMapping struct {
	Protocol string         `json:"protocol,omitempty"` // PortMapPCP or PortMapNATPMP; empty when there is none
	Gateway  netip.Addr     `json:"gateway,omitzero"`
	Internal netip.AddrPort `json:"internal,omitzero"`  // this host's address towards the gateway, and WireGuard's port
	External netip.AddrPort `json:"external,omitzero"`  // the public address peers are told
	Lifetime time.Duration  `json:"lifetime,omitempty"` // as the gateway granted it; renewed at half
	Renewed  time.Time      `json:"renewed,omitzero"`
	// Error says why there is no mapping after an attempt (the gateway speaks neither
	// protocol, refused, there is no default route…). With neither Protocol nor Error,
	// the first attempt has not finished.
	Error string `json:"error,omitempty"`
}
