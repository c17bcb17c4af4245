package wire

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// BrokerInfo is what GET /v1/info returns, unauthenticated.
type BrokerInfo struct {
	Version   int    `json:"version"`
	PublicKey Key    `json:"public_key"` // the broker's static Curve25519 key for device auth
	Domain    string `json:"domain"`     // DNS zone device names live under
}

// RegisterRequest adds a device to an account (or re-registers it under a new key).
// Exactly one of AuthKey or (Account, Email, Password) authenticates it.
type RegisterRequest struct {
	Version   int    `json:"version"`
	PublicKey Key    `json:"public_key"`
	Name      string `json:"name"`
	// ListenPort is the device's WireGuard UDP port; the broker pairs it with the address it
	// sees the request come from to form the device's public endpoint candidate.
	ListenPort int              `json:"listen_port"`
	Endpoints  []netip.AddrPort `json:"endpoints,omitempty"` // local (LAN) candidates

	AuthKey  string `json:"auth_key,omitempty"`
	Account  string `json:"account,omitempty"`
	Email    string `json:"email,omitempty"`
	Password string `json:"password,omitempty"`
}

// RegisterResponse describes the registered device.
type RegisterResponse struct {
	Device Device `json:"device"`
}

// ChallengeRequest asks for a single-use nonce for the device with PublicKey.
type ChallengeRequest struct {
	PublicKey Key `json:"public_key"`
}

// ChallengeResponse is a nonce to be MACed into exactly one authenticated request.
type ChallengeResponse struct {
	Nonce   string    `json:"nonce"`
	Expires time.Time `json:"expires"`
}

// EndpointsRequest replaces the calling device's reported endpoints.
type EndpointsRequest struct {
	ListenPort int              `json:"listen_port"`
	Endpoints  []netip.AddrPort `json:"endpoints"` // local (LAN) candidates
	// Reflexive are public mappings of the device's WireGuard socket: learned with STUN
	// or reported back by peers (the source their pings came from). Version 2.
	Reflexive []netip.AddrPort `json:"reflexive,omitempty"`
	// NAT is what the device found out about its NAT: one of the NAT constants. Version 2.
	NAT string `json:"nat,omitempty"`
}

// What a device may report of its NAT in EndpointsRequest.NAT, and peers see in Device.NAT.
const (
	NATUnknown    = ""            // not measured (yet)
	NATNone       = "none"        // the socket's address is public: no NAT
	NATEasy       = "easy"        // endpoint-independent mapping: one public port for every destination
	NATSymmetric  = "symmetric"   // endpoint-dependent mapping: a new public port per destination
	NATUDPBlocked = "udp-blocked" // no STUN reply: UDP does not get out
	// NATMapped: behind a NAT whose gateway forwards a public port to the device's
	// WireGuard port (PCP, NAT-PMP): that address takes unsolicited packets, so peers may
	// send to it at once, as to a device without NAT. Since 2026-12-04.
	NATMapped = "mapped"
)

// ValidNAT reports whether s is one of the NAT constants.
func ValidNAT(s string) bool {
	switch s {
	case NATUnknown, NATNone, NATEasy, NATSymmetric, NATUDPBlocked, NATMapped:
		return true
	}
	return false
}

// PunchRequest asks the broker to make the calling device and peer PeerID probe each
// other now: both get the other's ID in MapUpdate.Punch. Version 2.
type PunchRequest struct {
	PeerID string `json:"peer_id"`
}

// RelayInfo is a relay devices may send through (see docs/RELAY.md). At least one of
// UDP and TLS is set.
type RelayInfo struct {
	Name      string `json:"name"`
	UDP       string `json:"udp,omitempty"` // HOST:PORT of the UDP transport
	TLS       string `json:"tls,omitempty"` // HOST:PORT of the TLS-over-TCP transport
	PublicKey Key    `json:"public_key"`    // the relay's static key, which it proves on connect
	// Private is set for the account's own relay, which its devices prefer to global ones.
	Private bool `json:"private,omitempty"`
}

// Device is a device as the broker knows it: itself in a map, or one of its peers.
type Device struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Account   string     `json:"account"`
	FQDN      string     `json:"fqdn,omitempty"`
	PublicKey Key        `json:"public_key"`
	Address   netip.Addr `json:"address"`
	// Endpoints are the device's candidates: the one the broker observed (its public
	// address and ListenPort) first, then its reflexive (public) ones, then its LAN ones,
	// without duplicates.
	Endpoints []netip.AddrPort `json:"endpoints,omitempty"`
	Online    bool             `json:"online"` // has a live map stream
	// NAT is what the device reported of its NAT (one of the NAT constants). Version 2.
	NAT string `json:"nat,omitempty"`

	// Gateways and virtual devices (protocol version 3).

	// Advertised are the networks the device offers to route for its peers
	// (0.0.0.0/0: an exit node); Routes are those an admin (or the policy) approved.
	// Peers may route only approved ones through it.
	Advertised []netip.Prefix `json:"advertised,omitempty"`
	Routes     []netip.Prefix `json:"routes,omitempty"`
	// Kind is "" for a device that runs weft and KindVirtual for a LAN device that a
	// gateway projects into the mesh: it has a mesh address (its SecureIP) and a DNS name
	// but no key; traffic to it goes to its Gateway.
	Kind    string `json:"kind,omitempty"`
	Gateway string `json:"gateway,omitempty"` // virtual devices: the ID of the device that hosts it
	// LANIP is a virtual device's real address on its gateway's LAN; sent only to the
	// gateway itself.
	LANIP netip.Addr `json:"lan_ip,omitzero"`
	// VirtualFilter is a virtual device's inbound packet filter, which its gateway
	// enforces for it; sent only to the gateway itself.
	VirtualFilter *PacketFilter `json:"virtual_filter,omitempty"`
}

// KindVirtual marks a virtual device (see Device.Kind).
const KindVirtual = "virtual"

// MaxRoutes is how many networks one device may advertise.
const MaxRoutes = 64

// RoutesRequest replaces the networks the calling device advertises (Device.Advertised):
// at most MaxRoutes, each one ValidateRoute accepts; an empty list withdraws them all.
// Version 3.
type RoutesRequest struct {
	Advertise []netip.Prefix `json:"advertise"`
}

// RoutesResponse is the calling device's routes after a RoutesRequest: what it
// advertises, and which of those are approved (by an administrator or the policy).
type RoutesResponse struct {
	Advertised []netip.Prefix `json:"advertised"`
	Routes     []netip.Prefix `json:"routes"`
}

// VDevRequest registers a virtual device behind the calling device, its gateway. If the
// gateway already has a virtual device called Name, that one moves to LANIP (it keeps its
// mesh address); else a new one gets a mesh address and Name, or Name-2, -3, … when a
// device of the account holds Name. Version 3.
type VDevRequest struct {
	Name  string     `json:"name"`
	LANIP netip.Addr `json:"lan_ip"` // ValidateLANIP must accept it; unique on the gateway
}

// VDevResponse is the virtual device as its gateway sees it.
type VDevResponse struct {
	Device Device `json:"device"`
}

// VDevRemoveRequest removes one of the calling gateway's virtual devices, by name.
type VDevRemoveRequest struct {
	Name string `json:"name"`
}

// meshRange is where mesh addresses come from; routes and LAN addresses stay out of it.
var meshRange = netip.MustParsePrefix("100.64.0.0/10")

// IsExitRoute reports whether p is a default route (0.0.0.0/0 or ::/0): a device
// advertising it offers itself as an exit node to the internet.
func IsExitRoute(p netip.Prefix) bool { return p.IsValid() && p.Bits() == 0 }

// ValidateRoute reports why p cannot be advertised: it must be a network address
// (192.168.1.0/24, not 192.168.1.1/24), plain IPv4 or IPv6, and neither inside the mesh
// range 100.64.0.0/10 nor loopback nor multicast.
func ValidateRoute(p netip.Prefix) error {
	a := p.Addr()
	switch {
	case !p.IsValid():
		return fmt.Errorf("invalid route %q", p)
	case a.Is4In6():
		return fmt.Errorf("route %s is an IPv4-mapped IPv6 prefix: write the IPv4 one", p)
	case p != p.Masked():
		return fmt.Errorf("route %s is not a network address: use %s", p, p.Masked())
	case IsExitRoute(p):
		return nil
	case p.Bits() >= meshRange.Bits() && meshRange.Contains(a):
		return fmt.Errorf("route %s is inside the mesh range %s", p, meshRange)
	case a.IsLoopback():
		return fmt.Errorf("route %s is a loopback network", p)
	case a.IsMulticast():
		return fmt.Errorf("route %s is a multicast network", p)
	}
	return nil
}

// ValidateLANIP reports why a cannot be a virtual device's LAN address: it must be a
// unicast IPv4 or IPv6 address (IPv4 link-local allowed, as devices without DHCP use it)
// outside the mesh range.
func ValidateLANIP(a netip.Addr) error {
	switch {
	case !a.IsValid():
		return errors.New("LAN IP is missing")
	case a.Zone() != "":
		return fmt.Errorf("LAN IP %s has a zone: give an address without one", a)
	case a.Is4In6():
		return fmt.Errorf("LAN IP %s is an IPv4-mapped IPv6 address: write the IPv4 one", a)
	case meshRange.Contains(a):
		return fmt.Errorf("LAN IP %s is inside the mesh range %s", a, meshRange)
	case !a.IsGlobalUnicast() && !(a.Is4() && a.IsLinkLocalUnicast()):
		return fmt.Errorf("LAN IP %s is not a unicast address", a)
	}
	return nil
}

// MapUpdate is one message on the map stream. The first message has Full set and lists
// every peer; later ones are deltas: Peers added or changed (matched by ID; a changed key
// replaces the old one), Removed by ID. Revoked ends the stream: the device was removed
// and must drop all peers. A message with nothing set is a keepalive.
type MapUpdate struct {
	Full    bool     `json:"full,omitempty"`
	Self    *Device  `json:"self,omitempty"`
	Peers   []Device `json:"peers,omitempty"`
	Removed []string `json:"removed,omitempty"`
	Revoked string   `json:"revoked,omitempty"`
	// Filter is the device's inbound packet filter, compiled from the account's access
	// policy; sent with the full map and whenever it changes. Peers the policy never lets
	// the device talk to are left out of its map altogether.
	Filter *PacketFilter `json:"filter,omitempty"`

	// Relays, when not nil, replaces the list of relays the device may use, best first
	// (the account's private relays, then global ones). It comes with the full map and
	// whenever the list changes; an empty list ("relays":[]) means there are none now.
	// Version 2.
	Relays []RelayInfo `json:"relays,omitzero"`
	// STUN are the broker's STUN servers (HOST:PORT), with the full map. Two of them let
	// a device tell endpoint-independent from endpoint-dependent mapping. Version 2.
	STUN []string `json:"stun,omitempty"`
	// Punch are peers (by ID) this device should start probing now: the peer does the
	// same at once. Version 2.
	Punch []string `json:"punch,omitempty"`
}

// MapKeepalive is how often the broker writes an empty MapUpdate on an idle stream; a
// client that hears nothing for three of these reconnects.
const MapKeepalive = 15 * time.Second
