package wire

import (
	"fmt"
	"net/netip"
)

// Protocols a FilterRule can name.
const (
	ProtoTCP  = "tcp"
	ProtoUDP  = "udp"
	ProtoICMP = "icmp" // ICMP echo request (ping); ICMPv6 echo request for IPv6 sources
	ProtoAny  = "*"
)

// PacketFilter is the inbound filter the broker compiles from the account's access policy
// for one device: which peers may start flows to it, with which protocols and ports.
// Replies to flows the device started itself are always allowed.
type PacketFilter struct {
	// DefaultAllow is set only when the account policy allows everything; Rules is then
	// empty and nothing is filtered.
	DefaultAllow bool         `json:"default_allow,omitempty"`
	Rules        []FilterRule `json:"rules,omitempty"`
}

// FilterRule allows flows from any of Sources that match Proto and Ports.
type FilterRule struct {
	Sources []netip.Prefix `json:"sources"` // peer mesh addresses (/32 or /128)
	Proto   string         `json:"proto"`   // ProtoTCP, ProtoUDP, ProtoICMP or ProtoAny
	// Ports are destination port ranges for tcp and udp; empty means every port. They
	// must be empty for icmp and "*".
	Ports []PortRange `json:"ports,omitempty"`
}

// PortRange is the inclusive range First..Last of destination ports.
type PortRange struct {
	First uint16 `json:"first"`
	Last  uint16 `json:"last"`
}

// Validate reports the first thing in f a firewall cannot install.
func (f PacketFilter) Validate() error {
	if f.DefaultAllow && len(f.Rules) > 0 {
		return fmt.Errorf("packet filter: default allow with %d rules", len(f.Rules))
	}
	for i, r := range f.Rules {
		if len(r.Sources) == 0 {
			return fmt.Errorf("packet filter rule %d: no sources", i)
		}
		for _, p := range r.Sources {
			if !p.IsValid() {
				return fmt.Errorf("packet filter rule %d: invalid source prefix", i)
			}
		}
		switch r.Proto {
		case ProtoTCP, ProtoUDP:
		case ProtoICMP, ProtoAny:
			if len(r.Ports) > 0 {
				return fmt.Errorf("packet filter rule %d: ports given for protocol %q", i, r.Proto)
			}
		default:
			return fmt.Errorf("packet filter rule %d: unknown protocol %q", i, r.Proto)
		}
		for _, pr := range r.Ports {
			if pr.First == 0 || pr.First > pr.Last {
				return fmt.Errorf("packet filter rule %d: invalid port range %d-%d", i, pr.First, pr.Last)
			}
		}
	}
	return nil
}

// Allows reports whether f lets src start a flow with proto ("tcp", "udp" or "icmp", the
// latter meaning an echo request) to destination port dport (ignored for icmp).
func (f PacketFilter) Allows(src netip.Addr, proto string, dport uint16) bool {
	if f.DefaultAllow {
		return true
	}
	for _, r := range f.Rules {
		if r.Proto != ProtoAny && r.Proto != proto {
			continue
		}
		if !containsAddr(r.Sources, src) {
			continue
		}
		if r.Proto == ProtoAny || proto == ProtoICMP || len(r.Ports) == 0 {
			return true
		}
		for _, pr := range r.Ports {
			if pr.First <= dport && dport <= pr.Last {
				return true
			}
		}
	}
	return false
}

func containsAddr(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
