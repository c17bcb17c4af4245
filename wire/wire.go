// Package wire holds the protocol types shared by the broker, the service and its clients.
package wire

// ProtocolVersion is the version of the broker protocol a client speaks. The broker
// refuses clients newer than itself.
//
// Changelog:
//
//	1 (2026-11-25): registration, challenge–response device auth, map stream with deltas,
//	  endpoint updates, logout.
const ProtocolVersion = 1

// Broker HTTP paths (HTTPS only).
const (
	PathInfo      = "/v1/info"      // GET: BrokerInfo
	PathRegister  = "/v1/register"  // POST RegisterRequest: RegisterResponse
	PathChallenge = "/v1/challenge" // POST ChallengeRequest: ChallengeResponse
	PathMap       = "/v1/map"       // GET (authenticated): stream of MapUpdate, one JSON object per line
	PathEndpoints = "/v1/endpoints" // POST EndpointsRequest (authenticated): empty
	PathLogout    = "/v1/logout"    // POST (authenticated): the device removes itself
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
