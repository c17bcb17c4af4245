// Package wire holds the protocol types shared by the broker, the service and its clients.
package wire

// ProtocolVersion is the version of the broker protocol a client speaks. The broker
// refuses clients newer than itself.
//
// Changelog:
//
//	1 (2026-11-25): registration, challenge–response device auth, map stream with deltas,
//	  endpoint updates, logout.
//	  + browser login (2026-11-25): /v1/login/start, /v1/login/wait, /login/ID. Additive: a
//	  broker without it answers 404, which devices report as "no browser login".
//	2 (2026-11-25): NAT traversal: MapUpdate.Relays, STUN and Punch; Device.NAT;
//	  EndpointsRequest.Reflexive and NAT; POST /v1/punch. The broker still accepts
//	  version 1 clients, which ignore the new fields.
//	3 (2026-11-26): gateways and virtual devices: Device.Advertised, Routes, Kind, Gateway,
//	  LANIP and VirtualFilter; POST /v1/routes, /v1/vdevs and /v1/vdevs/remove. Older
//	  clients skip virtual devices (peers without a key) and ignore routes.
//	  + port mapping (2026-12-04): NAT may be NATMapped. A broker from before refuses
//	  such an endpoint report (400); clients older than it take the value as unknown.
const ProtocolVersion = 3

// MinProtocolVersion is the oldest client protocol version the broker accepts.
const MinProtocolVersion = 1

// Broker HTTP paths (HTTPS only).
const (
	PathInfo      = "/v1/info"      // GET: BrokerInfo
	PathRegister  = "/v1/register"  // POST RegisterRequest: RegisterResponse
	PathChallenge = "/v1/challenge" // POST ChallengeRequest: ChallengeResponse
	PathMap       = "/v1/map"       // GET (authenticated): stream of MapUpdate, one JSON object per line
	PathEndpoints = "/v1/endpoints" // POST EndpointsRequest (authenticated): empty
	PathLogout    = "/v1/logout"    // POST (authenticated): the device removes itself
	PathPunch     = "/v1/punch"     // POST PunchRequest (authenticated): empty; both devices get Punch on their map streams
	// Gateways and virtual devices (version 3), all authenticated.
	PathRoutes      = "/v1/routes"       // POST RoutesRequest: RoutesResponse
	PathVDevs       = "/v1/vdevs"        // POST VDevRequest: VDevResponse
	PathVDevsRemove = "/v1/vdevs/remove" // POST VDevRemoveRequest: empty
)

// AuthHeader carries a device's proof of key possession on authenticated requests:
// "key=<base64 public key>, nonce=<nonce>, mac=<base64 MAC>" (see package devauth).
const AuthHeader = "Weft-Auth"

// MaxRequestBody is the largest request body the broker reads.
const MaxRequestBody = 64 << 10

// Error is the body of every non-2xx response, from the broker and from weftd.
type Error struct {
	Error string `json:"error"`
}
