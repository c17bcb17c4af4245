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
	Endpoints  []netip.AddrPort `json:"endpoints"`
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
	// address and ListenPort) first, then those it reported itself, without duplicates.
	Endpoints []netip.AddrPort `json:"endpoints,omitempty"`
	Online    bool             `json:"online"` // has a live map stream
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
}

// MapKeepalive is how often the broker writes an empty MapUpdate on an idle stream; a
// client that hears nothing for three of these reconnects.
const MapKeepalive = 15 * time.Second
