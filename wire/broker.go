package wire

import (
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
)

// ValidNAT reports whether s is one of the NAT constants.
func ValidNAT(s string) bool {
	switch s {
	case NATUnknown, NATNone, NATEasy, NATSymmetric, NATUDPBlocked:
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
