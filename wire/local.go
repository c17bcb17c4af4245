package wire

import (
	"net/netip"
	"time"
)

// LocalAPIVersion is the version of weftd's local API (Unix socket / named pipe), in its paths.
//
// Changelog:
//
//	1 (2026-11-25): status, up, down, logout, ping.
//	  + events (NDJSON stream of Event); Status.LoginURL and LoginError for browser login
//	  (an up without credentials starts one). Additive: older clients ignore them.
//	  + broker (2026-11-26): the broker URL and CA of a logged-in device, for clients
//	  (weft-tray) that talk to the broker's account API themselves.
//	  + gateways and virtual devices (2026-11-26): advertise routes, list gateways, choose
//	  (use) and clear the gateway per route, add, list and remove virtual devices;
//	  Status.GatewayRoutes. Additive.
//	  + netcheck (2026-12-04): GET /local/v1/netcheck runs a network check (UDP, public
//	  mappings, NAT behaviour, LAN addresses, relay latencies) and answers Netcheck
//	  (local_netcheck.go). Additive: an older weftd answers 404.
const LocalAPIVersion = 1

// Local API paths.
const (
	LocalPathStatus = "/local/v1/status" // GET: Status
	LocalPathUp     = "/local/v1/up"     // POST UpRequest: Status
	LocalPathDown   = "/local/v1/down"   // POST: Status
	LocalPathLogout = "/local/v1/logout" // POST: Status
	LocalPathPing   = "/local/v1/ping"   // POST PingRequest: PingResult
	LocalPathEvents = "/local/v1/events" // GET: stream of Event, one JSON object per line
	LocalPathBroker = "/local/v1/broker" // GET: LocalBroker (404 while not logged in)
	// LocalPathNetcheck (GET: Netcheck) is in local_netcheck.go.

	// Gateways and virtual devices (local_gateway.go).
	LocalPathGateways         = "/local/v1/gateways"           // GET: Gateways
	LocalPathGatewayAdvertise = "/local/v1/gateways/advertise" // POST RoutesRequest: RoutesResponse
	LocalPathGatewayUse       = "/local/v1/gateways/use"       // POST GatewayUseRequest: Gateways
	LocalPathGatewayClear     = "/local/v1/gateways/clear"     // POST GatewayClearRequest: Gateways
	LocalPathVDevs            = "/local/v1/vdevs"              // GET: VDevList
	LocalPathVDevAdd          = "/local/v1/vdevs/add"          // POST VDevRequest: VDevResponse
	LocalPathVDevRemove       = "/local/v1/vdevs/remove"       // POST VDevRemoveRequest: VDevList
)

// LocalBroker is the broker a logged-in device belongs to: what a local client needs to
// reach the broker's account API over HTTPS the way weftd does.
type LocalBroker struct {
	URL   string `json:"url"`
	CAPEM string `json:"ca_pem,omitempty"` // PEM of the CA of URL's certificate; "" means the system's roots
}

// Service states reported in Status.State.
const (
	StateNeedsLogin = "needs-login" // no identity registered with a broker
	StateStopped    = "stopped"     // registered, but the user ran `weft down`
	StateStarting   = "starting"    // tunnel up, no map from the broker yet
	StateRunning    = "running"     // tunnel up with a map (possibly a saved one while the broker is away)
	StateRevoked    = "revoked"     // the broker removed this device; Reason says why
)

// UpRequest logs in (first time) and brings the tunnel up. Broker, CA and credentials are
// needed only when not yet registered or when changing broker.
type UpRequest struct {
	Broker   string `json:"broker,omitempty"`
	CAPEM    string `json:"ca_pem,omitempty"` // PEM of the CA that signed the broker's certificate
	Name     string `json:"name,omitempty"`
	AuthKey  string `json:"auth_key,omitempty"`
	Account  string `json:"account,omitempty"`
	Email    string `json:"email,omitempty"`
	Password string `json:"password,omitempty"`
}

// Status is weftd's view of itself and its peers.
type Status struct {
	State           string       `json:"state"`
	Reason          string       `json:"reason,omitempty"`
	Broker          string       `json:"broker,omitempty"`
	BrokerConnected bool         `json:"broker_connected"`
	BrokerError     string       `json:"broker_error,omitempty"`
	Self            *Device      `json:"self,omitempty"`
	ListenPort      int          `json:"listen_port,omitempty"`
	Interface       string       `json:"interface,omitempty"`
	WireGuard       string       `json:"wireguard,omitempty"` // "kernel" or "userspace" while the tunnel is up
	Peers           []PeerStatus `json:"peers"`
	// LoginURL is set while a browser login waits for a person to sign in there.
	LoginURL string `json:"login_url,omitempty"`
	// LoginError says why the last browser login ended without registering the device.
	LoginError string `json:"login_error,omitempty"`
	// GatewayRoutes are the routes this device chose to send through a gateway (weft
	// gateway use), whether in use now or not. Gateways are the peers with approved
	// Routes; virtual devices are the peers of KindVirtual.
	GatewayRoutes []RouteChoice `json:"gateway_routes,omitempty"`
	// PortMapping is the port mapping kept on the default gateway for WireGuard's port;
	// nil when weftd does not try (tunnel down, kernel WireGuard).
	PortMapping *PortMapping `json:"port_mapping,omitempty"`
}

// PeerStatus is one peer with its live tunnel state.
type PeerStatus struct {
	Device
	Endpoint      netip.AddrPort `json:"endpoint,omitempty"` // where the tunnel sends now
	LastHandshake time.Time      `json:"last_handshake,omitempty"`
	RxBytes       uint64         `json:"rx_bytes"`
	TxBytes       uint64         `json:"tx_bytes"`
	Connected     bool           `json:"connected"` // handshake within the last 3 minutes
	// Path is how packets reach the peer now: PathDirectLAN, PathDirect, "relay NAME", or
	// PathNone; PathReason says why a peer is relayed or unreachable ("still probing",
	// "peer behind symmetric NAT", "UDP blocked here", …), RTT is the path's last round trip.
	Path       string        `json:"path,omitempty"`
	PathReason string        `json:"path_reason,omitempty"`
	RTT        time.Duration `json:"rtt,omitempty"`
}

// Path kinds in PeerStatus.Path (a relayed path is "relay " + the relay's name).
const (
	PathDirectLAN = "direct lan"
	PathDirect    = "direct"
	PathRelay     = "relay"
	PathNone      = "none"
)

// PingRequest asks weftd to ping a peer through the tunnel.
type PingRequest struct {
	Peer  string `json:"peer"` // name, FQDN or mesh IP
	Count int    `json:"count"`
}

// PingReply is one echo reply, or a timeout when Error is set.
type PingReply struct {
	Seq   int           `json:"seq"`
	RTT   time.Duration `json:"rtt"`
	Path  string        `json:"path"` // e.g. "direct 192.0.2.1:51820"
	Error string        `json:"error,omitempty"`
}

// PingResult is the outcome of a ping.
type PingResult struct {
	Peer    string      `json:"peer"`
	Address netip.Addr  `json:"address"`
	Replies []PingReply `json:"replies"`
}

// Event types: what changed, mostly. Every event carries the whole Status.
const (
	EventStatus = "status" // the first event of a stream, and changes of state or broker connection
	EventPeers  = "peers"  // peers added, removed or changed, including their paths (endpoint, connected)
	EventLogin  = "login"  // a browser login started, completed or failed
)

// Event is one message on the local API's event stream: the current Status first, then
// one event per change. Changes close together are coalesced into one event, so a
// client never needs to poll.
type Event struct {
	Type     string  `json:"type"`
	Status   *Status `json:"status,omitempty"`
	LoginURL string  `json:"login_url,omitempty"` // Status.LoginURL, repeated for login events
}
