package wire

import (
	"net/netip"
	"time"
)

// LocalPathNetcheck runs weftd's network check: GET: Netcheck. It probes the network and
// takes a few seconds (at most about NetcheckTimeout).
const LocalPathNetcheck = "/local/v1/netcheck"

// NetcheckTimeout bounds each probe of a network check (STUN, each relay transport); the
// probes run at the same time, so a check takes about this long when something does not
// answer, and much less when everything does.
const NetcheckTimeout = 3 * time.Second

// UDP verdicts in Netcheck.UDP.
const (
	UDPOK        = "ok"        // a STUN server or a relay answered over UDP
	UDPBlocked   = "blocked"   // nothing answered over UDP within NetcheckTimeout
	UDPUnchecked = "unchecked" // nothing to ask: no STUN servers and no relays are known
)

// Mapping behaviours in Netcheck.Mapping: how this device's NAT maps its UDP socket.
const (
	// MappingNone: the servers see the socket's own address and port; there is no NAT.
	MappingNone = "none"
	// MappingIndependent: every server saw the same public address and port, so peers
	// can reach the mapping that STUN learned (hole punching works).
	MappingIndependent = "endpoint-independent"
	// MappingVaries: servers saw different public ports or addresses: the NAT makes a new
	// mapping per destination ("symmetric NAT"). Peers cannot learn in advance the mapping
	// made for them, so hole punching is hard, and a pair behind two such or filtering
	// NATs may have to use the relay.
	MappingVaries = "varies"
	// MappingUnknown: fewer than two servers answered, so nothing can be compared.
	MappingUnknown = "unknown"
)

// Sockets STUN ran from, in Netcheck.Socket.
const (
	// SocketWireGuard is the tunnel's own socket: the mappings are WireGuard's.
	SocketWireGuard = "wireguard"
	// SocketProbe is a temporary socket, used when the tunnel is down or run by kernel
	// WireGuard (whose socket weftd cannot send from). Its mappings are the NAT's
	// behaviour, not WireGuard's mapping.
	SocketProbe = "probe"
)

// Netcheck is what weftd found out about the network it is on, as `weft netcheck` shows
// it. Fields that were not checked are empty; Notes say why.
type Netcheck struct {
	State  string `json:"state"` // weftd's state (a State* value) during the check
	Broker string `json:"broker,omitempty"`
	// Notes say what could not be checked and why, one line each.
	Notes []string `json:"notes,omitempty"`

	UDP       string         `json:"udp"`                  // UDPOK, UDPBlocked or UDPUnchecked
	Socket    string         `json:"socket,omitempty"`     // SocketWireGuard or SocketProbe; empty when STUN did not run
	LocalPort int            `json:"local_port,omitempty"` // the port STUN was sent from
	STUN      []NetcheckSTUN `json:"stun,omitempty"`       // one per STUN server, in the broker's order
	// Mapping is how the NAT maps the socket (a Mapping* value); empty when no STUN
	// server answered. PortPreserved says whether the public port equals LocalPort on
	// every answer; nil when none answered.
	Mapping       string `json:"mapping,omitempty"`
	PortPreserved *bool  `json:"port_preserved,omitempty"`
	// LAN are this host's own addresses that peers on the same networks may use (no
	// loopback, link-local or mesh addresses).
	LAN []netip.Addr `json:"lan"`
	// PortMapping is the port mapping the tunnel keeps on the gateway (PCP or NAT-PMP),
	// or why it has none; nil when not checked (Notes say why).
	PortMapping *PortMapping `json:"port_mapping,omitempty"`

	Relays []NetcheckRelay `json:"relays,omitempty"` // in the broker's order, which is the order of preference
	// PreferredRelay is the relay weftd uses: the first in the broker's order that
	// answers (over UDP if it can); empty when none answered.
	PreferredRelay string `json:"preferred_relay,omitempty"`
}

// NetcheckSTUN is one STUN server's answer.
type NetcheckSTUN struct {
	Server string `json:"server"` // HOST:PORT as the broker names it
	// Mapped is this device's public address as the server saw it; zero when it did not
	// answer, and Error says why.
	Mapped netip.AddrPort `json:"mapped,omitzero"`
	Error  string         `json:"error,omitempty"`
}

// NetcheckRelay is one relay of the map, reached over each of its transports.
type NetcheckRelay struct {
	Name string `json:"name"`
	// UDP and TLS are the two transports; nil when the relay offers none of that kind.
	UDP *RelayProbe `json:"udp,omitempty"`
	TLS *RelayProbe `json:"tls,omitempty"`
}

// RelayProbe is one connection attempt to a relay: a full handshake (the relay proved
// its key), then a ping.
type RelayProbe struct {
	Addr string `json:"addr"` // HOST:PORT
	OK   bool   `json:"ok"`   // the handshake completed
	// Latency is the ping's round trip after the handshake; zero if no pong came back in
	// time although the handshake completed.
	Latency time.Duration `json:"latency,omitempty"`
	Error   string        `json:"error,omitempty"` // why it failed, when not OK
}
